import CCLBackend
import CCLCollectives
import CCLCore
import CCLMPI
import CCLNCCL
import CCLStore
import CCLTrace
import Foundation
import Logging

/// The one list of backends, and making a group's communicator through the choice
/// (`BackendChoice.choose`).
///
/// Registry order is only the order of listing (error messages, `names`); the preference order
/// comes from the choice's rules and the user's request.
public struct BackendRegistry: Sendable {
    /// Every backend, in the order the default choice considers them.
    public let backends: [any Backend]
    let logger: Logger
    /// `CCL_TRACE_BUFFER` as the environment gave it (see `FlightRecorder`).
    let traceSetting: [String: String]

    /// Every backend of this build, each with its options from `options`; NCCL's and MPI's
    /// libraries are looked for through `environment`. Under `mpirun` (or `srun` with MPI's
    /// variables) the hierarchical backend's tier between nodes is MPI where every rank of that
    /// tier can run it, else TCP (`AgreedBackend`).
    public init(options: CollectiveOptions = CollectiveOptions(), environment: [String: String] = ProcessInfo.processInfo.environment) {
        let mpi = MPIBackend(environment: environment, timeout: options.timeout, logger: options.logger)
        let launchedByMPI = options.launcher == .openMPI || options.launcher == .pmi || MPIBackend.launchedByMPI(environment)
        let tcp = TCPBackend(options: options)
        let interNode: any Backend = launchedByMPI ? AgreedBackend(preferred: mpi, fallback: tcp) : tcp
        self.init(
            backends: [
                ShmBackend(options: options), TCPBackend(options: options),
                HierarchicalBackend(intraNode: ShmBackend(options: options), interNode: interNode),
                NCCLBackend(environment: environment, timeout: options.timeout), mpi,
            ], logger: options.logger, environment: environment)
    }

    /// A registry of exactly `backends` (tests, embedders with their own backend); the flight
    /// recorder's capacity is read from `environment` (`CCL_TRACE_BUFFER`).
    public init(
        backends: [any Backend], logger: Logger = Logger(label: "ccl.backends"),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.backends = backends
        self.logger = logger
        traceSetting = environment.filter { $0.key == FlightRecorder.variable }
    }

    /// Their names (what `CCL_BACKEND` may list).
    public var names: [String] { backends.map(\.name) }

