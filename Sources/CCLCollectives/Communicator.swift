import CCLCore

/// Collectives on CPU buffers among the ranks of one group (torch.distributed's `ProcessGroup`,
/// NCCL's `ncclComm_t`, MPI's communicator).
///
/// Contract, for every implementation:
/// - Every rank calls the same collectives in the same order with the same kind, dtype, op,
///   count and root; a disagreement fails on every rank with an error naming each rank's call.
/// - `count` is in elements of `dtype`. Buffers must hold at least the bytes the call needs;
///   `input` may be the same memory as `output` (in place).
/// - Every rank gets bit-identical results (each element is reduced once, in a fixed order, and
///   the result is copied to everyone); 16-bit floats accumulate in float32 and round once per
///   combination step.
/// - Threading: one thread at a time per communicator (like an NCCL communicator); calls run on
///   the caller's thread.
/// - Every call waits at most the communicator's timeout; the error names the ranks that did not
///   arrive, or the dead rank. After a timeout or a dead peer the communicator is broken and
///   every later call fails at once. After a mismatched call a shared-memory communicator stays
///   usable (every rank stopped at the same point); a TCP one is broken. Over TCP, a rank that
///   only sends in the mismatched call (a broadcast root) learns of it at its next call.
public protocol Communicator: AnyObject, Sendable {
    /// This process's rank in the group.
    var rank: Int { get }
    var worldSize: Int { get }
    /// Says what the communicator runs on ("shm", "tcp", "hierarchical (2 nodes)").
    var transportDescription: String { get }

    /// `output[i] = op(input of rank 0 [i], ..., input of rank n-1 [i])`; `MPI_Allreduce`.
    func allReduce(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError)
    /// `output` (worldSize × count elements) receives every rank's `input` in rank order.
    func allGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError)
    /// `input` holds worldSize × count elements; rank r's `output` (count elements) receives the
    /// reduction of block r of every rank's input (`MPI_Reduce_scatter_block`).
    func reduceScatter(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError)
    /// Every rank's `buffer` receives `root`'s.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from root: Int) throws(CCLError)
    /// `root`'s `output` (worldSize × count elements) receives every rank's input; other ranks
    /// may pass an empty output.
    func gather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, to root: Int)
        throws(CCLError)
    /// Sends `count` elements to `peer`, who calls `recv` with the same count and dtype. Messages
    /// between one pair arrive in order. May return before the peer has received. Like MPI, keep
    /// the order of sends, receives and collectives consistent between a pair: over TCP a receive
    /// or collective that meets the other's message of another kind fails as a mismatch.
    func send(_ buffer: UnsafeRawBufferPointer, count: Int, dtype: DType, to peer: Int) throws(CCLError)
    func recv(into buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from peer: Int) throws(CCLError)
    /// Sends `buffer` to `destination` while receiving `count` elements from `source`
    /// (`MPI_Sendrecv`): a ring shift where every rank calls it at once never deadlocks.
    func sendRecv(
        _ buffer: UnsafeRawBufferPointer, to destination: Int, into output: UnsafeMutableRawBufferPointer, from source: Int, count: Int,
        dtype: DType
    ) throws(CCLError)
    /// Returns once every rank has called it.
    func barrier() throws(CCLError)
}

/// Checks one call's arguments before any rank is waited on; errors name the call and the rank.
struct CallCheck {
    let name: String
    let group: String
    let rank: Int
    let worldSize: Int

    /// Built only when an error needs it (the checks run on every call).
    var operation: String { "\(name) on group \(group)" }

    func count(_ count: Int, _ dtype: DType) throws(CCLError) -> Int {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard count >= 0, !overflow else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "count \(count) of \(dtype) is not a valid size")
        }
        return bytes
    }

    func buffer(_ name: String, has available: Int, needs bytes: Int) throws(CCLError) {
        guard available >= bytes else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: rank, "\(name) buffer holds \(available) bytes, the call needs \(bytes)")
        }
    }

    // One check per call shape; each returns the bytes of one rank's block.

    /// Input and output of `count` elements (all-reduce).
    func sameSize(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError) -> Int
    {
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: bytes)
        try buffer("output", has: output.count, needs: bytes)
        return bytes
    }

    /// Input of `count` elements, output of worldSize × count (all-gather).
    func gathering(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError) -> Int
    {
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: bytes)
        try buffer("output", has: output.count, needs: times(bytes, worldSize))
        return bytes
    }

    /// Input of worldSize × count elements, output of `count` (reduce-scatter).
    func scattering(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError) -> Int
    {
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: times(bytes, worldSize))
        try buffer("output", has: output.count, needs: bytes)
        return bytes
    }

    /// A root in range and a buffer of `count` elements (broadcast).
    func rooted(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, root: Int) throws(CCLError) {
        try peer(root, role: "root")
        try self.buffer("", has: buffer.count, needs: self.count(count, dtype))
    }

    /// A root in range, input of `count` elements and, at the root, output of worldSize × count.
    func gatheringTo(
        _ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, root: Int, isRoot: Bool
    ) throws(CCLError) -> Int {
        try peer(root, role: "root")
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: bytes)
        if isRoot { try buffer("output", has: output.count, needs: times(bytes, worldSize)) }
        return bytes
    }

    func peer(_ peer: Int, role: String) throws(CCLError) {
        guard (0..<worldSize).contains(peer) else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "\(role) \(peer) is outside 0..<\(worldSize)")
        }
    }

    func times(_ bytes: Int, _ factor: Int) throws(CCLError) -> Int {
        let (total, overflow) = bytes.multipliedReportingOverflow(by: factor)
        guard !overflow else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "\(bytes) bytes × \(factor) ranks overflows")
        }
        return total
    }
}

extension CCLError {
    /// What a failing rank tells the others: its operation, the peer it blames, the message.
    var relayText: String { "\(operation): " + (peer.map { "\($0): " } ?? "") + message }
}
