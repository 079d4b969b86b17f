/// Where this process sits in the job, read from the launch environment in one place.
///
/// `parse` is a pure function over a dictionary (pass the process environment), so every rule
/// below is testable without a launcher. Every error is a `CCLError` with code `.invalidArgument`
/// and operation `"read environment"`, and its message names the variable(s) and the value.
///
/// ## Rank and world size: one family, by precedence
///
/// Rank and world size (and the local rank and size) come from exactly one family of variables:
/// the first family, in this order, with its rank or world-size variable set.
///
/// 1. CCL: `CCL_RANK`, `CCL_WORLD_SIZE`, `CCL_LOCAL_RANK`, `CCL_LOCAL_WORLD_SIZE`
///    (node: `CCL_NODE_RANK`, `CCL_NNODES`). Setting `CCL_LOCAL_RANK` or `CCL_LOCAL_WORLD_SIZE`
///    also selects this family, so a half-set CCL family is an error, never silently ignored.
/// 2. torchrun: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`; node rank from
///    `GROUP_RANK`. `LOCAL_RANK` without `LOCAL_WORLD_SIZE` is accepted (the local size stays
///    unknown): DeepSpeed's launcher sets `LOCAL_RANK` and `LOCAL_SIZE` but no `LOCAL_WORLD_SIZE`.
/// 3. Open MPI: `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_LOCAL_RANK`,
///    `OMPI_COMM_WORLD_LOCAL_SIZE`. `OMPI_COMM_WORLD_NODE_RANK` is not the node index and is ignored.
/// 4. PMI (MPICH/Hydra): `PMI_RANK`, `PMI_SIZE`, local from `MPI_LOCALRANKID`, `MPI_LOCALNRANKS`;
///    under srun (Slurm's PMI-2), local and node from Slurm's variables below when they describe
///    the same rank.
/// 5. Slurm: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`; node from `SLURM_NODEID`,
///    `SLURM_NNODES`; local size from `SLURM_NTASKS_PER_NODE` when it is a plain integer, else
///    this node's entry (by `SLURM_NODEID`) of `SLURM_TASKS_PER_NODE` (or of
///    `SLURM_NTASKS_PER_NODE`) in the form `4(x2),3`, when the list adds up to `SLURM_NTASKS`
///    (otherwise it stays unknown); either local value may stand alone.
/// 6. None of them: a single process, rank 0 of 1.
///
/// Only the chosen family is read: lower families may be set too, with other values (torchrun
/// inside Slurm, mpirun inside Slurm), and are ignored, never compared. In the chosen family the
/// rank and world size must both be set, and (except where said above) the local rank and local
/// size must both be set or both be unset.
///
/// ## Everything else
///
/// - Node rank / count: `CCL_NODE_RANK` / `CCL_NNODES` when set, each on its own, else the family's.
/// - Master: `CCL_MASTER_ADDR`, else `MASTER_ADDR`; `CCL_MASTER_PORT`, else `MASTER_PORT`.
///   Either may be set without the other. An IPv6 address may be bracketed (`[::1]`) and is
///   stored without brackets; a zone (`fe80::1%eth0`) is kept.
/// - `CCL_TOKEN`, `CCL_NODE_ID`, `CCL_NCCL_SO_PATH` are taken as they are; empty counts as unset.
/// - Data parallel (`CCL_DP_RANK`, `CCL_DP_RANK_LOCAL`, `CCL_DP_SIZE`, `CCL_DP_MASTER_IP`,
///   `CCL_DP_MASTER_PORT`): present when `CCL_DP_RANK` or `CCL_DP_SIZE` is set, and then both
///   are required; the other three set without them is an error.
///
/// Integers are decimal digits, surrounding whitespace trimmed: no sign, no empty value, nothing
/// beyond `Int.max`.
public struct LaunchEnvironment: Sendable, Equatable {
    /// The most ranks a job may have: the store answers a wait on at most this many keys (one
    /// per rank), so a larger world could never meet. Checked where the world size is read.
    public static let maxWorldSize = 65_536

