import CCLCollectiveAPI
import CCLCore
import CCLStore

/// A communicator that makes its sub-groups' communicators out of itself (NCCL's
/// `ncclCommSplit`) instead of a rendezvous of their own.
package protocol SplittableCommunicator: Communicator {
    /// The communicator of `group`, a sub-group holding this rank, made from this one.
    ///
    /// Collective over *every* rank of this communicator: each calls it once, with its own
    /// sub-group's `color` (one per sub-group, ≥ 0) and `key` (its rank in `group`).
    func split(into group: StatelessProcessGroup, color: Int, key: Int) throws(CCLError) -> any Communicator
}
