import CCLBackend
import CCLCore
import CCLSystem
import Logging

/// Settings of a CPU communicator. Every rank of a group must use the same sizes and algorithm
/// overrides (the arena checks the sizes when it attaches).
public struct CollectiveOptions: Sendable {
    /// Which transport `CPUCommunicator` uses; `.auto` picks shared memory inside a node, TCP
    /// across nodes, and the hierarchical composition for groups that span several nodes with
    /// more than one rank on some node.
    public enum Transport: String, Sendable, CaseIterable {
        case auto, shm, tcp
    }

    public var transport: Transport = .auto
    /// Which backends to prefer, and whether to fall back (`CCL_BACKEND`, `CCL_BACKEND_STRICT`);
    /// when it names none, `transport` decides.
    public var request = BackendRequest.automatic
    /// How the job was launched (`LaunchEnvironment.source`), which the backend choice considers
    /// (MPI under mpirun); nil when unknown.
    public var launcher: LaunchEnvironment.Source?
    /// How long one call may wait for the other ranks.
    public var timeout: Timeout = .seconds(300)
    /// Compare every call's fingerprint across ranks (on by default; `CCL_CHECK_CALLS=0` turns it
    /// off to measure its cost).
    public var checkCalls = true
    /// Bytes per rank per round in the shared-memory arena (pieces of larger calls are pipelined).
    public var slotBytes = 256 << 10
    /// Bytes per send/recv mailbox buffer; nil sizes it by the world size.
    public var mailboxBytes: Int?
    /// Forces the shared-memory all-reduce (`CCL_ALGO=oneshot|twoshot`); nil chooses by size.
    public var shmAllReduce: SlotAllReduce?
    /// How waits spin, yield and sleep.
    public var wait = WaitPolicy()
    /// The address this rank's TCP listener binds and advertises to its peers (`CCL_HOST`): an
    /// address of this node the other nodes reach. Loopback works only within one machine.
    public var host = "127.0.0.1"
    /// Shared secret every TCP connection presents (the store's token; `CCL_TOKEN`).
    public var token = ""
    /// Forces the TCP all-reduce (`CCL_ALGO=ring|rd`); nil chooses by size.
    public var tcpAllReduce: PeerAllReduce?

    /// Warnings (a multi-node group listening on loopback).
    public var logger = Logger(label: "ccl.collectives")

    public init() {}

    /// 32 MiB across all ordered pairs, each buffer between 16 KiB and 256 KiB.
    static func defaultMailboxBytes(worldSize: Int) -> Int {
        let pairs = max(1, worldSize * (worldSize - 1) * 2)
        return min(256 << 10, max(16 << 10, (32 << 20) / pairs)) / 64 * 64
    }

    /// Options from `CCL_ALGO`, `CCL_CHECK_CALLS`, `CCL_SHM_SLOT_BYTES`, `CCL_TRANSPORT`,
    /// `CCL_BACKEND`, `CCL_BACKEND_STRICT`, `CCL_TIMEOUT` (seconds), `CCL_HOST` and `CCL_TOKEN`,
    /// over `base`. Errors name the variable and value.
    public static func fromEnvironment(_ environment: [String: String], base: CollectiveOptions = CollectiveOptions())
        throws(CCLError) -> CollectiveOptions
    {
        var options = base
        func bad(_ name: String, _ value: String, _ expected: String) -> CCLError {
            CCLError(.invalidArgument, operation: "read collective options", "\(name)=\(value) is invalid: expected \(expected)")
        }
        if let value = environment["CCL_ALGO"], !value.isEmpty {
            if let shm = SlotAllReduce(rawValue: value.lowercased()) {
                options.shmAllReduce = shm
            } else if let tcp = PeerAllReduce(rawValue: value.lowercased()) {
                options.tcpAllReduce = tcp
            } else {
                let names = (SlotAllReduce.allCases.map(\.rawValue) + PeerAllReduce.allCases.map(\.rawValue))
                throw bad("CCL_ALGO", value, names.joined(separator: ", "))
            }
        }
        if let value = environment["CCL_CHECK_CALLS"], !value.isEmpty {
            switch value.lowercased() {
            case "1", "true", "on", "yes": options.checkCalls = true
            case "0", "false", "off", "no": options.checkCalls = false
            default: throw bad("CCL_CHECK_CALLS", value, "0 or 1")
            }
        }
        if let value = environment["CCL_SHM_SLOT_BYTES"], !value.isEmpty {
            guard let bytes = Int(value), bytes >= 4096, bytes % 64 == 0, bytes <= 1 << 30 else {
                throw bad("CCL_SHM_SLOT_BYTES", value, "a multiple of 64 in 4096...1073741824")
            }
            options.slotBytes = bytes
        }
        if let value = environment["CCL_TRANSPORT"], !value.isEmpty {
            guard let transport = Transport(rawValue: value.lowercased()) else {
                throw bad("CCL_TRANSPORT", value, "auto, shm or tcp")
            }
            options.transport = transport
        }
        if environment["CCL_BACKEND"] != nil || environment["CCL_BACKEND_STRICT"] != nil {
            options.request = try BackendRequest.fromEnvironment(environment)
        }
        if let value = environment["CCL_TIMEOUT"], !value.isEmpty {
            guard let seconds = Double(value), seconds > 0 else { throw bad("CCL_TIMEOUT", value, "seconds > 0") }
            options.timeout = .seconds(seconds)
        }
        if let value = environment["CCL_TOKEN"] { options.token = value }
        if let value = environment["CCL_HOST"], !value.isEmpty {
            let host = value.hasPrefix("[") && value.hasSuffix("]") ? String(value.dropFirst().dropLast()) : value
            guard !host.contains(where: { $0 == " " || $0 == "/" }) else { throw bad("CCL_HOST", value, "an address or host name") }
            options.host = host
        }
        return options
    }
}