    /// The convention that supplied rank and world size.
    public enum Source: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
        case ccl, torchrun, openMPI, pmi, slurm
        /// Nothing set: rank 0 of 1.
        case single

        /// The family as users know it: "CCL_*", "torchrun", "Open MPI", …
        public var description: String {
            switch self {
            case .ccl: return "CCL"
            case .torchrun: return "torchrun"
            case .openMPI: return "Open MPI"
            case .pmi: return "PMI"
            case .slurm: return "Slurm"
            case .single: return "single process"
            }
        }
    }

    /// vLLM-style data parallelism across engines (`CCL_DP_*`, vLLM's `VLLM_DP_*`).
    public struct DataParallel: Sendable, Equatable {
        /// `CCL_DP_RANK`, in `0..<size`.
        public var rank: Int
        /// `CCL_DP_RANK_LOCAL`, at most `rank`.
        public var localRank: Int?
        /// `CCL_DP_SIZE`, at least 1.
        public var size: Int
        /// `CCL_DP_MASTER_IP`, without brackets.
        public var masterAddress: String?
        /// `CCL_DP_MASTER_PORT`, in `1...65535`.
        public var masterPort: Int?

        /// Data-parallel settings as given.
        public init(rank: Int, localRank: Int? = nil, size: Int, masterAddress: String? = nil, masterPort: Int? = nil) {
            self.rank = rank
            self.localRank = localRank
            self.size = size
            self.masterAddress = masterAddress
            self.masterPort = masterPort
        }
    }

    /// This process's rank in the job.
    public var rank: Int
    /// How many ranks the job has.
    public var worldSize: Int
    /// This process's index among the processes on its node, when the launcher says.
    public var localRank: Int?
    /// How many processes run on this node, when the launcher says.
    public var localWorldSize: Int?
    /// This node's index among the job's nodes, when known.
    public var nodeRank: Int?
    /// How many nodes the job spans, when known.
    public var nodeCount: Int?
    /// Host name or IP address of the rendezvous master; IPv6 without brackets.
    public var masterAddress: String?
    /// Port of the rendezvous master (the store).
    public var masterPort: Int?
    /// Shared secret (`CCL_TOKEN`). Never printed by `summary`.
    public var token: String?
    /// `CCL_NODE_ID`: overrides how processes are grouped into nodes.
    public var nodeID: String?
    /// `CCL_NCCL_SO_PATH`: the NCCL library to load.
    public var ncclLibraryPath: String?
    /// vLLM's external data parallelism (`CCL_DP_*`), when set.
    public var dataParallel: DataParallel?
    /// Which family of variables the rank and world size came from.
    public var source: Source
    /// The variables of `source` that supplied a value, in reading order (empty for `.single`).
    public var sourceVariables: [String]

    /// An environment as given (tests, and callers that read their own configuration).
    public init(
        rank: Int = 0,
        worldSize: Int = 1,
        localRank: Int? = nil,
        localWorldSize: Int? = nil,
        nodeRank: Int? = nil,
        nodeCount: Int? = nil,
        masterAddress: String? = nil,
        masterPort: Int? = nil,
        token: String? = nil,
        nodeID: String? = nil,
        ncclLibraryPath: String? = nil,
        dataParallel: DataParallel? = nil,
        source: Source = .single,
        sourceVariables: [String] = []
    ) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
        self.localWorldSize = localWorldSize
        self.nodeRank = nodeRank
        self.nodeCount = nodeCount
        self.masterAddress = masterAddress
        self.masterPort = masterPort
        self.token = token
        self.nodeID = nodeID
        self.ncclLibraryPath = ncclLibraryPath
        self.dataParallel = dataParallel
        self.source = source
        self.sourceVariables = sourceVariables
    }

    /// Both the local rank and the local world size are known.
    public var isLocalInfoKnown: Bool { localRank != nil && localWorldSize != nil }

    /// One line for logs, e.g. `rank 3 of 8 (local 1 of 4, node 1 of 2) from torchrun (RANK,
    /// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); master 10.0.0.1:29500`. Never shows the token.
    public var summary: String {
        var text = "rank \(rank) of \(worldSize)"
        var details: [String] = []
        if let part = Self.position("local", localRank, localWorldSize) { details.append(part) }
        if let part = Self.position("node", nodeRank, nodeCount) { details.append(part) }
        if !details.isEmpty { text += " (" + details.joined(separator: ", ") + ")" }
        if source == .single {
            text += " as a single process (no rank variables set)"
        } else {
            text += " from \(source) (" + sourceVariables.joined(separator: ", ") + ")"
        }
        if let endpoint = Self.endpoint(masterAddress, masterPort) { text += "; master " + endpoint }
        if let dataParallel {
            text += "; data parallel rank \(dataParallel.rank)"
            if let local = dataParallel.localRank { text += " (local \(local))" }
            text += " of \(dataParallel.size)"
            if let endpoint = Self.endpoint(dataParallel.masterAddress, dataParallel.masterPort) {
                text += ", master " + endpoint
            }
        }
        if let nodeID { text += "; node ID \(nodeID)" }
        if let ncclLibraryPath { text += "; NCCL \(ncclLibraryPath)" }
        if token != nil { text += "; token set" }
        return text
    }

    private static func position(_ what: String, _ index: Int?, _ count: Int?) -> String? {
        switch (index, count) {
        case (let index?, let count?): return "\(what) \(index) of \(count)"
        case (let index?, nil): return "\(what) \(index)"
        case (nil, let count?): return "\(what) ? of \(count)"
        case (nil, nil): return nil
        }
    }

    private static func endpoint(_ address: String?, _ port: Int?) -> String? {
        switch (address, port) {
        case (let address?, let port?): return (address.contains(":") ? "[\(address)]" : address) + ":\(port)"
        case (let address?, nil): return address
        case (nil, let port?): return "port \(port)"
        case (nil, nil): return nil
        }
    }
}

