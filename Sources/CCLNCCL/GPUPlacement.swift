import CCLCore

/// Where one rank's GPU is: its node and the device's PCI bus id, which name the same GPU in
/// every process whatever each one's `CUDA_VISIBLE_DEVICES`.
package struct GPUPlacement: Codable, Sendable, Equatable {
    package var node: String
    package var busId: String
    /// The CUDA ordinal this rank uses (after `CUDA_VISIBLE_DEVICES`), for the message.
    package var ordinal: Int

    package init(node: String, busId: String, ordinal: Int) {
        self.node = node
        self.busId = busId
        self.ordinal = ordinal
    }

    /// Fails when two ranks of a group would share a GPU, naming both ranks, the node, the bus id
    /// and the fix, before NCCL says it its own way ("Duplicate GPU detected"). Every rank runs it
    /// on the same all-gathered list, so every rank fails alike.
    ///
    /// - Parameters:
    ///   - placements: each rank's placement, in group order.
    ///   - ranks: the global rank of each group rank (errors name global ranks).
    package static func checkDistinct(_ placements: [GPUPlacement], ranks: [Int], group: String, rank: Int) throws(CCLError) {
        var first: [GPUPlacement: Int] = [:]
        for (index, placement) in placements.enumerated() {
            if let earlier = first[placement] {
                throw CCLError(
                    .invalidArgument, operation: "create NCCL communicator for group \(group)", group: group, rank: rank,
                    "ranks \(ranks[earlier]) and \(ranks[index]) are both on the GPU at PCI bus \(placement.busId) of node \(placement.node) "
                        + "(CUDA devices \(placements[earlier].ordinal) and \(placement.ordinal)): NCCL needs one GPU per rank. "
                        + "Give each rank its own device: CUDA_VISIBLE_DEVICES per rank, or one rank per GPU with the local rank as the device"
                )
            }
            first[placement] = index
        }
    }
}

extension GPUPlacement: Hashable {
    /// Two placements are the same GPU when node and bus id match (the ordinal is per process).
    package static func == (lhs: GPUPlacement, rhs: GPUPlacement) -> Bool { lhs.node == rhs.node && lhs.busId == rhs.busId }
    package func hash(into hasher: inout Hasher) {
        hasher.combine(node)
        hasher.combine(busId)
    }
}
