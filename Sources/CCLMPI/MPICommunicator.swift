import Atomics
import CCLCollectiveAPI
import CCLCollectives
import CCLCore
import CCLStore
import CCLSystem
import CCLTrace
import Logging

/// Collectives on host buffers through MPI (MLX's way, MPI opened at run time): every call is the
/// matching MPI call on a communicator of the group's ranks, with the dtypes MPI has natively and
/// float16/bfloat16 and float8 as two- and one-byte types with swift-ccl's reductions (`MPIFloatTypes`).
///
/// Creation (collective over the group's members only): every member's `MPI_COMM_WORLD` rank is
/// all-gathered through the group's store; the whole world is `MPI_Comm_dup`'d, a sub-group is made
/// with `MPI_Comm_create_group` (collective over its members, so a layout's groups are made one at
/// a time by their own members, as the other backends make theirs). Errors return
/// (`MPI_ERRORS_RETURN`) and carry MPI's text.
///
/// Semantics that differ from the shm and tcp backends, as MPI defines them:
/// - Calls are not fingerprinted: a mismatched call is MPI's undefined behaviour (a hang, which the
///   watchdog reports, or MPI's error). A receive checks the count it got (`MPI_Get_count`).
/// - Calls cannot time out: `MPIWatchdog` reports a call running past the timeout, with the verdict
///   of the group's flight recorders on this node (the ranks that never entered it), and ends the
///   job with `MPI_Abort` when asked to.
/// - `abort` breaks this rank's communicator only: MPI has no way to tell the others short of
///   `MPI_Abort`.
/// - Counts are C `int`s: at most 2³¹−1 elements per call.
/// - A send may wait until the receiver has posted its receive (large messages in MPI).
///
/// Threading: one thread at a time, as every communicator; several communicators from several
/// threads at once only when MPI provides `MPI_THREAD_MULTIPLE` (`CCL_MPI_THREAD_LEVEL=multiple`;
/// the default is `single`), else the second thread's call fails at once saying so.
final class MPICommunicator: Communicator, @unchecked Sendable {
    static let backendName: StaticString = "mpi"
    /// The tag of `send`/`recv`/`sendRecv` messages (MPI keeps one pair's messages of one tag in order).
    static let messageTag: Int32 = 77

    let rank: Int
    let worldSize: Int
    let device = Device.host
    var backend: String { "\(Self.backendName)" }
    let transportDescription: String