// MARK: - Parsing

extension LaunchEnvironment {
    /// Reads the launch environment; see the type's documentation for the variables and rules.
    public static func parse(_ env: [String: String]) throws(CCLError) -> LaunchEnvironment {
        var result = LaunchEnvironment()
        var reader = Reader(env: env)

        if let family = Family.all.first(where: { $0.isPresent(in: env) }) {
            try family.read(into: &result, with: &reader)
        }
        // srun with PMI-2 sets PMI_RANK and PMI_SIZE but no local rank: Slurm's own variables
        // give it (and the node), when they describe the same process.
        if result.source == .pmi, result.localRank == nil, let slurm = Family.all.first(where: { $0.source == .slurm }),
            slurm.isPresent(in: env)
        {
            var fromSlurm = LaunchEnvironment()
            var slurmReader = Reader(env: env)
            if (try? slurm.read(into: &fromSlurm, with: &slurmReader)) != nil, fromSlurm.rank == result.rank,
                fromSlurm.worldSize == result.worldSize
            {
                result.localRank = fromSlurm.localRank
                result.localWorldSize = fromSlurm.localWorldSize
                result.nodeRank = fromSlurm.nodeRank
                result.nodeCount = fromSlurm.nodeCount
                reader.nodeRank = slurmReader.nodeRank
                reader.nodeCount = slurmReader.nodeCount
                result.sourceVariables += fromSlurm.sourceVariables.filter { $0 != "SLURM_PROCID" && $0 != "SLURM_NTASKS" }
            }
        }

        // Node overrides, each on its own.
        if let nodeRank = try reader.integer("CCL_NODE_RANK") {
            result.nodeRank = nodeRank.value
            result.sourceVariables.removeAll { $0 == reader.nodeRank?.name }
            reader.nodeRank = nodeRank
        }
        if let nodeCount = try reader.integer("CCL_NNODES") {
            result.nodeCount = nodeCount.value
            result.sourceVariables.removeAll { $0 == reader.nodeCount?.name }
            reader.nodeCount = nodeCount
        }
        if let count = reader.nodeCount, count.value < 1 {
            throw invalid("\(count) must be at least 1")
        }
        if let index = reader.nodeRank, let count = reader.nodeCount, index.value >= count.value {
            throw invalid("\(index) is outside 0..<\(count.value) (\(count))")
        }

        // Master.
        let addressName = env["CCL_MASTER_ADDR"] != nil ? "CCL_MASTER_ADDR" : "MASTER_ADDR"
        let portName = env["CCL_MASTER_PORT"] != nil ? "CCL_MASTER_PORT" : "MASTER_PORT"
        result.masterAddress = try reader.address(addressName, portName: portName)
        result.masterPort = try reader.port(portName)

        // Plain strings.
        result.token = reader.string("CCL_TOKEN")
        result.nodeID = reader.string("CCL_NODE_ID")
        result.ncclLibraryPath = reader.string("CCL_NCCL_SO_PATH")

        result.dataParallel = try readDataParallel(reader)
        return result
    }

