import CCLCore
import Foundation

/// Ranks as threads of one process (SwiftNIO's `NIOEmbedded`, Gloo's threaded tests): the slot
/// and peer algorithms run against memory and condition variables instead of /dev/shm and
/// sockets, so each one is tested in milliseconds at any world size. The process tests stay;
/// this adds speed and reach, not realism.
///
/// `InProcessGroup` is the shared state: two sets of slots, a barrier and one FIFO mailbox per
/// ordered pair. Each rank's thread uses its own `InProcessCommunicator` (`endpoint(rank:)`).
/// Every wait gives up after `timeout`, naming the ranks that did not arrive; `abort` wakes
/// every rank with the error.
package final class InProcessGroup: @unchecked Sendable {
    package let worldSize: Int
    package let slotBytes: Int
    package let chunkBytes: Int
    package let timeout: Duration
    let name: String
    private let condition = NSCondition()
    /// Slots of parity 0 for every rank, then parity 1.
    private let slots: UnsafeMutableRawPointer
    private var arrived: [Bool]
    private var arrivals = 0
    private var generation: UInt64 = 0
    /// Frames from rank s to rank d at `mailboxes[s * worldSize + d]`: (call words, payload).
    private var mailboxes: [[(UInt64, UInt64, [UInt8])]]
    private var broken: CCLError?

    package init(
        worldSize: Int, name: String = "inprocess", slotBytes: Int = 4096, chunkBytes: Int = 4096, timeout: Duration = .seconds(10)
    ) {
        precondition(worldSize >= 1 && slotBytes >= 64 && slotBytes % 64 == 0 && chunkBytes >= 8)
        self.worldSize = worldSize
        self.name = name
        self.slotBytes = slotBytes
        self.chunkBytes = chunkBytes
        self.timeout = timeout
        slots = .allocate(byteCount: 2 * worldSize * slotBytes, alignment: 64)
        arrived = Array(repeating: false, count: worldSize)
        mailboxes = Array(repeating: [], count: worldSize * worldSize)
    }

    deinit { slots.deallocate() }

    func slot(rank: Int, parity: Int) -> UnsafeMutableRawPointer { slots + (parity * worldSize + rank) * slotBytes }

    private func deadline() -> Date {
        Date(timeIntervalSinceNow: Double(timeout.components.seconds) + 1e-18 * Double(timeout.components.attoseconds))
    }

    /// Returns once every rank has called it (a generation barrier).
    func barrier(rank: Int, operation: String) throws(CCLError) {
        condition.lock()
        defer { condition.unlock() }
        if let broken { throw broken }
        let mine = generation
        arrived[rank] = true
        arrivals += 1
        if arrivals == worldSize {
            arrivals = 0
            arrived = Array(repeating: false, count: worldSize)
            generation &+= 1
            condition.broadcast()
            return
        }
        let until = deadline()
        while generation == mine {
            if let broken { throw broken }
            if !condition.wait(until: until) && generation == mine {
                throw CCLError(
                    .timeout, operation: operation, rank: rank,
                    "waited \(timeout); " + CCLError.missingRanks((0..<worldSize).filter { !arrived[$0] }))
            }
        }
    }

    func post(from source: Int, to destination: Int, words: (UInt64, UInt64), payload: UnsafeRawBufferPointer) {
        condition.lock()
        mailboxes[source * worldSize + destination].append((words.0, words.1, Array(payload)))
        condition.broadcast()
        condition.unlock()
    }

    /// Takes the next frame from `source`, which must carry `words` and exactly `into.count` bytes.
    func take(from source: Int, to destination: Int, words: (UInt64, UInt64), into: UnsafeMutableRawBufferPointer, operation: String)
        throws(CCLError)
    {
        condition.lock()
        defer { condition.unlock() }
        let box = source * worldSize + destination
        let until = deadline()
        while mailboxes[box].isEmpty {
            if let broken { throw broken }
            if !condition.wait(until: until) && mailboxes[box].isEmpty {
                throw CCLError(
                    .timeout, operation: operation, rank: destination, peer: "rank \(source)", "nothing arrived within \(timeout)")
            }
        }
        let frame = mailboxes[box].removeFirst()
        guard frame.0 == words.0, frame.1 == words.1 else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: destination, peer: "rank \(source)",
                "ranks disagree on the call: rank \(source) sent a frame of call (\(frame.0), \(frame.1)), (\(words.0), \(words.1)) expected"
            )
        }
        guard frame.2.count == into.count else {
            throw CCLError(
                .malformed, operation: operation, rank: destination, peer: "rank \(source)",
                "rank \(source) sent \(frame.2.count) bytes, \(into.count) expected")
        }
        frame.2.withUnsafeBytes { into.copyMemory(from: $0) }
    }

    func abort(_ error: CCLError) {
        condition.lock()
        if broken == nil { broken = error }
        condition.broadcast()
        condition.unlock()
    }

    /// Rank `rank`'s communicator, for its own thread. `family` picks the algorithms every
    /// collective runs (the shared-memory slot ones or the TCP point-to-point ones); the
    /// all-reduce algorithm is chosen as the real transports choose, unless forced.
    package func endpoint(
        rank: Int, family: InProcessCommunicator.Family, slotAllReduce: SlotAllReduce? = nil, peerAllReduce: PeerAllReduce? = nil
    ) -> InProcessCommunicator {
        InProcessCommunicator(group: self, rank: rank, family: family, slotAllReduce: slotAllReduce, peerAllReduce: peerAllReduce)
    }
}

