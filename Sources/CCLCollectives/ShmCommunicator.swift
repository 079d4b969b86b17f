import Atomics
import CCLCore
import CCLStore
import CCLSystem

/// Collectives among ranks of one node through a shared-memory arena (`ArenaLayout`): all-reduces
/// one-shot or two-shot as the node's measured costs say (`ShmCostModel`), pipelined through
/// slots of `slotBytes`; point to point through per-pair mailboxes. No socket is touched after
/// creation.
///
/// Threading: one thread at a time (see `Communicator`).
public final class ShmCommunicator: Communicator, SlotTransport, @unchecked Sendable {
    let arena: ShmArena
    /// The options it was made with.
    public let options: CollectiveOptions
    let site: CallSite
    public var rank: Int { arena.rank }
    public var worldSize: Int { arena.worldSize }
    public var transportDescription: String { "shm" }
    public var backend: String { "\(Self.backendName)" }
    static let backendName: StaticString = "shm"
    public var device: Device { .host }
    /// What this node's all-reduces cost, measured by every rank when the communicator was made
    /// (or configured, `ShmOptions.cost`): the same on every rank, so all choose alike.
    public let costModel: ShmCostModel
    /// The call size (bytes) from which the model picks two-shot; Int.max when it never does.
    /// Worked out once, so a call's choice is one comparison.
    private let twoShotFrom: Int

    /// Collectives called so far (fingerprint sequence numbers).
    private var sequence: UInt64 = 0
    /// Slot rounds so far; the parity picks the slot set.
    private var round: UInt64 = 0
    private var parity = 0
    /// The call being run, checked at its first sync.
    private var pendingCheck: Fingerprint?
    /// The call being run (its description is built only for errors).
    private var call = Fingerprint(sequence: 0, kind: .barrier, dtype: .uint8, count: 0)
    /// Source pointers for the reductions, one per rank (allocated once).
    let sources: UnsafeMutableBufferPointer<UnsafeRawPointer>
    private var budget = CallBudget(.indefinite)
    /// Tells a late call, which first checks that no peer gave it up.
    private var lateReturn: LateReturn
    /// Per peer: pieces sent and received through its mailbox, and messages sent and received.
    var piecesSent: [UInt64]
    var piecesReceived: [UInt64]
    var messagesSent: [UInt64]
    var messagesReceived: [UInt64]

    /// Collective over `group`, whose ranks must share this node's /dev/shm.
    public init(group: StatelessProcessGroup, options: CollectiveOptions = CollectiveOptions()) throws(CCLError) {
        let arena = try ShmArena.create(
            group: group, slotBytes: options.shm.slotBytes,
            mailboxBytes: options.shm.mailboxBytes ?? ShmOptions.defaultMailboxBytes(worldSize: group.worldSize),
            policy: options.shm.wait)
        self.arena = arena
        costModel = try arena.measureCosts(configured: options.shm.cost, timeout: options.timeout)
        twoShotFrom = costModel.twoShotFrom(worldSize: arena.worldSize, slotBytes: arena.view.layout.slotBytes) ?? .max
        self.options = options
        site = CallSite(group: arena.groupName, rank: arena.globalRanks[arena.rank], groupRank: arena.rank, worldSize: arena.worldSize)
        sources = .allocate(capacity: group.worldSize)
        sources.initialize(repeating: UnsafeRawPointer(arena.view.base))
        piecesSent = Array(repeating: 0, count: group.worldSize)
        piecesReceived = piecesSent
        messagesSent = piecesSent
        messagesReceived = piecesSent
        lateReturn = LateReturn(timeout: options.timeout)
    }

    deinit { sources.deallocate() }

    // MARK: SlotTransport

    var slotRank: Int { arena.rank }
    var slotWorldSize: Int { arena.worldSize }
    var slotBytes: Int { arena.view.layout.slotBytes }

    func nextRound() {
        round &+= 1
        parity = Int(round & 1)
    }

    @inline(__always)
    func slot(of rank: Int) -> UnsafeMutableRawPointer { arena.view.slot(rank: rank, parity: parity) }

    func sync() throws(CCLError) {
        try arena.syncAll("\(call) on group \(arena.groupName)", budget: &budget)
        if let expected = pendingCheck {
            pendingCheck = nil
            try compareCalls(expected)
        }
    }

    // MARK: Calls

    /// Starts a call: its fingerprint goes into this rank's line before the first sync.
    private func begin(_ kind: CollectiveKind, dtype: DType, op: ReduceOp? = nil, count: Int, root: Int? = nil) throws(CCLError) {
        if let broken = arena.broken { throw broken }
        sequence &+= 1
        arena.currentCall = max(1, UInt32(truncatingIfNeeded: sequence))
        call = Fingerprint(sequence: sequence, kind: kind, dtype: dtype, op: op, count: count, root: root)
        budget = CallBudget(options.timeout)
        if options.checkCalls {
            let words = call.words
            let address = arena.view.fingerprintAddress(rank, parity: Int(sequence & 1))
            address[0] = words.0
            address[1] = words.1
            address[2] = words.2
            pendingCheck = call
        }
    }