    private static func readDataParallel(_ reader: Reader) throws(CCLError) -> DataParallel? {
        let rank = try reader.integer("CCL_DP_RANK")
        let size = try reader.integer("CCL_DP_SIZE")
        let companions = ["CCL_DP_RANK_LOCAL", "CCL_DP_MASTER_IP", "CCL_DP_MASTER_PORT"]
        guard rank != nil || size != nil else {
            if let name = companions.first(where: { reader.env[$0] != nil }) {
                throw invalid("\(reader.quoted(name)) is set but CCL_DP_RANK and CCL_DP_SIZE are not; set both, or unset \(name)")
            }
            return nil
        }
        guard let rank, let size else {
            let (set, missing) = rank != nil ? ("CCL_DP_RANK", "CCL_DP_SIZE") : ("CCL_DP_SIZE", "CCL_DP_RANK")
            throw invalid("\(reader.quoted(set)) is set but \(missing) is not; set both or neither")
        }
        if size.value < 1 { throw invalid("\(size) must be at least 1") }
        if rank.value >= size.value { throw invalid("\(rank) is outside 0..<\(size.value) (\(size))") }
        let localRank = try reader.integer("CCL_DP_RANK_LOCAL")
        if let localRank, localRank.value > rank.value {
            throw invalid("\(localRank) is greater than \(rank); the local DP rank cannot exceed the DP rank")
        }
        return DataParallel(
            rank: rank.value,
            localRank: localRank?.value,
            size: size.value,
            masterAddress: try reader.address("CCL_DP_MASTER_IP", portName: "CCL_DP_MASTER_PORT"),
            masterPort: try reader.port("CCL_DP_MASTER_PORT")
        )
    }

    fileprivate static func invalid(_ message: String) -> CCLError {
        CCLError(.invalidArgument, operation: "read environment", message)
    }
}

/// An integer read from a variable; prints as `NAME=value`.
private struct Setting: CustomStringConvertible {
    var name: String
    var value: Int
    var description: String { "\(name)=\(value)" }
}

/// How a family's local rank and local size may be set.
private enum LocalPairing {
    /// Both or neither.
    case both
    /// The local rank may come alone (size unknown); the size alone is an error.
    case rankMayStandAlone
    /// Each on its own.
    case independent
}

private struct Family {
    var source: LaunchEnvironment.Source
    var rank: String
    var worldSize: String
    var localRank: String?
    var localWorldSize: String?
    var localPairing: LocalPairing = .both
    /// The local size is used only when it is a plain integer (Slurm's may be `4(x2),3`).
    var localWorldSizeMayBeList = false
    var nodeRank: String?
    var nodeCount: String?

    static let all: [Family] = [
        Family(
            source: .ccl, rank: "CCL_RANK", worldSize: "CCL_WORLD_SIZE",
            localRank: "CCL_LOCAL_RANK", localWorldSize: "CCL_LOCAL_WORLD_SIZE"),
        Family(
            source: .torchrun, rank: "RANK", worldSize: "WORLD_SIZE",
            localRank: "LOCAL_RANK", localWorldSize: "LOCAL_WORLD_SIZE", localPairing: .rankMayStandAlone,
            nodeRank: "GROUP_RANK"),
        Family(
            source: .openMPI, rank: "OMPI_COMM_WORLD_RANK", worldSize: "OMPI_COMM_WORLD_SIZE",
            localRank: "OMPI_COMM_WORLD_LOCAL_RANK", localWorldSize: "OMPI_COMM_WORLD_LOCAL_SIZE"),
        Family(
            source: .pmi, rank: "PMI_RANK", worldSize: "PMI_SIZE",
            localRank: "MPI_LOCALRANKID", localWorldSize: "MPI_LOCALNRANKS"),
        Family(
            source: .slurm, rank: "SLURM_PROCID", worldSize: "SLURM_NTASKS",
            localRank: "SLURM_LOCALID", localWorldSize: "SLURM_NTASKS_PER_NODE", localPairing: .independent,
            localWorldSizeMayBeList: true, nodeRank: "SLURM_NODEID", nodeCount: "SLURM_NNODES"),
    ]

