import CCLBackend
import CCLCollectiveAPI
import CCLCore
import CCLNCCLShims
import CCLStore
import CCLSystem
import Dispatch

/// Collectives on CUDA buffers through NCCL (vLLM's `PyNcclCommunicator`), every call enqueued on
/// the caller's stream with no host synchronisation, so a sequence of calls can be captured in a
/// CUDA graph.
///
/// Creation (collective over the group): the device's primary context is retained and made
/// current; every rank's (node, PCI bus id) is all-gathered and two ranks on one GPU fail on
/// every rank with our error (unless NCCL's multi-rank mode is asked for and available); rank 0's unique id is broadcast through the group; the
/// communicator is created non-blocking and polled with `ncclCommGetAsyncError` under the
/// timeout (aborted on timeout or error, naming the group and ranks); a warm-up all-reduce runs.
///
/// Threading: one thread at a time, the thread whose context is current (`activate`): the context
/// current when an NCCL communicator is made must be current for all its operations.
/// Status: written against NCCL's and the CUDA driver's documented ABI; its GPU paths have not
/// yet run on a GPU (scripts/gpu-check.sh is the check).
final class NCCLCommunicator: Communicator, @unchecked Sendable {
    static let inProgress: Int32 = 7

    let rank: Int
    let worldSize: Int
    let device: Device
    var backend: String { "\(Self.backendName)" }
    static let backendName: StaticString = "nccl"
    var transportDescription: String { "nccl \(nccl.version) on cuda:\(ordinal)" }

    private let nccl: NCCLLibrary
    private let cuda: CUDADriver
    private let ordinal: Int
    private let timeout: Timeout
    private let site: CallSite
    private let groupName: String
    private var comm: OpaquePointer?
    /// Four device bytes for `barrier` (an all-reduce of one int32).
    private var scratch: CUDADriver.DevicePointer = 0
    private var broken: CCLError?
    /// Whether this communicator holds a reference on the device's primary context.
    private var retained = false
    private var sequence: UInt64 = 0
    private var messagesSent: [UInt64]
    private var messagesReceived: [UInt64]

    init(
        group: StatelessProcessGroup, nodes: NodeLayout, ordinal: Int, cuda: CUDADriver, nccl: NCCLLibrary, timeout: Timeout,
        sharedGPUs: Bool = false
    ) throws(CCLError) {
        let globalRanks = group.globalRanks ?? Array(0..<group.worldSize)
        let operation = "create NCCL communicator for group \(group.name)"
        rank = group.rank
        worldSize = group.worldSize
        device = .cuda(ordinal)
        self.nccl = nccl
        self.cuda = cuda
        self.ordinal = ordinal
        self.timeout = timeout
        groupName = group.name
        site = CallSite(group: group.name, rank: globalRanks[group.rank], groupRank: group.rank, worldSize: group.worldSize)
        messagesSent = Array(repeating: 0, count: group.worldSize)
        messagesReceived = messagesSent
        _ = try cuda.activate(ordinal: ordinal)
        retained = true
        let placement = GPUPlacement(node: nodes.nodeOfRank[group.rank], busId: try cuda.pciBusId(ordinal: ordinal), ordinal: ordinal)
        let placements = try group.allGatherObject(placement)
        if !sharedGPUs { try GPUPlacement.checkDistinct(placements, ranks: globalRanks, group: group.name, rank: globalRanks[group.rank]) }
        let id = try group.broadcastObject(group.rank == 0 ? try nccl.uniqueId() : nil, from: 0)
        guard id.count == MemoryLayout<ccl_nccl_unique_id>.size else {
            throw CCLError(.malformed, operation: operation, rank: globalRanks[group.rank], "rank 0 sent a unique id of \(id.count) bytes")
        }
        var unique = ccl_nccl_unique_id()
        withUnsafeMutableBytes(of: &unique) { $0.copyBytes(from: id) }
        var config = ccl_nccl_config_default()
        config.blocking = 0
        var created: UnsafeMutableRawPointer?
        let started = ccl_nccl_comm_init_rank_config(
            nccl.commInitRankConfig, &created, Int32(group.worldSize), &unique, Int32(group.rank), &config)
        comm = created.map { OpaquePointer($0) }
        try finishCreation(started: started, operation)
    }