/// One rank of an `InProcessGroup`: a `Communicator` over the same algorithms the shared-memory
/// and TCP communicators run. Threading: one thread at a time, like every communicator.
package final class InProcessCommunicator: Communicator, SlotTransport, PeerTransport, @unchecked Sendable {
    package enum Family: String, Sendable, CaseIterable {
        case slots, peers
    }

    let group: InProcessGroup
    package let rank: Int
    package let family: Family
    let forcedSlot: SlotAllReduce?
    let forcedPeer: PeerAllReduce?
    private let site: CallSite
    private var sequence: UInt64 = 0
    private var words = (UInt64(0), UInt64(0))
    private var messagesSent: [UInt64]
    private var messagesReceived: [UInt64]
    private var round: UInt64 = 0
    private var operation = ""
    let sources: UnsafeMutableBufferPointer<UnsafeRawPointer>
    private var scratchBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    init(group: InProcessGroup, rank: Int, family: Family, slotAllReduce: SlotAllReduce?, peerAllReduce: PeerAllReduce?) {
        self.group = group
        self.rank = rank
        self.family = family
        forcedSlot = slotAllReduce
        forcedPeer = peerAllReduce
        site = CallSite(group: group.name, rank: rank, groupRank: rank, worldSize: group.worldSize)
        messagesSent = Array(repeating: 0, count: group.worldSize)
        messagesReceived = messagesSent
        sources = .allocate(capacity: group.worldSize)
        sources.initialize(repeating: UnsafeRawPointer(group.slot(rank: 0, parity: 0)))
    }

    deinit {
        sources.deallocate()
        scratchBuffer.deallocate()
    }

    package var worldSize: Int { group.worldSize }
    package var backend: String { "inprocess-\(family.rawValue)" }
    static let backendName: StaticString = "in-process"
    package var transportDescription: String { backend }
    package var device: Device { .host }

    package func abort(_ error: CCLError) { group.abort(error) }

    // MARK: SlotTransport

    var slotRank: Int { rank }
    var slotWorldSize: Int { group.worldSize }
    var slotBytes: Int { group.slotBytes }
    func nextRound() { round &+= 1 }
    func slot(of rank: Int) -> UnsafeMutableRawPointer { group.slot(rank: rank, parity: Int(round & 1)) }
    func sync() throws(CCLError) { try group.barrier(rank: rank, operation: operation) }

    // MARK: PeerTransport

    var peerRank: Int { rank }
    var peerWorldSize: Int { group.worldSize }
    var chunkBytes: Int { group.chunkBytes }

    func exchange(send: UnsafeRawBufferPointer, to: Int?, receive: UnsafeMutableRawBufferPointer, from: Int?) throws(CCLError) {
        if let to { group.post(from: rank, to: to, words: words, payload: send) }
        if let from { try group.take(from: from, to: rank, words: words, into: receive, operation: operation) }
    }

    var streamsCurrentCall: Bool { false }

    func openStream(
        sending frames: [UnsafeRawBufferPointer], to: Int, released: Int, receiving targets: [UnsafeMutableRawBufferPointer], from: Int,
        allowed: Int
    ) -> FrameStream? { nil }

    func scratch(_ bytes: Int) -> UnsafeMutableRawPointer {
        if scratchBuffer.count < max(bytes, 64) {
            scratchBuffer.deallocate()
            scratchBuffer = .allocate(byteCount: max(bytes, 64), alignment: 64)
        }
        return scratchBuffer.baseAddress ?? group.slot(rank: rank, parity: 0)
    }

    // MARK: Calls

    package func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError)
        -> Completion
    {
        let check = site.check("\(call.op)")
        operation = "\(call) on group \(group.name)"
        try site.checkBuffers(call, input: input, output: output, stream: stream, device: .host, backend: Self.backendName)
        let count = call.count, dtype = call.dtype, n = worldSize
        let source = input.base.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(scratch(64))
        let target = output.base ?? scratch(64)
        switch call.op {
        case .send(let peer), .recv(let peer):
            try check.peer(peer, role: "peer")
            let bytes = try check.count(count, dtype)
            let sending = call.op == .send(to: peer)
            try check.buffer(sending ? "send" : "receive", has: sending ? input.bytes : output.bytes, needs: bytes)
            if sending {
                messagesSent[peer] &+= 1
                words = (1, messagesSent[peer])
                try exchange(
                    send: UnsafeRawBufferPointer(start: source, count: bytes), to: peer, receive: .init(start: nil, count: 0), from: nil)
                return .done(messagesSent[peer])
            }
            messagesReceived[peer] &+= 1
            words = (1, messagesReceived[peer])
            try exchange(send: .init(start: nil, count: 0), to: nil, receive: .init(start: target, count: bytes), from: peer)
            return .done(messagesReceived[peer])
        case .sendRecv(let destination, let from):
            try check.peer(destination, role: "destination")
            try check.peer(from, role: "source")
            let bytes = try check.sameSize(input.hostBytes, output.mutableHostBytes, count: count, dtype: dtype)
            messagesSent[destination] &+= 1
            messagesReceived[from] &+= 1
            // Sends never block here, so send first, then receive: the pair's frames are numbered apart.
            words = (1, messagesSent[destination])
            group.post(from: rank, to: destination, words: words, payload: UnsafeRawBufferPointer(start: source, count: bytes))
            try group.take(
                from: from, to: rank, words: (1, messagesReceived[from]), into: .init(start: target, count: bytes), operation: operation)
            return .done(messagesSent[destination])
        default: break
        }
        sequence &+= 1
        words = (0, sequence)
        switch call.op {
        case .allReduce(let op):
            let bytes = try check.sameSize(input.hostBytes, output.mutableHostBytes, count: count, dtype: dtype)
            if family == .slots {
                if n == 1 {
                    if source != UnsafeRawPointer(target) { target.copyMemory(from: source, byteCount: bytes) }
                } else {
                    let algorithm = forcedSlot ?? SlotAllReduce.choose(bytes: bytes, worldSize: n)
                    try slotAllReduce(source, target, count: count, dtype: dtype, op: op, algorithm: algorithm)
                }
            } else {
                let algorithm = forcedPeer ?? PeerAllReduce.choose(bytes: bytes, worldSize: n)
                try peerAllReduce(source, target, count: count, dtype: dtype, op: op, algorithm: algorithm)
            }
        case .allGather:
            _ = try check.gathering(input.hostBytes, output.mutableHostBytes, count: count, dtype: dtype)
            if family == .slots {
                try slotAllGather(source, target, count: count, dtype: dtype)
            } else {
                try peerAllGather(source, target, count: count, dtype: dtype)
            }
        case .reduceScatter(let op):
            let bytes = try check.scattering(input.hostBytes, output.mutableHostBytes, count: count, dtype: dtype)
            if family == .slots {
                if n == 1 {
                    if source != UnsafeRawPointer(target) { target.copyMemory(from: source, byteCount: bytes) }
                } else {
                    try slotReduceScatter(source, target, count: count, dtype: dtype, op: op)
                }
            } else {
                try peerReduceScatter(source, target, count: count, dtype: dtype, op: op)
            }
        case .broadcast(let root):
            try check.rooted(output.mutableHostBytes, count: count, dtype: dtype, root: root)
            if family == .slots {
                if n > 1 { try slotBroadcast(target, count: count, dtype: dtype, root: root) }
            } else {
                try peerBroadcast(target, count: count, dtype: dtype, root: root)
            }
        case .gather(let root):
            _ = try check.gatheringTo(
                input.hostBytes, output.mutableHostBytes, count: count, dtype: dtype, root: root, isRoot: rank == root)
            if family == .slots {
                try slotGather(source, rank == root ? target : nil, count: count, dtype: dtype, root: root)
            } else {
                try peerGather(source, rank == root ? target : nil, count: count, dtype: dtype, root: root)
            }
        case .barrier:
            if family == .slots {
                nextRound()
                try sync()
            } else {
                try peerBarrier()
            }
        case .send, .recv, .sendRecv: break
        }
        return .done(sequence)
    }
}
