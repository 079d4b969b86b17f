import CCLBackend
import CCLCore
import CCLStore

/// Shared memory among the ranks of one node (`ShmCommunicator`).
public struct ShmBackend: Backend {
    /// The options its communicators get.
    public let options: CollectiveOptions
    /// A backend whose communicators use `options`.
    public init(options: CollectiveOptions = CollectiveOptions()) { self.options = options }

    public var name: String { "shm" }
    public var serves: Device.Kind { .host }

    public func probe(_ context: BackendContext) -> BackendProbe {
        guard context.nodeCount <= 1 else {
            return .unavailable(reason: "the group spans \(context.nodeCount) nodes; shared memory works only inside one node")
        }
        return .available(version: "", details: "POSIX shared memory in /dev/shm")
    }

    public func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator {
        try ShmCommunicator(group: group, options: options)
    }
}

/// A TCP mesh among all ranks, anywhere (`TCPCommunicator`).
public struct TCPBackend: Backend {
    /// The options its communicators get.
    public let options: CollectiveOptions
    /// A backend whose communicators use `options`.
    public init(options: CollectiveOptions = CollectiveOptions()) { self.options = options }

    public var name: String { "tcp" }
    public var serves: Device.Kind { .host }

    public func probe(_ context: BackendContext) -> BackendProbe {
        .available(version: "", details: "listening on \(options.tcp.host)")
    }

    public func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator {
        if nodes.nodeCount > 1, ["127.0.0.1", "::1", "localhost"].contains(options.tcp.host) {
            // Right only when the "nodes" share this machine's loopback (tests); say so.
            options.logger.warning(
                "group \(group.name) spans \(nodes.nodeCount) nodes but rank \(group.rank) listens on \(options.tcp.host); set CCL_HOST to an address of this node the others reach"
            )
        }
        let node = nodes.nodeOfRank[group.rank]
        return try TCPCommunicator(group: group, options: options, ranksOnNode: nodes.nodeOfRank.filter { $0 == node }.count)
    }
}

/// One tier inside each node and one between nodes (`HierarchicalCommunicator`); by default
/// shared memory inside and TCP between. Any two host backends compose.
public struct HierarchicalBackend: Backend {
    /// The tier inside each node.
    public let intraNode: any Backend
    /// The tier among the nodes' first ranks.
    public let interNode: any Backend

    /// Shared memory inside each node, TCP among nodes, both with `options`.
    public init(options: CollectiveOptions = CollectiveOptions()) {
        self.init(intraNode: ShmBackend(options: options), interNode: TCPBackend(options: options))
    }

    /// Any two host backends as the tiers (MPI among nodes, say).
    public init(intraNode: any Backend, interNode: any Backend) {
        self.intraNode = intraNode
        self.interNode = interNode
    }

    public var name: String { "hierarchical" }
    public var serves: Device.Kind { .host }

    public func probe(_ context: BackendContext) -> BackendProbe {
        let inside = intraNode.probe(BackendContext(device: .host, worldSize: 1, nodeCount: 1, launcher: context.launcher))
        let between = interNode.probe(
            BackendContext(device: .host, worldSize: context.nodeCount, nodeCount: context.nodeCount, launcher: context.launcher))
        guard inside.isAvailable else { return .unavailable(reason: "its intra-node tier \(intraNode.name) is \(inside)") }
        guard between.isAvailable else { return .unavailable(reason: "its inter-node tier \(interNode.name) is \(between)") }
        return .available(version: "", details: "\(intraNode.name) inside nodes, \(interNode.name) between")
    }

    public func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator {
        try HierarchicalCommunicator(
            group: group, nodes: nodes,
            intraNode: { (node, layout) throws(CCLError) in try intraNode.make(group: node, nodes: layout, device: device) },
            interNode: { (across, layout) throws(CCLError) in try interNode.make(group: across, nodes: layout, device: device) })
    }
}