    /// Our own family is selected by any of its variables, so that a half-set one is reported.
    func isPresent(in env: [String: String]) -> Bool {
        let names = source == .ccl ? [rank, worldSize, localRank, localWorldSize] : [rank, worldSize]
        return names.contains { name in name.map { env[$0] != nil } ?? false }
    }

    func read(into result: inout LaunchEnvironment, with reader: inout Reader) throws(CCLError) {
        result.source = source
        let rank = try reader.integer(self.rank)
        let worldSize = try reader.integer(self.worldSize)
        guard let rank, let worldSize else {
            let set = [self.rank, self.worldSize, localRank, localWorldSize].compactMap { $0 }.filter { reader.env[$0] != nil }
            let missing = [self.rank, self.worldSize].filter { reader.env[$0] == nil }
            throw LaunchEnvironment.invalid(
                "\(set.map { reader.quoted($0) }.joined(separator: ", ")) \(set.count == 1 ? "is" : "are") set but "
                    + "\(missing.joined(separator: " and ")) \(missing.count == 1 ? "is" : "are") not; "
                    + "the \(source) family needs both \(self.rank) and \(self.worldSize)")
        }
        if worldSize.value < 1 { throw LaunchEnvironment.invalid("\(worldSize) must be at least 1") }
        if worldSize.value > LaunchEnvironment.maxWorldSize {
            throw LaunchEnvironment.invalid(
                "\(worldSize) is above swift-ccl's limit of \(LaunchEnvironment.maxWorldSize) ranks (one store wait names at most that many keys)"
            )
        }
        if rank.value >= worldSize.value {
            throw LaunchEnvironment.invalid("\(rank) is outside 0..<\(worldSize.value) (\(worldSize))")
        }
        result.rank = rank.value
        result.worldSize = worldSize.value
        var used = [self.rank, self.worldSize]

        var localRank: Setting?
        if let name = self.localRank { localRank = try reader.integer(name) }
        var localWorldSize: Setting?
        if let name = self.localWorldSize {
            localWorldSize = localWorldSizeMayBeList ? try reader.plainInteger(name) : try reader.integer(name)
        }
        switch (localRank, localWorldSize, localPairing) {
        case (let alone?, nil, .both), (nil, let alone?, .both), (nil, let alone?, .rankMayStandAlone):
            let other = alone.name == self.localRank ? self.localWorldSize : self.localRank
            throw LaunchEnvironment.invalid("\(alone) is set but \(other ?? "its pair") is not; set both or neither")
        default: break
        }
        if let size = localWorldSize {
            if size.value < 1 { throw LaunchEnvironment.invalid("\(size) must be at least 1") }
            if size.value > worldSize.value {
                throw LaunchEnvironment.invalid("\(size) is greater than \(worldSize); a node cannot hold more processes than the job")
            }
        }
        if let index = localRank {
            let bound = localWorldSize ?? worldSize
            if index.value >= bound.value {
                throw LaunchEnvironment.invalid("\(index) is outside 0..<\(bound.value) (\(bound))")
            }
        }
        result.localRank = localRank?.value
        result.localWorldSize = localWorldSize?.value
        used += [localRank?.name, localWorldSize?.name].compactMap { $0 }

        if let name = nodeRank, let setting = try reader.integer(name) {
            result.nodeRank = setting.value
            reader.nodeRank = setting
            used.append(name)
        }
        if let name = nodeCount, let setting = try reader.integer(name) {
            result.nodeCount = setting.value
            reader.nodeCount = setting
            used.append(name)
        }
        // Slurm: a list like `4(x2),3` gives this node's local size through its node index.
        if localWorldSizeMayBeList, result.localWorldSize == nil, let node = result.nodeRank {
            for name in ["SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"] {
                guard let text = reader.env[name], let size = SlurmTaskList.tasks(onNode: node, in: text.trimmed, total: worldSize.value),
                    result.localRank.map({ $0 < size }) ?? true
                else { continue }
                result.localWorldSize = size
                used.append(name)
                break
            }
        }
        result.sourceVariables = used
    }
}

