import CCLCore
import CCLStore
import CCLSystem

/// Collectives over a TCP mesh (`TCPMesh`), run on the caller's thread with non-blocking sockets
/// that spin briefly before sleeping in poll(2): no event loop, no thread hand-off (Gloo pays
/// ~45 µs per message for one here). The all-reduce is chosen by `PeerAllReduce.choose`; calls of
/// 2 MiB and more send on a thread of their own (`FrameSender`), and ring frames may stream on it
/// (`StreamedRing`).
///
/// Frames: a 32-byte header — the call's fingerprint (3 words) and the payload length — then the
/// payload. The receiver knows the exact frame it expects, so nothing from the network sizes a
/// buffer; a frame of another call fails the call, naming both. A rank that fails sends an abort
/// frame (kind 0xFF, its reason as payload) to every peer, and a rank that reads one fails too and
/// passes it on, so one failure reaches every rank instead of leaving them waiting.
///
/// Threading: one thread at a time (see `Communicator`).
public final class TCPCommunicator: Communicator, PeerTransport, FrameStream, @unchecked Sendable {
    static let headerBytes = 32
    static let abortKind: UInt64 = 0xFF
    static let maxReasonBytes = 4096
    static let stagedBytes = 16 << 10
    /// The operation socket errors carry until `exchange` replaces it with the call's description.
    static let pendingLabel = "tcp transfer"

