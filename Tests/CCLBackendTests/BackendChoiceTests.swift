import CCL
import Testing

/// The one choice of a backend, over a table of (device × nodes × launcher × request ×
/// availability) → backend or the exact error.
@Suite struct BackendChoiceTests {
    static let one = BackendContext(device: .host, worldSize: 4, nodeCount: 1)
    static let spread = BackendContext(device: .host, worldSize: 3, nodeCount: 3)
    static let mixed = BackendContext(device: .host, worldSize: 4, nodeCount: 2)
    static let spreadMPI = BackendContext(device: .host, worldSize: 3, nodeCount: 3, launcher: .openMPI)
    static let gpu = BackendContext(device: .cuda, worldSize: 2, nodeCount: 1)

    /// Every backend the design names, each available unless listed in `down`.
    static func candidates(down: [String: String] = [:], without: Set<String> = []) -> [BackendChoice.Candidate] {
        let all: [(String, Device.Kind)] = [("shm", .host), ("tcp", .host), ("hierarchical", .host), ("mpi", .host), ("nccl", .cuda)]
        return all.filter { !without.contains($0.0) }.map { name, kind in
            BackendChoice.Candidate(
                name: name, serves: kind,
                probe: down[name].map { .unavailable(reason: $0) } ?? .available(version: "", details: ""))
        }
    }

    enum Expected: Sendable {
        case success(String)
        case failure(String)
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let context: BackendContext
        let request: String
        let strict: Bool
        let down: [String: String]
        let without: Set<String>
        /// The backend chosen, or the error's exact message.
        let expected: Expected
        let fallback: String?
        var testDescription: String {
            "\(context.device) \(context.nodeCount)/\(context.worldSize) \(request) strict \(strict) down \(down)"
        }

        init(
            _ context: BackendContext, request: String = "", strict: Bool = false, down: [String: String] = [:], without: Set<String> = [],
            _ expected: Expected, fallback: String? = nil
        ) {
            self.context = context
            self.request = request
            self.strict = strict
            self.down = down
            self.without = without
            self.expected = expected
            self.fallback = fallback
        }
    }

    static let rows: [Row] = [
        // Defaults.
        Row(one, .success("shm")),
        Row(spread, .success("tcp")),
        Row(mixed, .success("hierarchical")),
        Row(spreadMPI, .success("mpi")),
        Row(spreadMPI, without: ["mpi"], .success("tcp"), fallback: "mpi: not built into this swift-ccl"),
        Row(gpu, .success("nccl")),
        // Fallbacks, with their reasons.
        Row(one, down: ["shm": "no /dev/shm"], .success("tcp"), fallback: "shm: no /dev/shm"),
        Row(mixed, down: ["hierarchical": "x"], .success("tcp"), fallback: "hierarchical: x"),
        Row(
            gpu, down: ["nccl": "libnccl.so.2 not found (tried: libnccl.so.2)"],
            .failure(
                "no backend can serve cuda buffers on one node: nccl: libnccl.so.2 not found (tried: libnccl.so.2)")),
        Row(gpu, without: ["nccl"], .failure("no backend can serve cuda buffers on one node: nccl: not built into this swift-ccl")),
        // Requests.
        Row(one, request: "tcp", .success("tcp")),
        Row(one, request: "TCP , shm", .success("tcp")),
        Row(one, request: "mpi,tcp", down: ["mpi": "libmpi.so not found"], .success("tcp"), fallback: "mpi: libmpi.so not found"),
        Row(mixed, request: "shm", down: ["shm": "spans 2 nodes"], .success("hierarchical"), fallback: "shm: spans 2 nodes"),
        // A request for the other device's backend leaves this one to the defaults, even strict.
        Row(one, request: "nccl", strict: true, .success("shm")),
        Row(gpu, request: "tcp,nccl", .success("nccl")),
        // Strict.
        Row(one, request: "tcp", strict: true, .success("tcp")),
        Row(
            mixed, request: "shm", strict: true, down: ["shm": "spans 2 nodes"],
            .failure(
                "CCL_BACKEND=shm in strict mode, but no requested backend can run: shm: spans 2 nodes (unset CCL_BACKEND_STRICT to fall back)"
            )),
        Row(
            gpu, request: "nccl", strict: true, down: ["nccl": "libcuda.so.1 not found"],
            .failure(
                "CCL_BACKEND=nccl in strict mode, but no requested backend can run: nccl: libcuda.so.1 not found (unset CCL_BACKEND_STRICT to fall back)"
            )),
        Row(
            one, request: "mpi,tcp", strict: true, down: ["mpi": "m", "tcp": "t"],
            .failure(
                "CCL_BACKEND=mpi,tcp in strict mode, but no requested backend can run: mpi: m; tcp: t (unset CCL_BACKEND_STRICT to fall back)"
            )),
        // Unknown names list the valid ones.
        Row(
            one, request: "gloo", .failure("CCL_BACKEND names an unknown backend \"gloo\"; valid: shm, tcp, hierarchical, mpi, nccl, auto")),
    ]