    /// The backend called `name`, nil when there is none.
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
        try decide(context, request: request, candidates: candidates(for: context), group: group)
    }

    private func decide(_ context: BackendContext, request: BackendRequest, candidates: [BackendChoice.Candidate], group: String)
        throws(CCLError) -> (backend: any Backend, decision: BackendChoice.Decision)
    {
        let decision = try BackendChoice.choose(context, request: request, candidates: candidates, group: group)
        guard let backend = backend(named: decision.backend) else {
            throw CCLError(
                .invalidArgument, operation: "choose a backend for group \(group)",
                "the choice named \(decision.backend), which is not registered (a backend whose name changes?)")
        }
        return (backend, decision)
    }

    /// What every rank of `group` can run: each rank's probes, all-gathered, so that every rank
    /// chooses from the same facts (a library present on some nodes only, a /dev/shm too small on
    /// one) and they all pick the same backend. A backend unavailable on any rank is unavailable,
    /// with the first such rank's reason.
    func agreedCandidates(for context: BackendContext, group: StatelessProcessGroup) throws(CCLError) -> [BackendChoice.Candidate] {
        let mine = candidates(for: context)
        let reasons: [String?] = mine.map { candidate in
            if case .unavailable(let reason) = candidate.probe { return reason }
            return nil
        }
        let everyone = group.worldSize > 1 ? try group.allGatherObject(reasons) : [reasons]
        return mine.enumerated().map { index, candidate in
            guard candidate.probe.isAvailable else { return candidate }
            let failing = everyone.enumerated().compactMap { rank, theirs in
                index < theirs.count ? theirs[index].map { (rank, $0) } : (rank, "it is not registered there")
            }
            guard let (rank, reason) = failing.first else { return candidate }
            let others = failing.count > 1 ? " (and \(failing.count - 1) more ranks)" : ""
            return BackendChoice.Candidate(
                name: candidate.name, serves: candidate.serves,
                probe: .unavailable(reason: "on rank \(group.globalRanks?[rank] ?? rank)\(others): \(reason)"))
        }
    }

    /// The communicator of `group` on `device`, from the backend the choice picks. Collective:
    /// every rank of the group calls it with the same request; the probes are all-gathered first
    /// (`agreedCandidates`), so every rank chooses the same backend. A fallback is logged once,
    /// by the group's first rank, with its reason.
    ///
    /// - Parameters:
    ///   - group: the group the communicator serves; every member calls this.
    ///   - nodes: the node of each group rank.
    ///   - device: the device of the buffers the communicator will be given.
    ///   - request: the user's preference order and strictness (`CCL_BACKEND`, a `strict:` option).
    ///   - launcher: how the job was launched, when known (the choice may depend on it).
    /// - Returns: the communicator and the decision that picked it (its reason, any fallback).
    /// - Throws: `CCLError` when no backend can serve, or a strict request cannot be met.
    public func makeCommunicator(
        group: StatelessProcessGroup, nodes: NodeLayout, device: Device = .host, request: BackendRequest = .automatic,
        launcher: LaunchEnvironment.Source? = nil
    ) throws(CCLError) -> (communicator: any Communicator, decision: BackendChoice.Decision) {
        guard nodes.nodeOfRank.count == group.worldSize else {
            throw CCLError(
                .invalidArgument, operation: "create a communicator for group \(group.name)", rank: group.rank,
                "the node layout has \(nodes.nodeOfRank.count) ranks, the group \(group.worldSize)")
        }
        let capacity = try FlightRecorder.capacity(in: traceSetting)  // a bad setting fails before anything is made
        let context = BackendContext(device: device.kind, nodes: nodes, launcher: launcher)
        let (backend, decision) = try decide(
            context, request: request, candidates: agreedCandidates(for: context, group: group), group: group.name)
        if let fallback = decision.fallback, group.rank == 0 {
            logger.notice("group \(group.name): using \(decision.backend) (\(decision.reason)); skipped \(fallback)")
        }
        return (
            try recorded(backend.make(group: group, nodes: nodes, device: device), group: group, nodes: nodes, capacity: capacity),
            decision
        )
    }

    /// The communicator of `group` made out of `parent` (NCCL: `ncclCommSplit`), behind its own
    /// flight recorder, or nil when `parent`'s backend cannot split (the caller then makes one
    /// through the choice). Collective over every rank of `parent`: each calls it once with its
    /// own sub-group, `color` (the sub-group's index, ≥ 0) and `key` (its rank in `group`).
    public func split(
        _ parent: any Communicator, into group: StatelessProcessGroup, nodes: NodeLayout, color: Int, key: Int, parentGroup: String
    ) throws(CCLError) -> (communicator: any Communicator, decision: BackendChoice.Decision)? {
        guard let splittable = parent.unrecorded as? any SplittableCommunicator else { return nil }
        let capacity = try FlightRecorder.capacity(in: traceSetting)
        let child = try splittable.split(into: group, color: color, key: key)
        let decision = BackendChoice.Decision(backend: child.backend, reason: "split from group \(parentGroup)'s communicator")
        return (recorded(child, group: group, nodes: nodes, capacity: capacity), decision)
    }

    /// `communicator` behind a flight recorder of `capacity` calls (`CCL_TRACE_BUFFER`, 2048 by
    /// default; 0: as it is). A recorder that cannot be made (a full /dev/shm) is logged and left
    /// out: it must not stop the job.
    func recorded(_ communicator: any Communicator, group: StatelessProcessGroup, nodes: NodeLayout, capacity: Int) -> any Communicator {
        guard capacity > 0 else { return communicator }
        let members = group.globalRanks ?? Array(0..<group.worldSize)
        do {
            let recorder = try FlightRecorder(
                group: group.name, round: group.roundID, rank: members[group.rank], groupRank: group.rank, globalRanks: members,
                backend: communicator.backend, capacity: capacity, job: TraceExchange.jobKey(group.jobStore))
            // Process-group timeouts say what the ranks they waited for are doing.
            RankActivity.install(TraceExchange.activity)
            // Over a TCP store, this process answers others' requests for its recorders, and asks
            // theirs when a call times out.
            let client = group.jobStore as? TCPStoreClient
            let remote = nodes.ranksOnOtherNodes(than: group.rank).filter(members.indices.contains).map { members[$0] }
            return RecordingCommunicator(
                communicator, recorder: recorder, remote: Set(remote), store: client,
                responder: client.flatMap { TraceResponder.hold($0, rank: members[group.rank]) })
        } catch {
            logger.warning("group \(group.name): no flight recorder for rank \(members[group.rank]) (\(error)); calls are not recorded")
            return communicator
        }
    }
}