    /// The communicator of `group` split from `parent` (`ncclCommSplit`, non-blocking, polled
    /// under the parent's timeout, then a warm-up all-reduce): no unique id, no rendezvous of its
    /// own. Collective over every rank of `parent`, each with its sub-group's `color` and its
    /// `key` (its rank in `group`). The parent's placement check covers the child.
    init(splitting parent: NCCLCommunicator, group: StatelessProcessGroup, color: Int, key: Int) throws(CCLError) {
        let globalRanks = group.globalRanks ?? Array(0..<group.worldSize)
        let operation = "split NCCL communicator of group \(parent.groupName) into group \(group.name)"
        rank = group.rank
        worldSize = group.worldSize
        device = parent.device
        nccl = parent.nccl
        cuda = parent.cuda
        ordinal = parent.ordinal
        timeout = parent.timeout
        groupName = group.name
        site = CallSite(group: group.name, rank: globalRanks[group.rank], groupRank: group.rank, worldSize: group.worldSize)
        messagesSent = Array(repeating: 0, count: group.worldSize)
        messagesReceived = messagesSent
        guard let color = Int32(exactly: color), color >= 0, let key = Int32(exactly: key) else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: site.rank, "color \(color) and key \(key) must fit NCCL's int (color ≥ 0)")
        }
        if let broken = parent.broken { throw broken }
        _ = try cuda.activate(ordinal: ordinal)
        retained = true
        var config = ccl_nccl_config_default()
        config.blocking = 0
        var created: OpaquePointer?
        let started = nccl.commSplit(parent.comm, color, key, &created, &config)
        comm = created
        try finishCreation(started: started, operation)
    }

    /// After `ncclCommInitRankConfig` or `ncclCommSplit` returned `started`: waits until the
    /// communicator is ready, then runs the warm-up all-reduce; on failure aborts it.
    private func finishCreation(started: Int32, _ operation: String) throws(CCLError) {
        do throws(CCLError) {
            guard started == 0 || started == Self.inProgress else { throw ncclError(started, operation) }
            try waitUntilReady(operation)
            try cuda.check(cuda.memAlloc(&scratch, 4), "cuMemAlloc (NCCL barrier scratch)")
            // Warm-up: the first collective sets up connections; do it now, not in the first call.
            let warm = UnsafeMutableRawPointer(bitPattern: UInt(scratch))
            try check(nccl.allReduce(warm, warm, 1, 2, 0, comm, nil), "warm-up allReduce")
            try cuda.check(cuda.streamSynchronize(nil), "cuStreamSynchronize (warm-up)")
        } catch {
            abort(error)
            throw error
        }
    }

    deinit {
        if scratch != 0 { _ = cuda.memFree(scratch) }
        if broken == nil, let comm { _ = nccl.commDestroy(comm) }
        if retained { cuda.release(ordinal: ordinal) }
    }

    /// Polls `ncclCommGetAsyncError` until the communicator leaves `ncclInProgress`, at most the
    /// timeout; a timeout or an error is thrown (the caller aborts).
    private func waitUntilReady(_ operation: String) throws(CCLError) {
        let deadline = timeout.nanoseconds.map { DispatchTime.now().uptimeNanoseconds &+ $0 }
        var pause: UInt32 = 1
        while true {
            var state: Int32 = 0
            let asked = nccl.commGetAsyncError(comm, &state)
            guard asked == 0 else { throw ncclError(asked, operation) }
            if state == 0 { return }
            guard state == Self.inProgress else { throw ncclError(state, operation) }
            if let deadline, DispatchTime.now().uptimeNanoseconds > deadline {
                throw CCLError(
                    .timeout, operation: operation, group: groupName, rank: site.rank,
                    "NCCL was still connecting the \(worldSize) ranks after \(timeout): a rank is missing, stuck, or cannot reach the others (NCCL_DEBUG=INFO says which)"
                )
            }
            usleepBounded(pause)
            pause = min(pause * 2, 1000)
        }
    }

    private func usleepBounded(_ microseconds: UInt32) {
        let until = DispatchTime.now().uptimeNanoseconds &+ UInt64(microseconds) * 1000
        while DispatchTime.now().uptimeNanoseconds < until { Futex.yield() }
    }

    private func ncclError(_ result: Int32, _ operation: String) -> CCLError {
        let detail = nccl.getLastError(comm).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        return CCLError(
            .system, operation: operation, group: groupName, rank: site.rank,
            "\(nccl.describe(result)) (ncclResult \(result))" + (detail.map { ": \($0)" } ?? ""))
    }

    /// An enqueue's result: success, or in progress (non-blocking: waited for, bounded); else an error.
    private func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(CCLError) {
        if result == 0 { return }
        if result == Self.inProgress {
            try waitUntilReady(operation())
            return
        }
        throw ncclError(result, operation())
    }

    func abort(_ error: CCLError) {
        guard broken == nil else { return }
        broken = error
        if let comm { _ = nccl.commAbort(comm) }
    }

    static func dataType(_ dtype: DType) -> Int32 {
        switch dtype {
        case .int8: 0
        case .uint8: 1
        case .int32: 2
        case .int64: 4
        case .float16: 6
        case .float32: 7
        case .float64: 8
        case .bfloat16: 9
        case .float8e4m3: 10
        case .float8e5m2: 11
        }
    }

    static func reduction(_ op: ReduceOp) -> Int32 {
        switch op {
        case .sum: 0
        case .prod: 1
        case .max: 2
        case .min: 3
        case .avg: 4
        }
    }

    func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError) -> Completion
    {
        if let broken { throw broken }
        try site.checkBuffers(call, input: input, output: output, stream: stream, device: device, backend: Self.backendName)
        let check = site.check(call.op.kind.description)  // a literal: no allocation per call
        let bytes = try check.count(call.count, call.dtype)
        if call.dtype.size == 1, !NCCLLibrary.has(call.dtype, version: nccl.version) {
            throw CCLError(
                .invalidArgument, operation: check.operation, group: groupName, rank: site.rank,
                "\(call.dtype) needs NCCL \(NCCLLibrary.float8Version) or newer (its float8 types); this is NCCL \(nccl.version)")
        }
        let count = call.count, type = Self.dataType(call.dtype), handle = stream.handle, n = worldSize
        let source = UnsafeRawPointer(input.base), target = output.base
        switch call.op {
        case .allReduce(let op):
            try check.buffer("input", has: input.bytes, needs: bytes)
            try check.buffer("output", has: output.bytes, needs: bytes)
            try self.check(nccl.allReduce(source, target, count, type, Self.reduction(op), comm, handle), check.operation)
        case .allGather:
            try check.buffer("input", has: input.bytes, needs: bytes)
            try check.buffer("output", has: output.bytes, needs: try check.times(bytes, n))
            try self.check(nccl.allGather(source, target, count, type, comm, handle), check.operation)
        case .reduceScatter(let op):
            try check.buffer("input", has: input.bytes, needs: try check.times(bytes, n))
            try check.buffer("output", has: output.bytes, needs: bytes)
            try self.check(nccl.reduceScatter(source, target, count, type, Self.reduction(op), comm, handle), check.operation)
        case .broadcast(let root):
            try check.peer(root, role: "root")
            try check.buffer("", has: output.bytes, needs: bytes)
            try self.check(nccl.broadcast(UnsafeRawPointer(target), target, count, type, Int32(root), comm, handle), check.operation)
        case .gather(let root):
            try check.peer(root, role: "root")
            try check.buffer("input", has: input.bytes, needs: bytes)
            if rank == root { try check.buffer("output", has: output.bytes, needs: try check.times(bytes, n)) }
            try grouped(check.operation) { () throws(CCLError) in
                try self.check(nccl.send(source, count, type, Int32(root), comm, handle), check.operation)
                if rank == root, let target {
                    for peer in 0..<n {
                        try self.check(nccl.recv(target + peer * bytes, count, type, Int32(peer), comm, handle), check.operation)
                    }
                }
            }
        case .send(let peer):
            try check.peer(peer, role: "destination")
            try check.buffer("send", has: input.bytes, needs: bytes)
            try self.check(nccl.send(source, count, type, Int32(peer), comm, handle), check.operation)
            messagesSent[peer] &+= 1
            return Completion(sequence: messagesSent[peer], state: .enqueued(stream))
        case .recv(let peer):
            try check.peer(peer, role: "source")
            try check.buffer("receive", has: output.bytes, needs: bytes)
            try self.check(nccl.recv(target, count, type, Int32(peer), comm, handle), check.operation)
            messagesReceived[peer] &+= 1
            return Completion(sequence: messagesReceived[peer], state: .enqueued(stream))
        case .sendRecv(let destination, let from):
            try check.peer(destination, role: "destination")
            try check.peer(from, role: "source")
            try check.buffer("send", has: input.bytes, needs: bytes)
            try check.buffer("receive", has: output.bytes, needs: bytes)
            try grouped(check.operation) { () throws(CCLError) in
                try self.check(nccl.send(source, count, type, Int32(destination), comm, handle), check.operation)
                try self.check(nccl.recv(target, count, type, Int32(from), comm, handle), check.operation)
            }
            messagesSent[destination] &+= 1
            messagesReceived[from] &+= 1
            return Completion(sequence: messagesSent[destination], state: .enqueued(stream))
        case .barrier:
            let word = UnsafeMutableRawPointer(bitPattern: UInt(scratch))
            try self.check(nccl.allReduce(word, word, 1, 2, 0, comm, handle), check.operation)
        }
        sequence &+= 1
        return Completion(sequence: sequence, state: .enqueued(stream))
    }

    /// `ncclGroupStart` … `ncclGroupEnd` around `body` (the end always runs).
    private func grouped(_ operation: String, _ body: () throws(CCLError) -> Void) throws(CCLError) {
        try check(nccl.groupStart(), operation)
        var failure: CCLError?
        do { try body() } catch { failure = error }
        let ended = nccl.groupEnd()
        if let failure { throw failure }
        try check(ended, operation)
    }
}

