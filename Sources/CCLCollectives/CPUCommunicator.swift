import CCLCore
import CCLStore
import Logging

/// Picks and makes the CPU communicator of a group (vLLM's `cpu_group` / torch's Gloo group).
public enum CPUCommunicator {
    /// What a group runs on.
    public enum Choice: String, Sendable, Equatable {
        case shm, tcp, hierarchical
    }

    /// Pure choice from the option and where the group's ranks live:
    /// `.auto` → shared memory when all ranks share a node, TCP when every rank is on its own
    /// node, hierarchical (shared memory inside nodes, TCP among node leaders) otherwise.
    /// `.shm` on a multi-node group is an error; `.tcp` always works.
    public static func choose(_ transport: CollectiveOptions.Transport, nodes: NodeLayout) throws(CCLError) -> Choice {
        let nodeCount = nodes.nodeCount
        switch transport {
        case .tcp: return .tcp
        case .shm:
            guard nodeCount <= 1 else {
                throw CCLError(
                    .invalidArgument, operation: "choose a CPU transport",
                    "CCL_TRANSPORT=shm, but the group spans \(nodeCount) nodes: shared memory works only inside one node")
            }
            return .shm
        case .auto:
            if nodeCount <= 1 { return .shm }
            return nodeCount == nodes.nodeOfRank.count ? .tcp : .hierarchical
        }
    }

    /// Collective over `group`; `nodes` gives the node of each of its ranks (group order).
    public static func create(group: StatelessProcessGroup, nodes: NodeLayout, options: CollectiveOptions = CollectiveOptions())
        throws(CCLError) -> any Communicator
    {
        guard nodes.nodeOfRank.count == group.worldSize else {
            throw CCLError(
                .invalidArgument, operation: "create CPU communicator for group \(group.name)", rank: group.rank,
                "the node layout has \(nodes.nodeOfRank.count) ranks, the group \(group.worldSize)")
        }
        let choice = try choose(options.transport, nodes: nodes)
        if choice != .shm, nodes.nodeCount > 1, ["127.0.0.1", "::1", "localhost"].contains(options.host) {
            // Right only when the "nodes" share this machine's loopback (tests); say so.
            options.logger.warning(
                "group \(group.name) spans \(nodes.nodeCount) nodes but rank \(group.rank) listens on \(options.host); set CCL_HOST to an address of this node the others reach"
            )
        }
        switch choice {
        case .shm: return try ShmCommunicator(group: group, options: options)
        case .tcp: return try TCPCommunicator(group: group, options: options)
        case .hierarchical: return try HierarchicalCommunicator(group: group, nodes: nodes, options: options)
        }
    }
}
