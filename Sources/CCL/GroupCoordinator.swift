import CCLCore
import CCLQueue
import CCLStore
import CCLTopology

/// One group a rank belongs to (vLLM's `GroupCoordinator`): its ranks, this rank's place in it,
/// a process group under its own store prefix, its broadcast queue, its CPU communicator (vLLM's
/// `cpu_group`: shared memory inside a node, TCP across, hierarchical for both) and its device
/// communicator (vLLM's `device_communicator`: NCCL for CUDA buffers), both from the backend
/// registry.
///
/// Made collectively: every rank creates, for each kind, the groups of the layout in list order
/// (`coordinators(for:)`), exactly as vLLM does, so ranks agree on names and keys.
public final class GroupCoordinator: @unchecked Sendable {
    /// "tp0", "pp3": the kind and the index in the layout's list.
    public let name: String
    /// Which groups of the layout this is one of.
    public let kind: ParallelLayout.Kind
    /// Global ranks, in group order.
    public let ranks: [Int]
    /// This process's global rank and its index in `ranks`.
    public let rank: Int
    /// This process's index in `ranks` (its rank in `group`).
    public let rankInGroup: Int
    /// The group's process group (its keys under `name` in the job's store).
    public let group: StatelessProcessGroup
    /// The group's broadcast queue (first rank writes), when asked for.
    public let queue: MessageQueueEnd?
    /// The group's collectives on host buffers, when asked for.
    public let cpuCommunicator: (any Communicator)?
    /// The group's collectives on this rank's device buffers, when a device was given; for
    /// `.host` it is `cpuCommunicator`.
    public let deviceCommunicator: (any Communicator)?
    /// Which backend each communicator came from, and why.
    public let cpuChoice: BackendChoice.Decision?
    /// Which backend the device communicator came from, and why.
    public let deviceChoice: BackendChoice.Decision?

    /// How many ranks the group has.
    public var worldSize: Int { ranks.count }
    /// Whether this rank is the group's first (its queue's writer).
    public var isFirstRank: Bool { rankInGroup == 0 }

    init(
        name: String, kind: ParallelLayout.Kind, ranks: [Int], rank: Int, group: StatelessProcessGroup, queue: MessageQueueEnd?,
        cpu: (any Communicator, BackendChoice.Decision)?, device: (any Communicator, BackendChoice.Decision)?
    ) {
        self.name = name
        self.kind = kind
        self.ranks = ranks
        self.rank = rank
        rankInGroup = ranks.firstIndex(of: rank) ?? 0
        self.group = group
        self.queue = queue
        cpuCommunicator = cpu?.0
        cpuChoice = cpu?.1
        deviceCommunicator = device?.0
        deviceChoice = device?.1
    }

    /// This rank's group of `kind`, with its store namespace `name` and, when `withQueue`, its
    /// broadcast queue (same-node members on shared memory, others over TCP), when `collectives`
    /// is given its CPU communicator (`CPUCommunicatorFactory.create`), and when `device` is given its
    /// device communicator (the registry's choice for that device, with the same request).
    ///
    /// Collective: every rank of the group calls it with the same arguments but its own rank.
    ///
    /// - Parameters:
    ///   - kind: which groups of the layout (tensor, pipeline, data, expert, context parallel).
    ///   - layout: the job's parallel layout.
    ///   - rank: this process's global rank.
    ///   - store: the job's store; the group's keys go under its name (`tp0`, `pp3`, …).
    ///   - nodes: node of every global rank (`NodeLayout` of the world group).
    ///   - withQueue: whether to make the group's broadcast queue (its first rank writes).
    ///   - options: the queue's options.
    ///   - collectives: when given, the options of the group's CPU communicator (and of the device
    ///     communicator's backend request).
    ///   - device: this rank's device (`.cuda(localRank)` on a GPU node); every rank of the group
    ///     passes one of the same kind.
    ///   - parent: the world's device communicator (made by the registry for `device` on the
    ///     world group): when its backend can split (NCCL), the device communicator is split from
    ///     it (`ncclCommSplit`, color: the group's index in the layout, key: this rank's place in
    ///     it) instead of a rendezvous of its own. Every rank of that communicator must then
    ///     create its group of `kind`, as vLLM's ranks make every group.
    ///   - timeout: how long forming the group and its queue may wait for the other members.
    /// - Throws: `CCLError` naming the group when a member never joins, or a backend cannot serve.
    public static func create(
        _ kind: ParallelLayout.Kind, layout: ParallelLayout, rank: Int, store: any Store, nodes: NodeLayout,
        withQueue: Bool = false, options: QueueOptions = QueueOptions(), collectives: CollectiveOptions? = nil, device: Device? = nil,
        splitting parent: (any Communicator)? = nil, timeout: Timeout = .seconds(300)
    ) throws(CCLError) -> GroupCoordinator {
        guard nodes.nodeOfRank.count == layout.world else {
            throw CCLError(
                .invalidArgument, operation: "create \(kind) group", rank: rank,
                "the layout has \(layout.world) ranks but the node layout \(nodes.nodeOfRank.count)")
        }
        let groups = layout.groups(kind)
        guard let index = groups.firstIndex(where: { $0.contains(rank) }) else {
            throw CCLError(.invalidArgument, operation: "create \(kind) group", rank: rank, "rank \(rank) is outside world \(layout.world)")
        }
        let ranks = groups[index]
        let name = "\(kind.rawValue)\(index)"
        let group = try StatelessProcessGroup(
            rank: ranks.firstIndex(of: rank) ?? 0, worldSize: ranks.count, store: store, name: name, timeout: timeout,
            globalRanks: ranks)
        let local = NodeLayout(nodeOfRank: ranks.map { nodes.nodeOfRank[$0] })
        var queue: MessageQueueEnd?
        if withQueue, ranks.count > 1 {
            var queueOptions = options
            queueOptions.timeout = timeout
            queue = try MessageQueueEnd.create(from: group, writer: 0, nodes: local, options: queueOptions)
        }
        let cpu = try collectives.map { (options) throws(CCLError) in
            try CPUCommunicatorFactory.make(group: group, nodes: local, options: options)
        }
        var onDevice: (any Communicator, BackendChoice.Decision)?
        if device != nil, collectives == nil {
            throw CCLError(
                .invalidArgument, operation: "create \(kind) group", rank: rank,
                "a device communicator needs collectives: (its token, address and backend request; CollectiveOptions.fromEnvironment)")
        }
        switch device {
        case nil: onDevice = nil
        case .host?:
            onDevice = cpu
        case let device?:
            let options = collectives ?? CollectiveOptions()  // checked above
            let registry = BackendRegistry(options: options)
            if let parent {
                guard parent.device == device, parent.worldSize == layout.world else {
                    throw CCLError(
                        .invalidArgument, operation: "create \(kind) group", rank: rank,
                        "splitting: needs the world's communicator on \(device) (\(layout.world) ranks), got one of \(parent.worldSize) ranks on \(parent.device)"
                    )
                }
                onDevice = try registry.split(
                    parent, into: group, nodes: local, color: index, key: ranks.firstIndex(of: rank) ?? 0, parentGroup: "world")
            }
            if onDevice == nil {
                onDevice = try registry.makeCommunicator(
                    group: group, nodes: local, device: device, request: options.request, launcher: options.launcher)
            }
        }
        return GroupCoordinator(
            name: name, kind: kind, ranks: ranks, rank: rank, group: group, queue: queue, cpu: cpu, device: onDevice)
    }
}