extension NCCLCommunicator: SplittableCommunicator {
    func split(into group: StatelessProcessGroup, color: Int, key: Int) throws(CCLError) -> any Communicator {
        try NCCLCommunicator(splitting: self, group: group, color: color, key: key)
    }
}

extension NCCLCommunicator: StreamMarking {
    /// `cuStreamIsCapturing` says active or invalidated (or fails: treated as capturing).
    func isCapturing(_ stream: DeviceStream) -> Bool {
        var status: Int32 = 0
        return cuda.streamIsCapturing(stream.handle.map { OpaquePointer($0) }, &status) != 0 || status != 0
    }

    /// A CUDA event (timing off) recorded on `stream` after the calls enqueued so far.
    func placeMarker(on stream: DeviceStream) -> (any StreamMarker)? {
        var event: OpaquePointer?
        guard cuda.eventCreate(&event, CUDAEventMarker.disableTiming) == 0, let event else { return nil }
        guard cuda.eventRecord(event, stream.handle.map { OpaquePointer($0) }) == 0 else {
            _ = cuda.eventDestroy(event)
            return nil
        }
        return CUDAEventMarker(event: event, cuda: cuda)
    }
}

/// A recorded CUDA event, queried without blocking (`cuEventQuery`), destroyed with the marker.
final class CUDAEventMarker: StreamMarker {
    /// `CU_EVENT_DISABLE_TIMING`: the cheapest event to record.
    static let disableTiming: UInt32 = 2
    private let event: OpaquePointer
    private let cuda: CUDADriver