    private let runtime: MPIRuntime
    private let calls: MPIFunctions
    private let constants: MPIConstants
    private let floats: MPIFloatTypes
    private var comm: Int
    private let site: CallSite
    /// Each group rank's global rank (errors name global ranks).
    private let globalRanks: [Int]
    /// Kept alive for `progress`.
    private let watchdog: MPIWatchdog
    /// The watchdog's per-call side.
    private let progress: MPIWatchdog.Progress
    /// Whether MPI allows two threads inside it at once; when not, `busy` turns a second thread's
    /// call into an error instead of MPI's undefined behaviour.
    private let concurrent: Bool
    private let busy: UnsafeAtomic<Int>
    private var broken: CCLError?
    private var sequence: UInt64 = 0
    /// Every call's number for the watchdog (collectives, sends and receives alike, failed or not).
    private var watched: UInt64 = 0
    private var messagesSent: [UInt64]
    private var messagesReceived: [UInt64]
    /// Where an input that overlaps its output is copied first (MPI forbids aliased buffers
    /// except in its own in-place forms); grows to the largest such input.
    private var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// An `MPI_Status` (at most 32 bytes in every family).
    private let status: UnsafeMutableRawPointer
    /// The most elements one MPI call carries (MPI counts are C ints); larger calls go in pieces.
    let maxCount: Int
    /// Where the pieces of an all-gather, reduce-scatter or gather above `maxCount` are packed.
    private var pieceScratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    /// The communicator of `group`'s ranks; `timeout` is the watchdog's (`.indefinite`: none).
    init(
        group: StatelessProcessGroup, nodes: NodeLayout, runtime: MPIRuntime, timeout: Timeout, abortOnTimeout: Bool,
        maxCount: Int = Int(Int32.max), logger: Logger
    ) throws(CCLError) {
        let globalRanks = group.globalRanks ?? Array(0..<group.worldSize)
        let operation = "create MPI communicator for group \(group.name)"
        let mpi = runtime.library
        rank = group.rank
        worldSize = group.worldSize
        self.maxCount = max(1, min(maxCount, Int(Int32.max)))
        self.runtime = runtime
        calls = mpi.calls
        constants = mpi.constants
        floats = runtime.floatTypes
        concurrent = runtime.allowsConcurrentCalls
        busy = runtime.busy
        site = CallSite(group: group.name, rank: globalRanks[group.rank], groupRank: group.rank, worldSize: group.worldSize)
        self.globalRanks = globalRanks
        messagesSent = Array(repeating: 0, count: group.worldSize)
        messagesReceived = messagesSent
        transportDescription = "mpi (\(mpi.family.rawValue), \(group.worldSize) of \(runtime.worldSize) MPI ranks)"
        let worldRanks = try group.allGatherObject(runtime.worldRank)
        if let stranger = worldRanks.indices.first(where: { !(0..<runtime.worldSize).contains(worldRanks[$0]) }) {
            throw CCLError(
                .malformed, operation: operation, group: group.name, rank: site.rank, groupRank: rank,
                peer: "rank \(globalRanks[stranger])",
                "rank \(globalRanks[stranger]) says it is MPI_COMM_WORLD rank \(worldRanks[stranger]), outside this world of \(runtime.worldSize)"
            )
        }
        if Set(worldRanks).count != worldRanks.count {
            let shared = Dictionary(grouping: worldRanks.indices, by: { worldRanks[$0] }).first { $0.value.count > 1 }
            throw CCLError(
                .invalidArgument, operation: operation, group: group.name, rank: site.rank, groupRank: rank,
                "group ranks \(shared?.value.map { String(globalRanks[$0]) }.joined(separator: " and ") ?? "?") are the same MPI process (MPI_COMM_WORLD rank \(shared?.key ?? -1)): the group was not made from the ranks mpirun started"
            )
        }
        var made = 0
        var code: Int32
        if worldRanks == Array(0..<runtime.worldSize) {
            code = calls.commDup(constants.commWorld, &made)
        } else {
            var worldGroup = 0
            var subgroup = 0
            code = calls.commGroup(constants.commWorld, &worldGroup)
            if code == 0 {
                let members = worldRanks.map { Int32($0) }
                code = calls.groupIncl(mpi.handle(from: worldGroup), Int32(members.count), members, &subgroup)
                _ = calls.groupFree(&worldGroup)
            }
            if code == 0 {
                code = calls.commCreateGroup(constants.commWorld, mpi.handle(from: subgroup), Self.tag(for: group.name), &made)
                _ = calls.groupFree(&subgroup)
            }
        }
        guard code == 0 else {
            throw CCLError(.system, operation: operation, group: group.name, rank: site.rank, groupRank: rank, mpi.describe(code))
        }
        comm = mpi.handle(from: made)
        _ = calls.commSetErrhandler(comm, constants.errorsReturn)
        var mine: Int32 = -1
        _ = calls.commRank(comm, &mine)
        guard mine == Int32(rank) else {
            _ = calls.commFree(&made)
            throw CCLError(
                .system, operation: operation, group: group.name, rank: site.rank, groupRank: rank,
                "MPI placed this process at rank \(mine) of the new communicator, not \(rank)")
        }
        let site = self.site, world = constants.commWorld, abort = calls.abort, round = group.roundID
        let store = group.jobStore as? TCPStoreClient
        let remote = Set(nodes.ranksOnOtherNodes(than: group.rank).filter(globalRanks.indices.contains).map { globalRanks[$0] })
        watchdog = MPIWatchdog(timeout: timeout.nanoseconds) { message in
            // The flight recorders of the group's ranks (here, and through the store on other
            // nodes) say who has not entered.
            let verdict = TraceExchange.verdict(group: site.group, round: round, remote: remote, store: store)
            let text =
                "group \(site.group), rank \(site.rank): \(message); "
                + (verdict.map { "flight recorders \($0.scope): \($0.text)" }
                    ?? "MPI calls cannot time out: a rank of the group may be stuck, dead or in another call")
            if abortOnTimeout {
                logger.critical("\(text); ending the job (MPI_Abort, CCL_MPI_ABORT_ON_TIMEOUT=1)")
                _ = abort(world, 70)
            } else {
                logger.error("\(text) (set CCL_MPI_ABORT_ON_TIMEOUT=1 to end the job instead)")
            }
        }
        progress = watchdog.progress
        status = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
    }