    public let rank: Int
    public let worldSize: Int
    /// The options it was made with.
    public let options: CollectiveOptions
    public var transportDescription: String { "tcp" }
    public var backend: String { "\(Self.backendName)" }
    static let backendName: StaticString = "tcp"
    public var device: Device { .host }
    let groupName: String
    let globalRanks: [Int]
    /// The first connection to each peer (nil at this rank): headers, small frames, notices.
    private let connections: [TCPConnection?]
    /// Every connection to each peer (`TCPOptions.connections`; the first is `connections[peer]`):
    /// large payloads are striped over them.
    private let stripes: [[TCPConnection]]
    private var sequence: UInt64 = 0
    private let site: CallSite
    private var messagesSent: [UInt64]
    private var messagesReceived: [UInt64]
    /// What frames of the current call carry, and what the ones received must carry.
    private var sendCall = (UInt64(0), UInt64(0), UInt64(0))
    private var expectedCall = (UInt64(0), UInt64(0), UInt64(0))
    /// What the current call is, described only when an error needs it.
    private enum CallLabel {
        case collective(Fingerprint)
        case pointToPoint(destination: Int?, source: Int?, dtype: DType, count: Int)
    }
    private var label = CallLabel.collective(Fingerprint(sequence: 0, kind: .barrier, dtype: .uint8, count: 0))
    private var operation: String {
        switch label {
        case .collective(let call): return "\(call) on group \(groupName)"
        case .pointToPoint(let destination, let source, let dtype, let count):
            let parts = [destination.map { "send to \(name(of: $0))" }, source.map { "recv from \(name(of: $0))" }].compactMap { $0 }
            return parts.joined(separator: " and ") + " (\(dtype), count \(count)) on group \(groupName)"
        }
    }
    private var budget = CallBudget(.indefinite)
    private var broken: CCLError?
    private var announced = false
    /// Where the frame being sent to each peer ends, in each of its connections' `bytesSent`: a
    /// rank that fails part-way through a frame pads it out, so its abort notice lands where a
    /// header is read.
    private var frameEnds: [[UInt64]]
    /// The group rank this communicator's failure goes back to (itself, a peer that died, the
    /// culprit an abort notice named), passed on in its own notice.
    private var culprit: Int?
    /// Tells a late call, which first looks for an abort notice.
    private var lateReturn: LateReturn
    private var scratchBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// An outgoing small frame is staged here whole (header, then payload).
    private let stagingBase = UnsafeMutableRawPointer.allocate(
        byteCount: TCPCommunicator.headerBytes + TCPCommunicator.stagedBytes, alignment: 64)
    private var staging: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: stagingBase, count: Self.headerBytes + Self.stagedBytes)
    }
    /// A small frame arrives here whole (header, then payload); `incomingHeader` is its start.
    private let incoming = UnsafeMutableRawBufferPointer.allocate(
        byteCount: TCPCommunicator.headerBytes + TCPCommunicator.stagedBytes, alignment: 64)
    private var incomingHeader: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: incoming[0..<Self.headerBytes]) }
    let chunkBytes = 512 << 10
    /// Payloads from this size are striped over a peer's connections when it has several.
    static let stripedBytes = 256 << 10

    /// Sends the frames of large calls while this thread receives (`TCPOptions.sendThread`).
    private let frameSender: FrameSender?
    /// Whether the current call is large enough for `frameSender`.
    private var threadedCall = false
    /// Whether ring calls stream their frames on `frameSender` (`TCPOptions.stream`).
    private let streaming: Bool
    /// Receives streamed frames while this thread reduces (`TCPOptions.receiveThread`).
    private let frameReceiver: FrameReceiver?

    /// Collective over `group`: connects the mesh (addresses through the group's store).
    /// `ranksOnNode`: how many of the group's ranks share this node (the whole group when not
    /// given), for the choice of a send thread (`TCPOptions.sendThread`).
    public init(group: StatelessProcessGroup, options: CollectiveOptions = CollectiveOptions(), ranksOnNode: Int? = nil)
        throws(CCLError)
    {
        rank = group.rank
        worldSize = group.worldSize
        self.options = options
        groupName = group.name
        globalRanks = group.globalRanks ?? Array(0..<group.worldSize)
        site = CallSite(group: group.name, rank: globalRanks[group.rank], groupRank: group.rank, worldSize: group.worldSize)
        messagesSent = Array(repeating: 0, count: group.worldSize)
        messagesReceived = messagesSent
        let mesh = try TCPMesh.connect(group: group, options: options)
        stripes = mesh
        connections = mesh.map(\.first)
        frameEnds = mesh.map { [UInt64](repeating: 0, count: $0.count) }
        lateReturn = LateReturn(timeout: options.timeout)
        let threaded =
            group.worldSize > 1
            && options.tcp.usesSendThread(ranksOnNode: ranksOnNode ?? group.worldSize, cpus: CPUAffinity.onlineCPUs)
        frameSender = threaded ? FrameSender() : nil
        streaming = threaded && options.tcp.streams(ranksOnNode: ranksOnNode ?? group.worldSize, cpus: CPUAffinity.onlineCPUs)
        let receiving =
            streaming && options.tcp.usesReceiveThread(ranksOnNode: ranksOnNode ?? group.worldSize, cpus: CPUAffinity.onlineCPUs)
        frameReceiver = receiving ? FrameReceiver() : nil
    }

    deinit {
        frameSender?.stop()
        frameReceiver?.stop()
        scratchBuffer.deallocate()
        stagingBase.deallocate()
        incoming.deallocate()
        for connection in stripes.joined() { connection.close() }
    }

    var peerRank: Int { rank }
    var peerWorldSize: Int { worldSize }

    func scratch(_ bytes: Int) -> UnsafeMutableRawPointer {
        if scratchBuffer.count < max(bytes, 64) {
            scratchBuffer.deallocate()
            scratchBuffer = .allocate(byteCount: max(bytes, 64), alignment: 64)
        }
        return scratchBuffer.baseAddress ?? stagingBase
    }

    private func name(of peer: Int) -> String { "rank \(globalRanks[peer])" }

    // MARK: Frames

    func exchange(send: UnsafeRawBufferPointer, to: Int?, receive: UnsafeMutableRawBufferPointer, from: Int?) throws(CCLError) {
        if let broken { throw broken }
        do {
            try transfer(send: send, to: to, receive: receive, from: from)
        } catch {
            throw failCall(error, from: from, to: to)
        }
    }

    /// Ends the current call on `error`, which the exchange receiving from `from` and sending to
    /// `to` met: names the call and the rank to blame, tells every peer, and returns the error
    /// to throw.
    private func failCall(_ error: CCLError, from: Int?, to: Int?) -> CCLError {
        // Socket errors carry a placeholder operation: name the call now.
        var named = error
        if named.operation == Self.pendingLabel { named.operation = operation }
        // The peer waited on may itself be waiting on the rank that is really missing and time
        // out at the same moment: tell the others first, then give its notice a moment to
        // arrive, since it names that rank.
        if culprit == nil { culprit = blamed(named, from: from, to: to) }
        let noticeStart = monotonicNanoseconds()
        if broken == nil, named.code == .timeout, let from {
            announce(named)
            if let notice = abortNotice(from: from, within: 1_000_000_000) {
                named = CCLError(
                    .timeout, operation: operation, rank: globalRanks[rank], peer: name(of: from),
                    "timed out waiting for \(name(of: from)), which gave up too: \(notice)")
            }
        }
        // The wait for the notice and the drain share one second: a peer that sent nothing in
        // it is stopped or gone, and the error should not wait for it twice.
        let spent = monotonicNanoseconds() &- noticeStart
        fail(named, drainNanoseconds: max(100_000_000, 1_000_000_000 &- min(spent, 1_000_000_000)))
        return named
    }

    // MARK: Streams (`StreamedRing`)

    var streamsCurrentCall: Bool { threadedCall && streaming && options.tcp.connections == 1 }
    /// The peers of the stream in progress, and where its incoming frames land.
    private var streamPeers = (to: 0, from: 0)
    private var streamTargets: [UnsafeMutableRawBufferPointer] = []

    func openStream(
        sending frames: [UnsafeRawBufferPointer], to: Int, released: Int, receiving targets: [UnsafeMutableRawBufferPointer], from: Int,
        allowed: Int
    ) -> FrameStream? {
        guard streamsCurrentCall, broken == nil, let frameSender, let outgoing = connections[to], let incoming = connections[from] else {
            return nil
        }
        streamPeers = (to, from)
        streamTargets = targets
        frameEnds[to][0] = outgoing.bytesSent
        let timeout = budget.next()
        frameSender.postStream(outgoing, frames, call: sendCall, released: released, timeout: timeout)
        frameReceiver?.post(incoming, into: targets, header: incomingHeader, expected: expectedCall, allowed: allowed, timeout: timeout)
        return self
    }

    func release(upTo count: Int) { frameSender?.release(upTo: count) }

    func allow(upTo count: Int) { frameReceiver?.allow(upTo: count) }

    func receive(_ index: Int) throws(CCLError) {
        let (to, from) = streamPeers
        guard let frameSender, let connection = connections[from], streamTargets.indices.contains(index) else {
            let missing = CCLError(.invalidArgument, operation: operation, rank: globalRanks[rank], "no stream frame \(index) to receive")
            if let frameReceiver { _ = stopStream(after: frameReceiver) } else { _ = stopSending() }
            throw missing
        }
        // Waits look at the send thread every 10 ms: a send that failed ends the receive too.
        let sendFailed = { frameSender.failure != nil }
        if let frameReceiver {
            if frameReceiver.waitFor(index, giveUp: sendFailed) { return }
            throw stopStream(after: frameReceiver)
        }
        do {
            try TCPConnection.exchange(
                send: nil, receive: (connection, incomingHeader), timeout: budget.next(), operation: Self.pendingLabel,
                interrupted: sendFailed)
            try checkHeader(from: from, connection: connection, expecting: streamTargets[index].count, buffered: 0)
            try TCPConnection.exchange(
                send: nil, receive: (connection, streamTargets[index]), timeout: budget.next(), operation: Self.pendingLabel,
                interrupted: sendFailed)
        } catch {
            let sendFailure = stopSending()
            if error.code == .cancelled, let sendFailure { throw failCall(sendFailure, from: nil, to: to) }
            throw failCall(error, from: from, to: to)
        }
    }

    /// Stops the send thread's stream where it is; its error, if it had one.
    private func stopSending() -> CCLError? {
        guard let frameSender else { return nil }
        frameSender.cancel()
        let failure = frameSender.wait()
        frameEnds[streamPeers.to][0] = frameSender.frameEnd
        return failure
    }

    /// Stops both threads after the receive thread did not deliver a frame, and fails the call
    /// with what went wrong first (`streamFailure`).
    private func stopStream(after receiver: FrameReceiver) -> CCLError {
        receiver.cancel()
        let receiveFailure = receiver.finish()
        return streamFailure(receiving: receiveFailure, sending: stopSending())
    }

    /// The call's error once both threads stopped: the receive's error, the header it found
    /// instead of a frame's (an abort notice, another call), or else the send's error.
    private func streamFailure(receiving receiveFailure: FrameReceiver.Failure?, sending sendFailure: CCLError?) -> CCLError {
        let (to, from) = streamPeers
        switch receiveFailure {
        case .error(let error):
            return failCall(error, from: from, to: to)
        case .foreignHeader(let index):
            do throws(CCLError) {
                guard let connection = connections[from], streamTargets.indices.contains(index) else { throw stopped }
                try checkHeader(from: from, connection: connection, expecting: streamTargets[index].count, buffered: 0)
            } catch {
                return failCall(error, from: from, to: to)
            }
            return failCall(
                CCLError(
                    .malformed, operation: operation, rank: globalRanks[rank], peer: name(of: from), "a frame's header changed while read"),
                from: from, to: to)
        case nil:
            return failCall(sendFailure ?? stopped, from: nil, to: to)
        }
    }

    private var stopped: CCLError { CCLError(.cancelled, operation: operation, rank: globalRanks[rank], "the stream stopped") }

    func finish() throws(CCLError) {
        guard let frameSender else { return }
        let failure = frameSender.wait()
        frameEnds[streamPeers.to][0] = frameSender.frameEnd
        // Every frame was waited for, so the receive thread is done; were one left, it stops here.
        frameReceiver?.cancel()
        if let frameReceiver, let receiveFailure = frameReceiver.finish() {
            throw streamFailure(receiving: receiveFailure, sending: failure)
        }
        if let failure { throw failCall(failure, from: nil, to: streamPeers.to) }
    }

    /// The peer whose connection `error` came from, when it is `from` or `to`.
    private func blamed(_ error: CCLError, from: Int?, to: Int?) -> Int? {
        for peer in [from, to].compactMap({ $0 }) where stripes[peer].contains(where: { error.peer == $0.peerLabel }) { return peer }
        return nil
    }

    private func writeHeader(_ target: UnsafeMutableRawPointer, payload: Int) {
        target.storeBytes(of: sendCall.0.littleEndian, toByteOffset: 0, as: UInt64.self)
        target.storeBytes(of: sendCall.1.littleEndian, toByteOffset: 8, as: UInt64.self)
        target.storeBytes(of: sendCall.2.littleEndian, toByteOffset: 16, as: UInt64.self)
        target.storeBytes(of: UInt64(payload).littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    private func connection(_ peer: Int) throws(CCLError) -> TCPConnection {
        guard let connection = connections[peer] else {
            throw CCLError(.invalidArgument, operation: operation, rank: globalRanks[rank], "no connection to \(name(of: peer))")
        }
        return connection
    }

    private func transfer(send: UnsafeRawBufferPointer, to: Int?, receive: UnsafeMutableRawBufferPointer, from: Int?) throws(CCLError) {
        let outgoingConnection = try to.map { (peer) throws(CCLError) in try connection(peer) }
        let incomingConnection = try from.map { (peer) throws(CCLError) in try connection(peer) }
        let header = UnsafeMutableRawBufferPointer(rebasing: staging[0..<Self.headerBytes])
        // Small frames go out in one piece (header and payload staged together).
        var sendFirst = UnsafeRawBufferPointer(start: nil, count: 0)
        var sendLater = UnsafeRawBufferPointer(start: nil, count: 0)
        if let outgoingConnection, let to {
            // Where the frame will end on each connection, before any of it goes out (without an
            // allocation: small calls allocate nothing).
            let links = stripes[to]
            if links.count > 1, send.count >= Self.stripedBytes {
                for index in links.indices {
                    let stripe = partRange(index, of: send.count, parts: links.count).count
                    frameEnds[to][index] = links[index].bytesSent &+ UInt64(stripe + (index == 0 ? Self.headerBytes : 0))
                }
            } else {
                frameEnds[to][0] = outgoingConnection.bytesSent &+ UInt64(Self.headerBytes + send.count)
            }
            writeHeader(stagingBase, payload: send.count)
            if send.count <= Self.stagedBytes {
                if send.count > 0, let base = send.baseAddress {
                    (stagingBase + Self.headerBytes).copyMemory(from: base, byteCount: send.count)
                }
                sendFirst = UnsafeRawBufferPointer(rebasing: staging[0..<(Self.headerBytes + send.count)])
            } else {
                sendFirst = UnsafeRawBufferPointer(header)
                sendLater = send
            }
        }
        // A small frame is read with its header in one go (at least the header, at most the
        // frame); a large one's payload goes straight into the caller's buffer afterwards.
        let smallReceive = receive.count <= Self.stagedBytes
        let firstReceive =
            smallReceive ? UnsafeMutableRawBufferPointer(rebasing: incoming[0..<(Self.headerBytes + receive.count)]) : incomingHeader
        let got = try TCPConnection.exchange(
            send: outgoingConnection.map { ($0, sendFirst) }, receive: incomingConnection.map { ($0, firstReceive) },
            receiveAtLeast: Self.headerBytes, timeout: budget.next(), operation: Self.pendingLabel)
        if let incomingConnection, let from {
            try checkHeader(from: from, connection: incomingConnection, expecting: receive.count, buffered: got - Self.headerBytes)
        }
        var remaining = receive
        if smallReceive, incomingConnection != nil {
            let arrived = got - Self.headerBytes
            if arrived > 0, let target = receive.baseAddress, let source = incoming.baseAddress {
                target.copyMemory(from: source + Self.headerBytes, byteCount: arrived)
            }
            remaining = UnsafeMutableRawBufferPointer(rebasing: receive[arrived...])
        }
        guard sendLater.count > 0 || remaining.count > 0 else { return }
        let timeout = budget.next()
        let sends = to.map { striped(sendLater, over: stripes[$0]) } ?? []
        let receives = from.map { striped(remaining, over: stripes[$0]) } ?? []
        if threadedCall, let frameSender, sendLater.count >= FrameSender.minimumBytes, remaining.count > 0 {
            // The payload goes out on the send thread while this one receives; both end by the
            // deadline, and the receive's error comes first (it names what the call waited for).
            // A send that fails ends the receive within 10 ms, and its error is the call's.
            frameSender.post(sends, timeout: timeout)
            var failure: CCLError?
            do {
                try TCPConnection.exchangeAll(
                    sends: [], receives: receives, timeout: timeout, operation: Self.pendingLabel,
                    interrupted: { frameSender.failure != nil })
            } catch {
                failure = error
                frameSender.cancel()
            }
            let sendFailure = frameSender.wait()
            if failure?.code == .cancelled, let sendFailure { throw sendFailure }
            if let failure = failure ?? sendFailure { throw failure }
            return
        }
        if sends.count > 1 || receives.count > 1 {
            try TCPConnection.exchangeAll(sends: sends, receives: receives, timeout: timeout, operation: Self.pendingLabel)
            return
        }
        try TCPConnection.exchange(
            send: sendLater.count > 0 ? outgoingConnection.map { ($0, sendLater) } : nil,
            receive: remaining.count > 0 ? incomingConnection.map { ($0, remaining) } : nil, timeout: timeout,
            operation: Self.pendingLabel)
    }

    /// A payload's stripes on `links` (`TCPOptions.connections`): contiguous parts, one per
    /// connection, when there are several and the payload has `stripedBytes` or more, else all of
    /// it on the first; none when it is empty. It depends only on the length, which both ends
    /// know (`transfer` sets the frame ends alike); the first stripe follows the header on the
    /// first connection.
    private func striped(_ payload: UnsafeRawBufferPointer, over links: [TCPConnection]) -> [(
        connection: TCPConnection, buffer: UnsafeRawBufferPointer
    )] {
        guard payload.count > 0, let first = links.first else { return [] }
        guard links.count > 1, payload.count >= Self.stripedBytes else { return [(first, payload)] }
        return links.indices.map {
            (links[$0], UnsafeRawBufferPointer(rebasing: payload[partRange($0, of: payload.count, parts: links.count)]))
        }
    }

    private func striped(_ payload: UnsafeMutableRawBufferPointer, over links: [TCPConnection]) -> [(
        connection: TCPConnection, buffer: UnsafeMutableRawBufferPointer
    )] {
        striped(UnsafeRawBufferPointer(payload), over: links).map { ($0.connection, UnsafeMutableRawBufferPointer(mutating: $0.buffer)) }
    }

    /// The header just received must be the expected call's, with the expected length.
    /// `buffered`: bytes after the header already read into `incoming`.
    private func checkHeader(from peer: Int, connection: TCPConnection, expecting bytes: Int, buffered: Int) throws(CCLError) {
        let raw = UnsafeRawBufferPointer(incomingHeader)
        let words = (
            UInt64(littleEndian: raw.load(fromByteOffset: 0, as: UInt64.self)),
            UInt64(littleEndian: raw.load(fromByteOffset: 8, as: UInt64.self)),
            UInt64(littleEndian: raw.load(fromByteOffset: 16, as: UInt64.self))
        )
        let length = UInt64(littleEndian: raw.load(fromByteOffset: 24, as: UInt64.self))
        if words.1 & 0xFF == Self.abortKind {
            throw abortError(from: peer, origin: words.0, reason: readReason(connection, length: length, buffered: buffered))
        }
        if words == expectedCall, length == UInt64(bytes) { return }
        let mine = Fingerprint(words: expectedCall).map { "\($0)" } ?? "?"
        let theirs = Fingerprint(words: words).map { "\($0)" } ?? "an unreadable frame"
        if words == expectedCall {
            throw CCLError(
                .malformed, operation: operation, rank: globalRanks[rank], peer: name(of: peer),
                "\(name(of: peer)) sent a frame of \(length) bytes, \(bytes) expected")
        }
        throw CCLError(
            .invalidArgument, operation: operation, rank: globalRanks[rank], peer: name(of: peer),
            "ranks disagree on the call: \(name(of: peer)) called \(theirs); \(name(of: rank)) called \(mine)")
    }

    /// The error of a call that `peer`'s abort notice ended; it blames the rank the notice traces
    /// the failure to (`origin`: its group rank + 1, 0 when unknown), and that rank becomes ours.
    private func abortError(from peer: Int, origin: UInt64, reason: String) -> CCLError {
        let cause = origin > 0 && origin <= UInt64(worldSize) ? Int(origin - 1) : peer
        culprit = cause
        let text =
            switch cause {
            case peer: "\(name(of: peer)) gave up: \(reason)"
            case rank: "\(name(of: peer)) gave up waiting for this rank: \(reason)"
            default: "\(name(of: peer)) gave up because of \(name(of: cause)): \(reason)"
            }
        return CCLError(.peerDead, operation: operation, rank: globalRanks[rank], peer: name(of: cause), text)
    }

    /// A call that returns long after the previous one (more than half the timeout) may have been
    /// given up by the peers while this rank was stalled, though their data had all arrived: it
    /// fails if an abort notice is waiting on any connection.
    @inline(__always)
    private func checkLateReturn() throws(CCLError) {
        guard lateReturn.isLate() else { return }
        for (peer, connection) in connections.enumerated() {
            guard let connection, connection.peek(into: incomingHeader) == Self.headerBytes else { continue }
            let raw = UnsafeRawBufferPointer(incomingHeader)
            guard UInt64(littleEndian: raw.load(fromByteOffset: 8, as: UInt64.self)) & 0xFF == Self.abortKind,
                (try? connection.receiveAll(into: incomingHeader, timeout: .seconds(1))) != nil
            else { continue }
            let origin = UInt64(littleEndian: raw.load(fromByteOffset: 0, as: UInt64.self))
            let length = UInt64(littleEndian: raw.load(fromByteOffset: 24, as: UInt64.self))
            let error = abortError(from: peer, origin: origin, reason: readReason(connection, length: length))
            fail(error)
            throw error
        }
    }

    /// The reason in an abort notice arriving from `peer` within `nanoseconds`, or nil.
    private func abortNotice(from peer: Int, within nanoseconds: UInt64) -> String? {
        guard let connection = connections[peer],
            (try? connection.receiveAll(into: incomingHeader, timeout: .nanoseconds(nanoseconds))) != nil
        else { return nil }
        let raw = UnsafeRawBufferPointer(incomingHeader)
        guard UInt64(littleEndian: raw.load(fromByteOffset: 8, as: UInt64.self)) & 0xFF == Self.abortKind else { return nil }
        return readReason(connection, length: UInt64(littleEndian: raw.load(fromByteOffset: 24, as: UInt64.self)))
    }

    /// An abort notice's reason: `buffered` bytes of it are already in `incoming`, after the header.
    private func readReason(_ connection: TCPConnection, length: UInt64, buffered: Int = 0) -> String {
        let count = Int(min(length, UInt64(Self.maxReasonBytes)))
        let have = min(max(0, buffered), count)
        var bytes = [UInt8](repeating: 0, count: count)
        let received: Bool = bytes.withUnsafeMutableBytes { buffer in
            if have > 0, let target = buffer.baseAddress, let source = incoming.baseAddress {
                target.copyMemory(from: source + Self.headerBytes, byteCount: have)
            }
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[have...])
            return rest.isEmpty || (try? connection.receiveAll(into: rest, timeout: .seconds(1))) != nil
        }
        return received ? String(decoding: bytes, as: UTF8.self) : "(reason not received)"
    }

    public func abort(_ error: CCLError) {
        if culprit == nil { culprit = rank }
        fail(error)
    }

    /// Marks the communicator broken and tells every peer why (unless already told), then waits,
    /// bounded, for them to read it and close.
    func fail(_ error: CCLError, drainNanoseconds: UInt64 = 1_000_000_000) {
        guard broken == nil else { return }
        broken = error
        if !announced { announce(error) }
        let open = Array(stripes.joined())
        for connection in open { connection.shutdownSending() }
        // Closing with unread data would reset the connections before the peers read the notice.
        TCPConnection.drain(open, for: drainNanoseconds)
    }

    /// Sends an abort notice with `error`'s reason and the culprit to every peer, best effort,
    /// within about a second in all: a frame this rank had begun sending is first padded out
    /// with zeros (its receiver reads them as the payload, then the notice where it expects the
    /// next header; each stripe on its own connection, the notice on the first); a peer that does
    /// not take the padding in time gets no notice.
    private func announce(_ error: CCLError) {
        announced = true
        let reason = Array(error.relayText.utf8.prefix(Self.maxReasonBytes))
        var frame = [UInt8](repeating: 0, count: Self.headerBytes)
        frame.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt64(culprit.map { $0 + 1 } ?? 0).littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: Self.abortKind.littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: UInt64(reason.count).littleEndian, toByteOffset: 24, as: UInt64.self)
        }
        frame += reason
        let deadline = monotonicNanoseconds() &+ 1_000_000_000
        let zeros = [UInt8](repeating: 0, count: 64 << 10)
        func left() -> Timeout { .nanoseconds(max(deadline &- monotonicNanoseconds(), 50_000_000)) }
        /// Pads `connection` out to `end`; whether it all went.
        func padded(_ connection: TCPConnection, to end: UInt64) -> Bool {
            var owed = end > connection.bytesSent ? end - connection.bytesSent : 0
            while owed > 0, monotonicNanoseconds() < deadline {
                let piece = Int(min(owed, UInt64(zeros.count)))
                guard
                    (zeros.withUnsafeBytes { try? connection.sendAll(UnsafeRawBufferPointer(rebasing: $0[0..<piece]), timeout: left()) })
                        != nil
                else { break }
                owed -= UInt64(piece)
            }
            return owed == 0
        }
        for (peer, links) in stripes.enumerated() {
            let allPadded = links.indices.reduce(true) { done, index in padded(links[index], to: frameEnds[peer][index]) && done }
            guard allPadded, let connection = links.first else { continue }
            _ = frame.withUnsafeBytes { try? connection.sendAll($0, timeout: left()) }
        }
    }

    // MARK: Calls

    private func begin(_ kind: CollectiveKind, dtype: DType, op: ReduceOp? = nil, count: Int, root: Int? = nil) throws(CCLError) {
        if let broken { throw broken }
        sequence &+= 1
        let call = Fingerprint(sequence: sequence, kind: kind, dtype: dtype, op: op, count: count, root: root)
        sendCall = call.words
        expectedCall = sendCall
        label = .collective(call)
        budget = CallBudget(options.timeout)
        threadedCall = frameSender != nil && count.multipliedReportingOverflow(by: dtype.size).partialValue >= FrameSender.minimumCallBytes
    }

    private func check(_ name: String) -> CallCheck {
        site.check(name)
    }

    /// Argument errors: the peers are told at once rather than at their timeout.
    private func rejected(_ error: CCLError) -> CCLError {
        if culprit == nil { culprit = rank }
        fail(error)
        return error
    }

    private func address(_ buffer: UnsafeRawBufferPointer) -> UnsafeRawPointer {
        buffer.baseAddress ?? UnsafeRawPointer(stagingBase)
    }
    private func address(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutableRawPointer { buffer.baseAddress ?? scratch(64) }

    public func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream)
        throws(CCLError) -> Completion
    {
        do { try site.checkBuffers(call, input: input, output: output, stream: stream, device: .host, backend: Self.backendName) } catch {
            throw rejected(error)
        }
        let completion = try run(call, input: input, output: output)
        try checkLateReturn()
        return completion
    }

    @inline(__always)
    private func run(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer) throws(CCLError) -> Completion {
        let count = call.count, dtype = call.dtype
        switch call.op {
        case .allReduce(let op): try runAllReduce(input.hostBytes, into: output.mutableHostBytes, count: count, dtype: dtype, op: op)
        case .allGather: try runAllGather(input.hostBytes, into: output.mutableHostBytes, count: count, dtype: dtype)
        case .reduceScatter(let op):
            try runReduceScatter(input.hostBytes, into: output.mutableHostBytes, count: count, dtype: dtype, op: op)
        case .broadcast(let root): try runBroadcast(output.mutableHostBytes, count: count, dtype: dtype, from: root)
        case .gather(let root): try runGather(input.hostBytes, into: output.mutableHostBytes, count: count, dtype: dtype, to: root)
        case .barrier: try runBarrier()
        case .send(let peer):
            try runSend(input.hostBytes, count: count, dtype: dtype, to: peer)
            return .done(messagesSent[peer])
        case .recv(let peer):
            try runRecv(into: output.mutableHostBytes, count: count, dtype: dtype, from: peer)
            return .done(messagesReceived[peer])
        case .sendRecv(let destination, let source):
            try runSendRecv(input.hostBytes, to: destination, into: output.mutableHostBytes, from: source, count: count, dtype: dtype)
            return .done(destination == rank ? 0 : messagesSent[destination])
        }
        return .done(sequence)
    }

    private func runAllReduce(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        let bytes: Int
        do { bytes = try check("allReduce").sameSize(input, output, count: count, dtype: dtype) } catch { throw rejected(error) }
        try begin(.allReduce, dtype: dtype, op: op, count: count)
        let algorithm = options.tcp.allReduce ?? PeerAllReduce.choose(bytes: bytes, worldSize: worldSize)
        try peerAllReduce(address(input), address(output), count: count, dtype: dtype, op: op, algorithm: algorithm)
    }

    private func runAllGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError)
    {
        do { _ = try check("allGather").gathering(input, output, count: count, dtype: dtype) } catch { throw rejected(error) }
        try begin(.allGather, dtype: dtype, count: count)
        try peerAllGather(address(input), address(output), count: count, dtype: dtype)
    }

    private func runReduceScatter(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        do { _ = try check("reduceScatter").scattering(input, output, count: count, dtype: dtype) } catch { throw rejected(error) }
        try begin(.reduceScatter, dtype: dtype, op: op, count: count)
        try peerReduceScatter(address(input), address(output), count: count, dtype: dtype, op: op)
    }

    private func runBroadcast(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from root: Int) throws(CCLError) {
        do { try check("broadcast").rooted(buffer, count: count, dtype: dtype, root: root) } catch { throw rejected(error) }
        try begin(.broadcast, dtype: dtype, count: count, root: root)
        try peerBroadcast(address(buffer), count: count, dtype: dtype, root: root)
    }

    private func runGather(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, to root: Int
    ) throws(CCLError) {
        do {
            _ = try check("gather").gatheringTo(input, output, count: count, dtype: dtype, root: root, isRoot: rank == root)
        } catch { throw rejected(error) }
        try begin(.gather, dtype: dtype, count: count, root: root)
        try peerGather(address(input), rank == root ? address(output) : nil, count: count, dtype: dtype, root: root)
    }

    private func runBarrier() throws(CCLError) {
        try begin(.barrier, dtype: .uint8, count: 0)
        try peerBarrier()
    }

    private func runSend(_ buffer: UnsafeRawBufferPointer, count: Int, dtype: DType, to peer: Int) throws(CCLError) {
        try pointToPoint(send: buffer, to: peer, receive: nil, from: nil, count: count, dtype: dtype)
    }

    private func runRecv(into buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from peer: Int) throws(CCLError) {
        try pointToPoint(send: nil, to: nil, receive: buffer, from: peer, count: count, dtype: dtype)
    }

    private func runSendRecv(
        _ buffer: UnsafeRawBufferPointer, to destination: Int, into output: UnsafeMutableRawBufferPointer, from source: Int, count: Int,
        dtype: DType
    ) throws(CCLError) {
        try pointToPoint(send: buffer, to: destination, receive: output, from: source, count: count, dtype: dtype)
    }

    /// send, recv or both at once; each message's frames carry (message number on the pair,
    /// dtype, count, sender).
    private func pointToPoint(
        send: UnsafeRawBufferPointer?, to destination: Int?, receive: UnsafeMutableRawBufferPointer?, from source: Int?, count: Int,
        dtype: DType
    ) throws(CCLError) {
        let bytes: Int
        do throws(CCLError) {
            let check = check(destination.map { "send to rank \($0)" } ?? source.map { "recv from rank \($0)" } ?? "send/recv")
            bytes = try check.count(count, dtype)
            if let destination, let send {
                try check.peer(destination, role: "destination")
                try check.buffer("send", has: send.count, needs: bytes)
            }
            if let source, let receive {
                try check.peer(source, role: "source")
                try check.buffer("receive", has: receive.count, needs: bytes)
            }
            if (destination == rank) != (source == rank) || (destination == rank && source == nil) || (source == rank && destination == nil)
            {
                throw CCLError(
                    .invalidArgument, operation: check.operation, rank: check.rank, "a rank cannot send to or receive from itself alone")
            }
        } catch { throw rejected(error) }
        if let broken { throw broken }
        if destination == rank, source == rank {
            if bytes > 0, let from = send?.baseAddress, let to = receive?.baseAddress, from != UnsafeRawPointer(to) {
                to.copyMemory(from: from, byteCount: bytes)
            }
            return
        }
        budget = CallBudget(options.timeout)
        var outgoing = UnsafeRawBufferPointer(start: nil, count: 0)
        if let destination, let send {
            messagesSent[destination] &+= 1
            sendCall = Fingerprint(sequence: messagesSent[destination], kind: .sendRecv, dtype: dtype, count: count, root: rank).words
            outgoing = UnsafeRawBufferPointer(rebasing: send[0..<bytes])
        }
        var incoming = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        if let source, let receive {
            messagesReceived[source] &+= 1
            expectedCall = Fingerprint(sequence: messagesReceived[source], kind: .sendRecv, dtype: dtype, count: count, root: source).words
            incoming = UnsafeMutableRawBufferPointer(rebasing: receive[0..<bytes])
        }
        label = .pointToPoint(destination: destination, source: source, dtype: dtype, count: count)
        threadedCall = frameSender != nil && bytes >= FrameSender.minimumCallBytes
        // One frame per message, in chunks when large, so both directions progress together.
        var offset = 0
        repeat {
            let length = min(chunkBytes, bytes - offset)
            try exchange(
                send: destination == nil
                    ? UnsafeRawBufferPointer(start: nil, count: 0) : UnsafeRawBufferPointer(rebasing: outgoing[offset..<(offset + length)]),
                to: destination,
                receive: source == nil
                    ? UnsafeMutableRawBufferPointer(start: nil, count: 0)
                    : UnsafeMutableRawBufferPointer(rebasing: incoming[offset..<(offset + length)]),
                from: source)
            offset += length
        } while offset < bytes
    }
}
