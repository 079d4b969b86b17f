import CCLCollectiveAPI
import CCLCore

/// The one choice of a backend for a group: a pure function of the buffers' device, where the
/// group's ranks live, how the job was launched, the user's request and what each backend's
/// probe said.
///
/// Rules:
/// - The default order (`defaults(for:)`): CUDA buffers → nccl. Host buffers → shm on one node
///   (tcp if shm cannot run); across nodes with one rank per node tcp (mpi first under mpirun);
///   across nodes with several ranks on some, hierarchical (shm inside, tcp between), then tcp.
/// - A request (`CCL_BACKEND=a,b`) puts its names that serve the device first, in its order,
///   then the defaults. Names serving another device are ignored for this choice (one request
///   covers a group's device and CPU communicators); if none serves this device, the defaults
///   apply. An unknown name is an error listing the valid ones.
/// - Strict (`CCL_BACKEND_STRICT=1`): only the requested names that serve the device, and an
///   error with every reason when none is available, instead of a fallback. A strict request
///   that names no backend for this device (`CCL_BACKEND=nccl` for a CPU group) constrains
///   nothing here: the defaults apply.
/// - The first available backend in that order wins; the ones skipped before it, with their
///   reasons, are the decision's `fallback` (logged once by the caller).
public enum BackendChoice {
    /// A registered backend as the choice sees it.
    public struct Candidate: Sendable, Equatable {
        /// The backend's name.
        public var name: String
        /// The kind of device it serves.
        public var serves: Device.Kind
        /// What its probe said, agreed across the group's ranks.
        public var probe: BackendProbe

        /// A candidate as the choice sees it.
        public init(name: String, serves: Device.Kind, probe: BackendProbe) {
            self.name = name
            self.serves = serves
            self.probe = probe
        }
    }

    /// The backend chosen and why.
    public struct Decision: Sendable, Equatable, CustomStringConvertible {
        /// The backend chosen.
        public var backend: String
        /// "requested by CCL_BACKEND=tcp", "default for host buffers on one node".
        public var reason: String
        /// The backends tried before it, each with why it could not run; nil when the first one ran.
        public var fallback: String?

        /// A decision: `backend`, why, and the fallback taken, if any.
        public init(backend: String, reason: String, fallback: String? = nil) {
            self.backend = backend
            self.reason = reason
            self.fallback = fallback
        }

        /// "tcp (requested by CCL_BACKEND=tcp)", "tcp (default …; fell back from shm: …)".
        public var description: String {
            "\(backend) (\(reason)" + (fallback.map { "; fell back from \($0)" } ?? "") + ")"
        }
    }

    /// The default preference order for a group like `context`.
    public static func defaults(for context: BackendContext) -> [String] {
        switch context.device {
        case .cuda: return ["nccl"]
        case .host:
            if context.nodeCount <= 1 { return ["shm", "tcp"] }
            if context.onePerNode { return context.launchedByMPI ? ["mpi", "tcp"] : ["tcp"] }
            return ["hierarchical", "tcp"]
        }
    }

    /// Chooses among `candidates` (every registered backend, in registry order) for `context`.
    ///
    /// - Throws: `.invalidArgument` for an unknown requested name (listing the valid ones);
    ///   `.unavailable` when nothing in the order can run, naming each backend and its reason.
    public static func choose(_ context: BackendContext, request: BackendRequest, candidates: [Candidate], group: String)
        throws(CCLError) -> Decision
    {
        let operation = "choose a backend for group \(group)"
        let known = candidates.map(\.name)
        if let unknown = request.preferred.first(where: { !known.contains($0) }) {
            throw CCLError(
                .invalidArgument, operation: operation,
                "\(request.origin) names an unknown backend \"\(unknown)\"; valid: \(known.joined(separator: ", ")), auto")
        }
        let requested = request.preferred.filter { name in candidates.contains { $0.name == name && $0.serves == context.device } }
        let defaults = defaults(for: context)
        let order = requested.isEmpty || !request.strict ? requested + defaults.filter { !requested.contains($0) } : requested
        let requestText = "\(request.origin)=\(request.preferred.joined(separator: ","))"
        var skipped: [String] = []
        for name in order {
            guard let candidate = candidates.first(where: { $0.name == name && $0.serves == context.device }) else {
                skipped.append("\(name): not built into this swift-ccl")
                continue
            }
            switch candidate.probe {
            case .available:
                let reason = requested.contains(name) ? "requested by \(requestText)" : "default for \(describe(context))"
                return Decision(backend: name, reason: reason, fallback: skipped.isEmpty ? nil : skipped.joined(separator: "; "))
            case .unavailable(let why):
                skipped.append("\(name): \(why)")
            }
        }
        let why = skipped.joined(separator: "; ")
        if request.strict, !requested.isEmpty {
            throw CCLError(
                .unavailable, operation: operation,
                "\(requestText) in strict mode, but no requested backend can run: \(why)\(request.origin == "CCL_BACKEND" ? " (unset CCL_BACKEND_STRICT to fall back)" : "")"
            )
        }
        throw CCLError(.unavailable, operation: operation, "no backend can serve \(describe(context)): \(why)")
    }

    /// "host buffers on one node", "cuda buffers across 3 nodes (one rank each)".
    static func describe(_ context: BackendContext) -> String {
        let place =
            context.nodeCount <= 1
            ? "on one node" : "across \(context.nodeCount) nodes" + (context.onePerNode ? " (one rank each)" : "")
        return "\(context.device) buffers \(place)" + (context.launchedByMPI ? " under mpirun" : "")
    }
}