    deinit {
        // MPI_Comm_free is a call into MPI like any other: one thread at a time below `multiple`
        // (a brief wait here, never an error).
        while !concurrent, busy.exchange(1, ordering: .acquiring) != 0 { Futex.yield() }
        if !runtime.library.isFinalized, comm != constants.commNull { _ = calls.commFree(&comm) }
        if !concurrent { busy.store(0, ordering: .releasing) }
        scratch.deallocate()
        pieceScratch.deallocate()
        status.deallocate()
    }

    /// The tag of `MPI_Comm_create_group` for a group: the same on every member.
    static func tag(for name: String) -> Int32 {
        var hash: UInt32 = 2_166_136_261
        for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int32(hash & 0x7fff)
    }

    func abort(_ error: CCLError) {
        if broken == nil { broken = error }
    }

    func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError) -> Completion
    {
        if let broken { throw broken }
        try site.checkBuffers(call, input: input, output: output, stream: stream, device: device, backend: Self.backendName)
        let check = site.check(call.op.kind.description)  // a literal: no allocation per call
        let bytes = try check.count(call.count, call.dtype)
        let type = constants.datatype(call.dtype) ?? floats.datatype(call.dtype)
        let n = worldSize, count = call.count, size = call.dtype.size
        // One piece unless the call has more elements than an MPI count holds (`maxCount`).
        let whole = count <= maxCount
        if !concurrent, busy.exchange(1, ordering: .acquiring) != 0 { throw concurrentCall(check) }
        watched &+= 1
        let watchedNumber = watched
        progress.enter(call, number: watchedNumber)
        defer {
            progress.leave(watchedNumber)
            if !concurrent { busy.store(0, ordering: .releasing) }
        }
        var source = UnsafeRawPointer(input.base)
        let target = output.base
        let code: Int32
        switch call.op {
        case .allReduce(let op):
            try check.buffer("input", has: input.bytes, needs: bytes)
            try check.buffer("output", has: output.bytes, needs: bytes)
            // MPI wants MPI_IN_PLACE on every rank or on none, and ranks choose in place on their
            // own: an input that is (or overlaps) the output is copied aside instead.
            source = separate(source, bytes, from: target, bytes)
            let reduction = reduction(op, call.dtype)
            code = forEachPiece(count) { offset, length in
                calls.allreduce(source.map { $0 + offset * size }, target.map { $0 + offset * size }, length, type, reduction, comm)
            }
            if code == 0, op == .avg, let target { divide(target, count: count, dtype: call.dtype) }
        case .allGather:
            let all = try check.times(bytes, n)
            try check.buffer("input", has: input.bytes, needs: bytes)
            try check.buffer("output", has: output.bytes, needs: all)
            source = separate(source, bytes, from: target, all)  // as for all-reduce
            if whole {
                code = calls.allgather(source, Int32(count), type, target, Int32(count), type, comm)
            } else {
                // Each piece of every rank's block is gathered packed, then put in its place.
                code = forEachPiece(count, packed: n * size) { offset, length in
                    let packed = pieces(n * Int(length) * size)
                    let result = calls.allgather(source.map { $0 + offset * size }, length, type, packed, length, type, comm)
                    if result == 0, let target {
                        unpack(packed, into: target, offset: offset, length: Int(length), count: count, size: size)
                    }
                    return result
                }
            }
        case .reduceScatter(let op):
            try check.buffer("input", has: input.bytes, needs: try check.times(bytes, n))
            try check.buffer("output", has: output.bytes, needs: bytes)
            source = separate(source, bytes * n, from: target, bytes)
            let reduction = reduction(op, call.dtype)
            if whole {
                code = calls.reduceScatterBlock(source, target, Int32(count), type, reduction, comm)
            } else {
                // The same piece of every block, packed, reduced into this rank's piece.
                code = forEachPiece(count, packed: n * size) { offset, length in
                    let packed = pieces(n * Int(length) * size)
                    if let source { pack(source, into: packed, offset: offset, length: Int(length), count: count, size: size) }
                    return calls.reduceScatterBlock(
                        UnsafeRawPointer(packed), target.map { $0 + offset * size }, length, type, reduction, comm)
                }
            }
            if code == 0, op == .avg, let target { divide(target, count: count, dtype: call.dtype) }
        case .broadcast(let root):
            try check.peer(root, role: "root")
            try check.buffer("", has: output.bytes, needs: bytes)
            code = forEachPiece(count) { offset, length in calls.bcast(target.map { $0 + offset * size }, length, type, Int32(root), comm) }
        case .gather(let root):
            try check.peer(root, role: "root")
            try check.buffer("input", has: input.bytes, needs: bytes)
            if rank == root {
                let all = try check.times(bytes, n)
                try check.buffer("output", has: output.bytes, needs: all)
                if whole, let target, bytes > 0, source == UnsafeRawPointer(target + root * bytes) {
                    source = UnsafeRawPointer(bitPattern: constants.inPlace)
                } else {
                    source = separate(source, bytes, from: target, all)
                }
            }
            if whole {
                code = calls.gather(source, Int32(count), type, target, Int32(count), type, Int32(root), comm)
            } else {
                code = forEachPiece(count, packed: n * size) { offset, length in
                    let packed = rank == root ? pieces(n * Int(length) * size) : nil
                    let result = calls.gather(source.map { $0 + offset * size }, length, type, packed, length, type, Int32(root), comm)
                    if result == 0, let packed, let target {
                        unpack(packed, into: target, offset: offset, length: Int(length), count: count, size: size)
                    }
                    return result
                }
            }
        case .send(let peer):
            try check.peer(peer, role: "destination")
            try check.buffer("send", has: input.bytes, needs: bytes)
            code = forEachPiece(count) { offset, length in
                calls.send(source.map { $0 + offset * size }, length, type, Int32(peer), Self.messageTag, comm)
            }
            guard code == 0 else { throw failure(code, check, call, peer: peer) }
            messagesSent[peer] &+= 1
            return .done(messagesSent[peer])
        case .recv(let peer):
            try check.peer(peer, role: "source")
            try check.buffer("receive", has: output.bytes, needs: bytes)
            var short: (expected: Int, got: Int)?
            code = forEachPiece(count) { offset, length in
                let result = calls.recv(target.map { $0 + offset * size }, length, type, Int32(peer), Self.messageTag, comm, status)
                // A short piece ends the call: the pieces after it would not line up.
                if result == 0, let got = received(type), got != length {
                    short = (count, offset + Int(got))
                    return -1
                }
                return result
            }
            if let short { throw receivedShort(short, from: peer, check) }
            guard code == 0 else { throw failure(code, check, call, peer: peer) }
            messagesReceived[peer] &+= 1
            return .done(messagesReceived[peer])
        case .sendRecv(let destination, let from):
            try check.peer(destination, role: "destination")
            try check.peer(from, role: "source")
            try check.buffer("send", has: input.bytes, needs: bytes)
            try check.buffer("receive", has: output.bytes, needs: bytes)
            source = separate(source, bytes, from: target, bytes)
            var short: (expected: Int, got: Int)?
            code = forEachPiece(count) { offset, length in
                let result = calls.sendrecv(
                    source.map { $0 + offset * size }, length, type, Int32(destination), Self.messageTag,
                    target.map { $0 + offset * size }, length, type, Int32(from), Self.messageTag, comm, status)
                if result == 0, let got = received(type), got != length {
                    short = (count, offset + Int(got))
                    return -1
                }
                return result
            }
            if let short { throw receivedShort(short, from: from, check) }
            guard code == 0 else { throw failure(code, check, call, peer: from) }
            messagesSent[destination] &+= 1
            messagesReceived[from] &+= 1
            return .done(messagesSent[destination])
        case .barrier:
            code = calls.barrier(comm)
        }
        guard code == 0 else { throw failure(code, check, call, peer: nil) }
        sequence &+= 1
        return .done(sequence)
    }

    @inline(__always)
    private func reduction(_ op: ReduceOp, _ dtype: DType) -> Int {
        constants.datatype(dtype) == nil ? floats.reduction(op, dtype) : constants.reduction(op)
    }

    /// `source` itself when its `sourceBytes` do not overlap the `targetBytes` at `target`, else a
    /// copy of them in `scratch` (MPI forbids aliased send and receive buffers).
    private func separate(_ source: UnsafeRawPointer?, _ sourceBytes: Int, from target: UnsafeMutableRawPointer?, _ targetBytes: Int)
        -> UnsafeRawPointer?
    {
        guard let source, let target, sourceBytes > 0, targetBytes > 0,
            source < UnsafeRawPointer(target) + targetBytes, UnsafeRawPointer(target) < source + sourceBytes
        else { return source }
        if scratch.count < sourceBytes {
            scratch.deallocate()
            scratch = .allocate(byteCount: sourceBytes, alignment: 64)
        }
        scratch.baseAddress?.copyMemory(from: source, byteCount: sourceBytes)
        return UnsafeRawPointer(scratch.baseAddress)
    }

    /// `avg`: the sum MPI made, divided by the group's size (truncating for integers), as the CPU
    /// backends do.
    private func divide(_ target: UnsafeMutableRawPointer, count: Int, dtype: DType) {
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 1) { sources in
            sources[0] = UnsafeRawPointer(target)
            Reduction.reduce(UnsafeBufferPointer(sources), into: target, count: count, dtype: dtype, op: .avg, divisor: worldSize)
        }
    }

    /// Elements the last receive got (`MPI_Get_count` on `status`), or nil when MPI cannot say.
    private func received(_ type: Int) -> Int32? {
        var got: Int32 = 0
        return calls.getCount(status, type, &got) == 0 ? got : nil
    }

    /// A receive that got `got` elements where it expected `expected` (counted over its pieces) is
    /// a mismatched pair of calls: the communicator is broken.
    private func receivedShort(_ short: (expected: Int, got: Int), from peer: Int, _ check: CallCheck) -> CCLError {
        let error = CCLError(
            .malformed, operation: check.operation, group: site.group, rank: site.rank, groupRank: rank, peer: "rank \(globalRanks[peer])",
            "rank \(globalRanks[peer]) sent \(short.got) elements, this receive expected \(short.expected) (mismatched send and receive)")
        broken = error
        return error
    }

    /// Runs `body(offset, length)` over consecutive pieces of `count` elements, each at most
    /// `maxCount` (and, with `packed` bytes per element of a packed piece, at most 64 MiB packed),
    /// at least one (a call of 0 elements is still made); stops at the first MPI error and returns
    /// it (0: all succeeded). Every rank cuts the same count the same way.
    private func forEachPiece(_ count: Int, packed: Int = 0, _ body: (Int, Int32) -> Int32) -> Int32 {
        let limit = packed > 0 && count > maxCount ? max(1, min(maxCount, (64 << 20) / packed)) : maxCount
        var offset = 0
        repeat {
            let length = min(limit, count - offset)
            let code = body(offset, Int32(length))
            if code != 0 { return code }
            offset += length
        } while offset < count
        return 0
    }

    /// At least `bytes` of packing space for the pieces of an all-gather, reduce-scatter or gather.
    private func pieces(_ bytes: Int) -> UnsafeMutableRawPointer {
        if pieceScratch.count < max(bytes, 64) {
            pieceScratch.deallocate()
            pieceScratch = .allocate(byteCount: max(bytes, 64), alignment: 64)
        }
        return pieceScratch.baseAddress ?? status
    }

    /// Copies elements [offset, offset + length) of each of the group's blocks of `count` in
    /// `blocks` next to each other into `packed` (block order).
    private func pack(_ blocks: UnsafeRawPointer, into packed: UnsafeMutableRawPointer, offset: Int, length: Int, count: Int, size: Int) {
        for block in 0..<worldSize {
            (packed + block * length * size).copyMemory(from: blocks + (block * count + offset) * size, byteCount: length * size)
        }
    }

    /// The reverse of `pack`: each rank's piece from `packed` to its place in the blocks.
    private func unpack(_ packed: UnsafeRawPointer, into blocks: UnsafeMutableRawPointer, offset: Int, length: Int, count: Int, size: Int) {
        for block in 0..<worldSize {
            (blocks + (block * count + offset) * size).copyMemory(from: packed + block * length * size, byteCount: length * size)
        }
    }

    /// Another thread is inside MPI, which the thread level MPI provides does not allow.
    private func concurrentCall(_ check: CallCheck) -> CCLError {
        CCLError(
            .invalidArgument, operation: check.operation, group: site.group, rank: site.rank, groupRank: rank,
            "another thread is inside MPI, and MPI provides thread level \(runtime.threadLevel) here: call the communicators from one thread at a time, or set CCL_MPI_THREAD_LEVEL=multiple"
        )
    }

    /// MPI's error for a call; the communicator is broken from here on (MPI leaves its state
    /// undefined after an error).
    private func failure(_ code: Int32, _ check: CallCheck, _ call: CollectiveCall, peer: Int?) -> CCLError {
        let error = CCLError(
            .system, operation: check.operation, group: site.group, rank: site.rank, groupRank: rank,
            peer: peer.map { "rank \(globalRanks[$0])" }, "\(call) failed in MPI: \(runtime.library.describe(code))")
        broken = error
        return error
    }
}