    /// Every rank has reached the call's first sync: compare what each called. All ranks read the
    /// same words, so either all pass or all throw (and the arena stays in step).
    private func compareCalls(_ mine: Fingerprint) throws(CCLError) {
        let parity = Int(sequence & 1)
        let mineWords = mine.words
        var differs = false
        for peer in 0..<worldSize where peer != rank {
            let words = arena.view.fingerprintAddress(peer, parity: parity)
            if words[0] != mineWords.0 || words[1] != mineWords.1 || words[2] != mineWords.2 {
                differs = true
                break
            }
        }
        guard differs else { return }
        let calls = (0..<worldSize).map { peer -> Fingerprint? in
            let words = arena.view.fingerprintAddress(peer, parity: parity)
            return Fingerprint(words: (words[0], words[1], words[2]))
        }
        throw Fingerprint.mismatch(calls, ranks: arena.globalRanks, rank: arena.globalRanks[rank], group: arena.groupName)
    }

    public func abort(_ error: CCLError) { arena.fail(error) }

    /// Argument errors before the first sync: the other ranks are told at once (they would
    /// otherwise wait for this rank until their timeout).
    func rejected(_ error: CCLError) -> CCLError {
        arena.fail(error)
        return error
    }

    func check(_ name: String) -> CallCheck {
        site.check(name)
    }

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

    /// A call that returns more than half the timeout after the previous one may have been given
    /// up by a peer while this rank was stalled, though the peer's data was all there: it fails
    /// if a peer gave up this call (or an earlier one).
    @inline(__always)
    private func checkLateReturn() throws(CCLError) {
        guard lateReturn.isLate(), let (peer, reason) = arena.peerThatGaveUp(atOrBefore: arena.currentCall)
        else { return }
        let error = CCLError(
            .peerDead, operation: "\(call) on group \(arena.groupName)", rank: arena.globalRanks[arena.rank],
            peer: arena.name(of: peer), "\(arena.name(of: peer)) gave up this call: \(reason)")
        arena.fail(error)
        throw error
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
        let source = address(input), target = address(output)
        guard worldSize > 1 else {
            if source != UnsafeRawPointer(target) { target.copyMemory(from: source, byteCount: bytes) }
            return
        }
        let algorithm = options.shm.allReduce ?? (bytes >= twoShotFrom ? .twoShot : .oneShot)
        try slotAllReduce(source, target, count: count, dtype: dtype, op: op, algorithm: algorithm)
    }

    private func runAllGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError)
    {
        do { _ = try check("allGather").gathering(input, output, count: count, dtype: dtype) } catch { throw rejected(error) }
        try begin(.allGather, dtype: dtype, count: count)
        try slotAllGather(address(input), address(output), count: count, dtype: dtype)
    }

    private func runReduceScatter(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        do { _ = try check("reduceScatter").scattering(input, output, count: count, dtype: dtype) } catch { throw rejected(error) }
        try begin(.reduceScatter, dtype: dtype, op: op, count: count)
        guard worldSize > 1 else {
            let source = address(input), target = address(output)
            if source != UnsafeRawPointer(target) { target.copyMemory(from: source, byteCount: count * dtype.size) }
            return
        }
        try slotReduceScatter(address(input), address(output), count: count, dtype: dtype, op: op)
    }

    private func runBroadcast(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from root: Int) throws(CCLError) {
        do { try check("broadcast").rooted(buffer, count: count, dtype: dtype, root: root) } catch { throw rejected(error) }
        try begin(.broadcast, dtype: dtype, count: count, root: root)
        guard worldSize > 1 else { return }
        try slotBroadcast(address(buffer), count: count, dtype: dtype, root: root)
    }

    private func runGather(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, to root: Int
    ) throws(CCLError) {
        do {
            _ = try check("gather").gatheringTo(input, output, count: count, dtype: dtype, root: root, isRoot: rank == root)
        } catch { throw rejected(error) }
        try begin(.gather, dtype: dtype, count: count, root: root)
        try slotGather(address(input), rank == root ? address(output) : nil, count: count, dtype: dtype, root: root)
    }

    private func runBarrier() throws(CCLError) {
        try begin(.barrier, dtype: .uint8, count: 0)
        guard worldSize > 1 else { return }
        // Every call takes one round before its first sync, so a mismatched call (a barrier
        // against an all-reduce) leaves every rank on the same slot parity.
        nextRound()
        try sync()
    }

    /// A buffer's start; an empty buffer may have none, and is then never dereferenced.
    func address(_ buffer: UnsafeRawBufferPointer) -> UnsafeRawPointer {
        buffer.baseAddress ?? UnsafeRawPointer(arena.view.base)
    }
    func address(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutableRawPointer {
        buffer.baseAddress ?? arena.view.base
    }
}