    @Test("choice table", arguments: rows)
    func table(_ row: Row) throws {
        let request = try BackendRequest.parse(row.request, strict: row.strict, origin: "CCL_BACKEND")
        let candidates = Self.candidates(down: row.down, without: row.without)
        switch row.expected {
        case .success(let name):
            let decision = try BackendChoice.choose(row.context, request: request, candidates: candidates, group: "g")
            #expect(decision.backend == name)
            #expect(decision.fallback == row.fallback)
        case .failure(let message):
            do {
                let decision = try BackendChoice.choose(row.context, request: request, candidates: candidates, group: "g")
                Issue.record("chose \(decision) instead of failing")
            } catch {
                #expect(error.message == message)
                #expect(error.operation == "choose a backend for group g")
                #expect(error.code == (message.contains("unknown") ? .invalidArgument : .unavailable))
            }
        }
    }

    @Test("the reason says requested or default")
    func reasons() throws {
        let requested = try BackendChoice.choose(
            Self.one, request: try BackendRequest.parse("tcp", origin: "CCL_BACKEND"), candidates: Self.candidates(), group: "g")
        #expect(requested.reason == "requested by CCL_BACKEND=tcp")
        let automatic = try BackendChoice.choose(Self.mixed, request: .automatic, candidates: Self.candidates(), group: "g")
        #expect(automatic.reason == "default for host buffers across 2 nodes")
        #expect("\(automatic)" == "hierarchical (default for host buffers across 2 nodes)")
    }

    @Test("CCL_BACKEND and CCL_BACKEND_STRICT: values, and errors that name the variable")
    func environment() throws {
        #expect(try BackendRequest.fromEnvironment([:]) == .automatic.with(origin: "CCL_BACKEND"))
        #expect(try BackendRequest.fromEnvironment(["CCL_BACKEND": "auto"]).preferred.isEmpty)
        let request = try BackendRequest.fromEnvironment(["CCL_BACKEND": "nccl,tcp,nccl", "CCL_BACKEND_STRICT": "1"])
        #expect(request.preferred == ["nccl", "tcp"] && request.strict)
        for (name, value) in [("CCL_BACKEND", "nccl,,tcp"), ("CCL_BACKEND", ","), ("CCL_BACKEND", "tcp,auto"), ("CCL_BACKEND_STRICT", "2")]
        {
            #expect {
                _ = try BackendRequest.fromEnvironment([name: value])
            } throws: { error in
                (error as? CCLError)?.message.hasPrefix("\(name)=\(value) is invalid") == true
            }
        }
    }

    @Test("CCL_TRANSPORT still works: a strict request for that backend")
    func transportOption() throws {
        var options = CollectiveOptions()
        #expect(CPUCommunicatorFactory.request(options) == .automatic)
        options.transport = .shm
        #expect(CPUCommunicatorFactory.request(options) == BackendRequest(preferred: ["shm"], strict: true, origin: "CCL_TRANSPORT"))
        options.request = try BackendRequest.parse("tcp", origin: "CCL_BACKEND")
        #expect(CPUCommunicatorFactory.request(options).preferred == ["tcp"])
    }

    @Test("the registry lists this build's backends and probes only those serving the device")
    func registry() {
        let registry = BackendRegistry()
        #expect(registry.names == ["shm", "tcp", "hierarchical", "nccl", "mpi"])
        let probes = registry.candidates(for: Self.mixed)
        #expect(probes.first { $0.name == "shm" }?.probe.isAvailable == false)
        // Not started by mpirun (this test process): MPI is unavailable, and the hierarchical
        // backend's tier between nodes is TCP.
        #expect(probes.first { $0.name == "mpi" }?.probe.description.contains("not started by mpirun") == true)
        #expect(probes.first { $0.name == "hierarchical" }?.probe.description.contains("tcp between") == true)
        #expect(probes.first { $0.name == "hierarchical" }?.probe.isAvailable == true)
        let gpu = registry.candidates(for: Self.gpu)
        #expect(gpu.filter { $0.name != "nccl" }.allSatisfy { $0.probe == .unavailable(reason: "serves host buffers, not cuda") })
        #expect(probes.first { $0.name == "nccl" }?.probe == .unavailable(reason: "serves cuda buffers, not host"))
    }
}

extension BackendRequest {
    fileprivate func with(origin: String) -> BackendRequest {
        var copy = self
        copy.origin = origin
        return copy
    }
}
