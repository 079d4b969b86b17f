/// One operation of the collective API with its own arguments (reduce op, root, peers). Ranks
/// are group ranks.
public enum CollectiveOp: Sendable, Hashable, CustomStringConvertible {
    /// `output[i] = op(input of rank 0 [i], …)`; `MPI_Allreduce`, `ncclAllReduce`.
    case allReduce(ReduceOp)
    /// `output` (worldSize × count) receives every rank's `input` in rank order.
    case allGather
    /// `input` holds worldSize × count elements; rank r's `output` receives the reduction of
    /// block r of every input (`MPI_Reduce_scatter_block`, `ncclReduceScatter`).
    case reduceScatter(ReduceOp)
    /// Every rank's `output` receives `root`'s (the input is ignored: in place).
    case broadcast(root: Int)
    /// `root`'s `output` (worldSize × count) receives every rank's input.
    case gather(root: Int)
    /// `input` goes to `peer`, who runs `.recv` with the same count and dtype.
    case send(to: Int)
    /// `output` receives `peer`'s `.send`.
    case recv(from: Int)
    /// Sends `input` to `destination` while receiving `output` from `source` (`MPI_Sendrecv`).
    case sendRecv(to: Int, from: Int)
    /// Returns once every rank has called it.
    case barrier

    /// The kind as the call fingerprints carry it (send and recv are point-to-point).
    public var kind: CollectiveKind {
        switch self {
        case .allReduce: .allReduce
        case .allGather: .allGather
        case .reduceScatter: .reduceScatter
        case .broadcast: .broadcast
        case .gather: .gather
        case .send, .recv, .sendRecv: .sendRecv
        case .barrier: .barrier
        }
    }

    /// The reduction, for the reducing operations.
    public var reduceOp: ReduceOp? {
        switch self {
        case .allReduce(let op), .reduceScatter(let op): op
        default: nil
        }
    }

    /// "allReduce(sum)", "broadcast(root 2)", "sendRecv(to 1, from 3)".
    public var description: String {
        switch self {
        case .allReduce(let op): "allReduce(\(op))"
        case .allGather: "allGather"
        case .reduceScatter(let op): "reduceScatter(\(op))"
        case .broadcast(let root): "broadcast(root \(root))"
        case .gather(let root): "gather(root \(root))"
        case .send(let peer): "send(to \(peer))"
        case .recv(let peer): "recv(from \(peer))"
        case .sendRecv(let destination, let source): "sendRecv(to \(destination), from \(source))"
        case .barrier: "barrier"
        }
    }
}

/// The description of one call: what every backend's `execute` receives and what a recorder
/// keeps. `count` is in elements of `dtype` (see `CollectiveOp` for the buffers' sizes).
public struct CollectiveCall: Sendable, Hashable, CustomStringConvertible {
    /// The operation, with its reduce op, root or peers.
    public var op: CollectiveOp
    /// The element type.
    public var dtype: DType
    /// The number of elements (per rank; see `CollectiveOp` for each operation's buffers).
    public var count: Int

    /// A call of `op` on `count` elements of `dtype`.
    @inlinable
    public init(_ op: CollectiveOp, dtype: DType, count: Int) {
        self.op = op
        self.dtype = dtype
        self.count = count
    }

    /// "allReduce(sum) of 1024 float32".
    public var description: String {
        op == .barrier ? "barrier" : "\(op) of \(count) \(dtype)"
    }
}

/// What `execute` returns.
///
/// - `sequence`: the call's number in its communicator (1 for the first), as its fingerprint
///   carries it: collectives count collectives; sends and receives count the messages between
///   the pair.
/// - `state`: host backends return `.done`; device backends return `.enqueued` with the stream
///   the work went on, which has finished the call once the stream has reached it.
public struct Completion: Sendable, Equatable {
    /// Finished on return (host backends), or enqueued on a stream (device backends).
    public enum State: Sendable, Equatable {
        case done
        case enqueued(DeviceStream)
    }

    /// The communicator's number for the call (per pair for send and recv).
    public var sequence: UInt64
    /// Whether the call has finished or is on a stream.
    public var state: State

    /// A completion of call `sequence`.
    @inlinable
    public init(sequence: UInt64, state: State) {
        self.sequence = sequence
        self.state = state
    }

    /// Call `sequence`, finished.
    @inlinable
    public static func done(_ sequence: UInt64) -> Completion { Completion(sequence: sequence, state: .done) }
}
