import CCLCore

/// Collectives among the ranks of one group (torch.distributed's `ProcessGroup`, NCCL's
/// `ncclComm_t`, MPI's communicator), on one device's buffers.
///
/// Every operation goes through `execute`, the one requirement a backend implements; the
/// familiar methods (`allReduce(_:into:count:dtype:op:)`, `broadcast(_:count:dtype:from:)`, …)
/// are extensions that describe the call and pass it there, so a wrapper (a flight recorder)
/// sees every call of every backend.
///
/// Contract, for every implementation:
/// - Every rank calls the same collectives in the same order with the same kind, dtype, op,
///   count and root; a disagreement fails on every rank with an error naming each rank's call.
/// - `count` is in elements of `dtype`. Buffers must hold at least the bytes the call needs and
///   be on the communicator's `device`; `input` may be the same memory as `output` (in place).
/// - Every rank gets bit-identical results (each element is reduced once, in a fixed order, and
///   the result is copied to everyone); 16-bit floats accumulate in float32 and round once per
///   combination step.
/// - Threading: one thread at a time per communicator (like an NCCL communicator); host
///   backends run the call on the caller's thread and return when it is done; device backends
///   enqueue it on the stream and return.
/// - Every call waits at most the communicator's timeout; the error names the ranks that did not
///   arrive, or the dead rank. After a timeout, a dead peer or `abort` the communicator is
///   broken and every later call fails at once. After a mismatched call a shared-memory
///   communicator stays usable (every rank stopped at the same point); a TCP one is broken. Over
///   TCP, a rank that only sends in the mismatched call (a broadcast root) learns of it at its
///   next call.
public protocol Communicator: AnyObject, Sendable {
    /// This process's rank in the group.
    var rank: Int { get }
    var worldSize: Int { get }
    /// The backend that made it ("shm", "tcp", "hierarchical", …).
    var backend: String { get }
    /// Says what the communicator runs on ("shm", "tcp", "hierarchical (2 nodes: …)").
    var transportDescription: String { get }
    /// Where its buffers must live.
    var device: Device { get }

    /// Runs (host backends) or enqueues on `stream` (device backends) one call. Buffers per
    /// operation: see `CollectiveOp`; an unused side is `DeviceBuffer.none`.
    func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError)
        -> Completion

    /// Breaks the communicator because of `error` found elsewhere (another tier of a composition,
    /// the application): every later call on this rank fails with it, and the other ranks are
    /// told, so they fail with its reason instead of waiting for their timeout. Safe to call more
    /// than once; the first error wins.
    func abort(_ error: CCLError)
}

extension Communicator {
    /// `output[i] = op(input of rank 0 [i], ..., input of rank n-1 [i])`; `MPI_Allreduce`.
    @inlinable
    public func allReduce(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        _ = try execute(CollectiveCall(.allReduce(op), dtype: dtype, count: count), input: .host(input), output: .host(output), on: .host)
    }

    /// `output` (worldSize × count elements) receives every rank's `input` in rank order.
    @inlinable
    public func allGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError)
    {
        _ = try execute(CollectiveCall(.allGather, dtype: dtype, count: count), input: .host(input), output: .host(output), on: .host)
    }

    /// `input` holds worldSize × count elements; rank r's `output` (count elements) receives the
    /// reduction of block r of every rank's input (`MPI_Reduce_scatter_block`).
    @inlinable
    public func reduceScatter(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        _ = try execute(
            CollectiveCall(.reduceScatter(op), dtype: dtype, count: count), input: .host(input), output: .host(output), on: .host)
    }

    /// Every rank's `buffer` receives `root`'s.
    @inlinable
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from root: Int) throws(CCLError) {
        _ = try execute(
            CollectiveCall(.broadcast(root: root), dtype: dtype, count: count), input: .none, output: .host(buffer), on: .host)
    }

    /// `root`'s `output` (worldSize × count elements) receives every rank's input; other ranks
    /// may pass an empty output.
    @inlinable
    public func gather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, to root: Int)
        throws(CCLError)
    {
        _ = try execute(
            CollectiveCall(.gather(root: root), dtype: dtype, count: count), input: .host(input), output: .host(output), on: .host)
    }

    /// Sends `count` elements to `peer`, who calls `recv` with the same count and dtype. Messages
    /// between one pair arrive in order. May return before the peer has received. Like MPI, keep
    /// the order of sends, receives and collectives consistent between a pair: over TCP a receive
    /// or collective that meets the other's message of another kind fails as a mismatch.
    @inlinable
    public func send(_ buffer: UnsafeRawBufferPointer, count: Int, dtype: DType, to peer: Int) throws(CCLError) {
        _ = try execute(CollectiveCall(.send(to: peer), dtype: dtype, count: count), input: .host(buffer), output: .none, on: .host)
    }

    /// Receives `count` elements sent by `peer` into `buffer`.
    @inlinable
    public func recv(into buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from peer: Int) throws(CCLError) {
        _ = try execute(CollectiveCall(.recv(from: peer), dtype: dtype, count: count), input: .none, output: .host(buffer), on: .host)
    }

    /// Sends `buffer` to `destination` while receiving `count` elements from `source`
    /// (`MPI_Sendrecv`): a ring shift where every rank calls it at once never deadlocks.
    @inlinable
    public func sendRecv(
        _ buffer: UnsafeRawBufferPointer, to destination: Int, into output: UnsafeMutableRawBufferPointer, from source: Int, count: Int,
        dtype: DType
    ) throws(CCLError) {
        _ = try execute(
            CollectiveCall(.sendRecv(to: destination, from: source), dtype: dtype, count: count), input: .host(buffer),
            output: .host(output), on: .host)
    }

    /// Returns once every rank has called it.
    @inlinable
    public func barrier() throws(CCLError) {
        _ = try execute(CollectiveCall(.barrier, dtype: .uint8, count: 0), input: .none, output: .none, on: .host)
    }
}