    init(event: OpaquePointer, cuda: CUDADriver) {
        self.event = event
        self.cuda = cuda
    }

    deinit { _ = cuda.eventDestroy(event) }

    /// Reached when `cuEventQuery` says success; not ready, or an error (the recorder then keeps
    /// the calls as enqueued), is not reached.
    var isReached: Bool { cuda.eventQuery(event) == 0 }
}

extension NCCLCommunicator: CommunicationWindows {
    var windowsAvailable: Bool { nccl.windows != nil }

    /// The window calls, or why there are none; a broken communicator rethrows its error.
    private func windowCalls(_ operation: String) throws(CCLError) -> NCCLWindowCalls {
        if let broken { throw broken }
        guard let calls = nccl.windows else {
            throw CCLError(
                .unavailable, operation: operation, group: groupName, rank: site.rank,
                "NCCL \(nccl.version) (\(nccl.path)) has no symmetric-memory windows: NCCL 2.27 or newer has them")
        }
        return calls
    }

    /// Fails unless `buffer` is on this communicator's device.
    private func checkDevice(_ buffer: DeviceBuffer, _ operation: String) throws(CCLError) {
        guard buffer.device == device, buffer.base != nil, buffer.bytes > 0 else {
            throw CCLError(
                .invalidArgument, operation: operation, group: groupName, rank: site.rank,
                "the window's buffer must be non-empty memory on \(device), got \(buffer.bytes) B on \(buffer.device)")
        }
    }

