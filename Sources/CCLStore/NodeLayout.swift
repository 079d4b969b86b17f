import CCLCore

/// Which ranks of a group share a node (vLLM's `in_the_same_node_as` and `_node_count`), from
/// every rank's node identity.
public struct NodeLayout: Sendable, Equatable {
    /// Node identity of each rank, in rank order.
    public let nodeOfRank: [String]

    /// A layout from every rank's node identity, in rank order (no exchange).
    public init(nodeOfRank: [String]) { self.nodeOfRank = nodeOfRank }

    /// Gathers every rank's identity through the group (one all-gather).
    public init(group: StatelessProcessGroup, nodeID: String) throws(CCLError) {
        nodeOfRank = try group.allGatherObject(nodeID)
    }

    /// Distinct nodes, in order of their lowest rank.
    public var nodes: [String] {
        var seen: Set<String> = []
        return nodeOfRank.filter { seen.insert($0).inserted }
    }

    /// How many distinct nodes the group spans.
    public var nodeCount: Int { nodes.count }

    /// The index of `rank`'s node in `nodes` (node rank).
    public func nodeIndex(of rank: Int) -> Int { nodes.firstIndex(of: nodeOfRank[rank]) ?? 0 }

    /// Ranks on the same node as `rank`, ascending.
    public func ranksOnSameNode(as rank: Int) -> [Int] { nodeOfRank.indices.filter { nodeOfRank[$0] == nodeOfRank[rank] } }

    /// Ranks on other nodes than `rank`, ascending; none when `rank` is outside the layout.
    public func ranksOnOtherNodes(than rank: Int) -> [Int] {
        guard nodeOfRank.indices.contains(rank) else { return [] }
        return nodeOfRank.indices.filter { nodeOfRank[$0] != nodeOfRank[rank] }
    }

    /// For each rank of `ranks`, whether it is on `source`'s node (vLLM's `in_the_same_node_as`).
    public func sameNode(as source: Int, ranks: [Int]) -> [Bool] { ranks.map { nodeOfRank[$0] == nodeOfRank[source] } }

    /// Local rank and local world size of `rank`.
    public func local(_ rank: Int) -> (rank: Int, worldSize: Int) {
        let peers = ranksOnSameNode(as: rank)
        return (peers.firstIndex(of: rank) ?? 0, peers.count)
    }
}
