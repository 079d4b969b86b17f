import CCLBackend
import CCLCore
import CCLSystem
import Logging

/// Settings of the CPU backends: what they share (timeout, call checks, the backend request) and
/// each backend's own section (`shm`, `tcp`). Every rank of a group must use the same sizes and
/// algorithm overrides.
public struct CollectiveOptions: Sendable {
    /// Which transport `CPUCommunicatorFactory` uses; `.auto` picks shared memory inside a node, TCP
    /// across nodes, and the hierarchical composition for groups that span several nodes with
    /// more than one rank on some node.
    public enum Transport: String, Sendable, CaseIterable {
        case auto, shm, tcp
    }

    /// The transport to use (`CCL_TRANSPORT`); `.auto` by default.
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
    /// The shared-memory backend's own settings.
    public var shm = ShmOptions()
    /// The TCP backend's own settings.
    public var tcp = TCPOptions()

    /// Warnings (a multi-node group listening on loopback).
    public var logger = Logger(label: "ccl.collectives")

    /// The defaults: automatic choice, 300 s timeout, call checks on.
    public init() {}

    /// The error for a bad variable: it names the variable, the value and what was expected.
    static func invalid(_ name: String, _ value: String, _ expected: String) -> CCLError {
        CCLError(.invalidArgument, operation: "read collective options", "\(name)=\(value) is invalid: expected \(expected)")
    }

    /// Options from `CCL_ALGO`, `CCL_CHECK_CALLS`, `CCL_SHM_SLOT_BYTES`, `CCL_SHM_COST`, `CCL_TRANSPORT`,
    /// `CCL_BACKEND`, `CCL_BACKEND_STRICT`, `CCL_TIMEOUT` (seconds), `CCL_HOST`, `CCL_TOKEN`,
    /// `CCL_TCP_SEND_THREAD`, `CCL_TCP_STREAM`, `CCL_TCP_RECEIVE_THREAD` and `CCL_TCP_CONNECTIONS`,
    /// over `base`. Errors name the variable and value.
    public static func fromEnvironment(_ environment: [String: String], base: CollectiveOptions = CollectiveOptions())
        throws(CCLError) -> CollectiveOptions
    {
        var options = base
        let bad = invalid
        if let value = environment["CCL_ALGO"], !value.isEmpty {
            if let shm = SlotAllReduce(rawValue: value.lowercased()) {
                options.shm.allReduce = shm
            } else if let tcp = PeerAllReduce(rawValue: value.lowercased()) {
                options.tcp.allReduce = tcp
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
        options.shm = try options.shm.reading(environment)
        if let value = environment["CCL_TRANSPORT"], !value.isEmpty {
            guard let transport = Transport(rawValue: value.lowercased()) else {
                throw bad("CCL_TRANSPORT", value, "auto, shm or tcp")
            }
            options.transport = transport
        }
        if options.launcher == nil, let launch = try? LaunchEnvironment.parse(environment), launch.source != .single {
            options.launcher = launch.source
        }
        if environment["CCL_BACKEND"] != nil || environment["CCL_BACKEND_STRICT"] != nil {
            options.request = try BackendRequest.fromEnvironment(environment)
        }
        if let value = environment["CCL_TIMEOUT"], !value.isEmpty {
            guard let seconds = Double(value), seconds > 0 else { throw bad("CCL_TIMEOUT", value, "seconds > 0") }
            options.timeout = .seconds(seconds)
        }
        options.tcp = try options.tcp.reading(environment)
        return options
    }
}

// The settings' earlier places, before each backend owned its own.
extension CollectiveOptions {
    /// Deprecated: `tcp.host`.
    @available(*, deprecated, renamed: "tcp.host")
    public var host: String {
        get { tcp.host }
        set { tcp.host = newValue }
    }
    /// Deprecated: `tcp.token`.
    @available(*, deprecated, renamed: "tcp.token")
    public var token: String {
        get { tcp.token }
        set { tcp.token = newValue }
    }
    /// Deprecated: `tcp.allReduce`.
    @available(*, deprecated, renamed: "tcp.allReduce")
    public var tcpAllReduce: PeerAllReduce? {
        get { tcp.allReduce }
        set { tcp.allReduce = newValue }
    }
    /// Deprecated: `shm.slotBytes`.
    @available(*, deprecated, renamed: "shm.slotBytes")
    public var slotBytes: Int {
        get { shm.slotBytes }
        set { shm.slotBytes = newValue }
    }
    /// Deprecated: `shm.mailboxBytes`.
    @available(*, deprecated, renamed: "shm.mailboxBytes")
    public var mailboxBytes: Int? {
        get { shm.mailboxBytes }
        set { shm.mailboxBytes = newValue }
    }
    /// Deprecated: `shm.allReduce`.
    @available(*, deprecated, renamed: "shm.allReduce")
    public var shmAllReduce: SlotAllReduce? {
        get { shm.allReduce }
        set { shm.allReduce = newValue }
    }
    /// Deprecated: `shm.wait`.
    @available(*, deprecated, renamed: "shm.wait")
    public var wait: WaitPolicy {
        get { shm.wait }
        set { shm.wait = newValue }
    }
}
