import CCLCollectiveAPI
import CCLCollectives
import CCLTrace

extension Communicator {
    /// The costs by which this communicator's shared-memory all-reduce chooses its algorithm
    /// (measured when it was made, the same on every rank of the node): its own, or the node
    /// part's of a hierarchical communicator; nil for other backends.
    public var sharedMemoryCosts: ShmCostModel? {
        let inner = unrecorded
        if let shm = inner as? ShmCommunicator { return shm.costModel }
        return (inner as? HierarchicalCommunicator)?.nodeCostModel
    }
}