    func allocateWindowMemory(bytes: Int) throws(CCLError) -> DeviceBuffer {
        let operation = "allocate window memory on group \(groupName)"
        let calls = try windowCalls(operation)
        guard bytes > 0 else {
            throw CCLError(.invalidArgument, operation: operation, group: groupName, rank: site.rank, "size \(bytes) must be positive")
        }
        var pointer: UnsafeMutableRawPointer?
        try check(calls.memAlloc(&pointer, bytes), "\(operation) (ncclMemAlloc of \(bytes) B)")
        return DeviceBuffer(base: pointer, bytes: bytes, device: device)
    }

    func freeWindowMemory(_ buffer: DeviceBuffer) throws(CCLError) {
        let operation = "free window memory on group \(groupName)"
        let calls = try windowCalls(operation)
        try checkDevice(buffer, operation)
        try check(calls.memFree(buffer.base), "\(operation) (ncclMemFree)")
    }

    func registerWindow(_ buffer: DeviceBuffer, symmetric: Bool) throws(CCLError) -> CommunicationWindow {
        let operation = "register window on group \(groupName)"
        let calls = try windowCalls(operation)
        try checkDevice(buffer, operation)
        var window: OpaquePointer?
        let flags = symmetric ? NCCLWindowCalls.symmetric : 0
        try check(calls.register(comm, buffer.base, buffer.bytes, &window, flags), "\(operation) (ncclCommWindowRegister)")
        return CommunicationWindow(buffer: buffer, handle: UInt(bitPattern: window.map { Int(bitPattern: UnsafeRawPointer($0)) } ?? 0))
    }

    func deregisterWindow(_ window: CommunicationWindow) throws(CCLError) {
        let operation = "deregister window on group \(groupName)"
        let calls = try windowCalls(operation)
        try check(calls.deregister(comm, OpaquePointer(bitPattern: window.handle)), "\(operation) (ncclCommWindowDeregister)")
    }
}
