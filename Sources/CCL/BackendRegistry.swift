import CCLBackend
import CCLCollectives
import CCLCore
import CCLStore
import Logging

/// The one list of backends, and making a group's communicator through the choice
/// (`BackendChoice.choose`).
///
/// Registry order is only the order of listing (`ccl doctor`, error messages); the preference
/// order comes from the choice's rules and the user's request.
public struct BackendRegistry: Sendable {
    public let backends: [any Backend]
    let logger: Logger

    /// Every backend of this build, each with its options from `options`.
    public init(options: CollectiveOptions = CollectiveOptions()) {
        self.init(
            backends: [ShmBackend(options: options), TCPBackend(options: options), HierarchicalBackend(options: options)],
            logger: options.logger)
    }

    /// A registry of exactly `backends` (tests, embedders with their own backend).
    public init(backends: [any Backend], logger: Logger = Logger(label: "ccl.backends")) {
        self.backends = backends
        self.logger = logger
    }

    public var names: [String] { backends.map(\.name) }

    public func backend(named name: String) -> (any Backend)? { backends.first { $0.name == name } }

    /// Every backend as the choice sees it; only those serving `context.device` are probed.
    public func candidates(for context: BackendContext) -> [BackendChoice.Candidate] {
        backends.map { backend in
            BackendChoice.Candidate(
                name: backend.name, serves: backend.serves,
                probe: backend.serves == context.device
                    ? backend.probe(context) : .unavailable(reason: "serves \(backend.serves) buffers, not \(context.device)"))
        }
    }

    /// Chooses the backend for a group like `context`; see `BackendChoice` for the rules.
    public func choose(_ context: BackendContext, request: BackendRequest, group: String) throws(CCLError) -> (
        backend: any Backend, decision: BackendChoice.Decision
    ) {
        let decision = try BackendChoice.choose(context, request: request, candidates: candidates(for: context), group: group)
        guard let backend = backend(named: decision.backend) else {
            preconditionFailure("BackendChoice chose \(decision.backend), which is not registered")
        }
        return (backend, decision)
    }

    /// The communicator of `group` on `device`, from the backend the choice picks. Collective:
    /// every rank of the group calls it with the same request (the choice depends only on values
    /// every rank shares, so they agree). A fallback is logged once, with its reason.
    ///
    /// - Parameter nodes: the node of each group rank.
    public func makeCommunicator(
        group: StatelessProcessGroup, nodes: NodeLayout, device: Device = .host, request: BackendRequest = .automatic,
        launcher: LaunchEnvironment.Source? = nil
    ) throws(CCLError) -> (communicator: any Communicator, decision: BackendChoice.Decision) {
        guard nodes.nodeOfRank.count == group.worldSize else {
            throw CCLError(
                .invalidArgument, operation: "create a communicator for group \(group.name)", rank: group.rank,
                "the node layout has \(nodes.nodeOfRank.count) ranks, the group \(group.worldSize)")
        }
        let context = BackendContext(device: device.kind, nodes: nodes, launcher: launcher)
        let (backend, decision) = try choose(context, request: request, group: group.name)
        if let fallback = decision.fallback, group.rank == 0 {
            logger.notice("group \(group.name): using \(decision.backend) (\(decision.reason)); skipped \(fallback)")
        }
        return (try backend.make(group: group, nodes: nodes, device: device), decision)
    }
}