/// Reads and checks single variables; remembers where the node rank and count came from.
private struct Reader {
    var env: [String: String]
    var nodeRank: Setting?
    var nodeCount: Setting?

    /// `NAME="raw value"`, escaped so that empty and odd values show.
    func quoted(_ name: String) -> String {
        "\(name)=" + (env[name] ?? "").debugDescription
    }

    /// A decimal integer, or nil when unset.
    func integer(_ name: String) throws(CCLError) -> Setting? {
        guard let raw = env[name] else { return nil }
        let digits = raw.trimmed
        if digits.isEmpty { throw LaunchEnvironment.invalid("\(quoted(name)) is empty; expected a decimal integer") }
        if let first = digits.first, first == "+" || first == "-" {
            throw LaunchEnvironment.invalid("\(quoted(name)) is not a decimal integer: no sign is allowed")
        }
        var value = 0
        for byte in digits.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw LaunchEnvironment.invalid("\(quoted(name)) is not a decimal integer")
            }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { throw LaunchEnvironment.invalid("\(quoted(name)) is too large") }
            value = sum
        }
        return Setting(name: name, value: value)
    }

    /// An integer when the value is digits only (after trimming), nil for any other form.
    func plainInteger(_ name: String) throws(CCLError) -> Setting? {
        guard let raw = env[name] else { return nil }
        let digits = raw.trimmed
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return try integer(name)
    }

    func port(_ name: String) throws(CCLError) -> Int? {
        guard let port = try integer(name) else { return nil }
        guard (1...65535).contains(port.value) else { throw LaunchEnvironment.invalid("\(port) is outside 1...65535") }
        return port.value
    }

    /// A host name or IP address: no spaces; `[v6]` loses its brackets; `host:port` is refused.
    func address(_ name: String, portName: String) throws(CCLError) -> String? {
        guard let raw = env[name] else { return nil }
        let address = raw.trimmed
        if address.isEmpty { throw LaunchEnvironment.invalid("\(quoted(name)) is empty; expected a host name or IP address") }
        if address.contains(where: \.isWhitespace) { throw LaunchEnvironment.invalid("\(quoted(name)) contains spaces") }
        let brackets = address.utf8.filter { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") }
        if brackets == [UInt8(ascii: "["), UInt8(ascii: "]")], address.hasPrefix("[") {
            guard address.hasSuffix("]") else {
                throw LaunchEnvironment.invalid(
                    "\(quoted(name)) has text after the closing bracket; give only the address (the port goes in \(portName))")
            }
            let inner = address.dropFirst().dropLast()
            if inner.isEmpty { throw LaunchEnvironment.invalid("\(quoted(name)) has nothing between the brackets") }
            return String(inner)
        }
        if !brackets.isEmpty { throw LaunchEnvironment.invalid("\(quoted(name)) has unbalanced brackets") }
        if address.utf8.filter({ $0 == UInt8(ascii: ":") }).count == 1 {
            throw LaunchEnvironment.invalid(
                "\(quoted(name)) looks like host:port; give only the address (the port goes in \(portName))")
        }
        return address
    }

    /// The value as it is, nil when unset or empty.
    func string(_ name: String) -> String? {
        guard let value = env[name], !value.isEmpty else { return nil }
        return value
    }
}

extension String {
    /// Without leading and trailing whitespace.
    fileprivate var trimmed: String {
        guard let start = firstIndex(where: { !$0.isWhitespace }), let end = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[start...end])
    }
}
