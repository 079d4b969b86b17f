import CCLCore

/// Settings of the TCP backend (`TCPBackend`, `TCPCommunicator`).
public struct TCPOptions: Sendable {
    /// The address this rank's listener binds and advertises to its peers (`CCL_HOST`): an address
    /// of this node the other nodes reach. Loopback works only within one machine.
    public var host = "127.0.0.1"
    /// Shared secret every connection presents (the store's token; `CCL_TOKEN`).
    public var token = ""
    /// Forces the all-reduce (`CCL_ALGO=ring|rd|rhd`); nil chooses by size and group size.
    public var allReduce: PeerAllReduce?
    /// Whether a thread of the communicator's own sends the frames of large calls while the
    /// caller receives (`CCL_TCP_SEND_THREAD=auto|1|0`): nil (auto) uses one unless the node has
    /// a single CPU or more than two of the group's ranks per CPU; true always; false never.
    public var sendThread: Bool?
    /// Whether the ring all-reduce and all-gather stream their frames on the send thread
    /// (`CCL_TCP_STREAM=auto|1|0`, `StreamedRing`): sending, receiving and reducing overlap
    /// instead of going step by step. nil (auto) streams when every rank of the node has two
    /// CPUs to itself (the caller's and the send thread's): with fewer, the extra threads only
    /// take turns (measured 2 ranks on 2 CPUs: ×1.05–1.2 the time). Needs the send thread.
    public var stream: Bool?
    /// Whether a streaming ring also receives on a thread of its own, so the caller only reduces
    /// (`CCL_TCP_RECEIVE_THREAD=auto|1|0`): nil (auto) when every rank of the node has three
    /// CPUs to itself (caller, send and receive threads).
    public var receiveThread: Bool?
    /// Connections to each peer (`CCL_TCP_CONNECTIONS`, 1…16): payloads of 256 KiB and more are
    /// striped over them, for links where one TCP flow cannot fill the NIC (NCCL's
    /// `NCCL_NSOCKS_PERTHREAD`). Every rank of a group must use the same number. With more than
    /// one, ring frames do not stream.
    public var connections = 1
    static let maxConnections = 16

    /// The defaults.
    public init() {}

    /// Whether a communicator with `ranksOnNode` ranks of its group on this node of `cpus` CPUs
    /// gets a send thread.
    func usesSendThread(ranksOnNode: Int, cpus: Int) -> Bool {
        sendThread ?? (cpus >= 2 && max(1, ranksOnNode) <= 2 * cpus)
    }

    /// Whether a streaming communicator receives on a thread of its own.
    func usesReceiveThread(ranksOnNode: Int, cpus: Int) -> Bool {
        receiveThread ?? (3 * max(1, ranksOnNode) <= cpus)
    }

    /// Whether such a communicator streams its ring frames (when it has a send thread).
    func streams(ranksOnNode: Int, cpus: Int) -> Bool {
        stream ?? (2 * max(1, ranksOnNode) <= cpus)
    }

    /// `CCL_HOST`, `CCL_TOKEN`, `CCL_TCP_SEND_THREAD`, `CCL_TCP_STREAM`, `CCL_TCP_RECEIVE_THREAD`
    /// and `CCL_TCP_CONNECTIONS` over `self`; the error names the variable and value.
    func reading(_ environment: [String: String]) throws(CCLError) -> TCPOptions {
        var options = self
        if let value = environment["CCL_TOKEN"] { options.token = value }
        if let value = environment["CCL_HOST"], !value.isEmpty {
            let host = value.hasPrefix("[") && value.hasSuffix("]") ? String(value.dropFirst().dropLast()) : value
            guard !host.contains(where: { $0 == " " || $0 == "/" }) else {
                throw CollectiveOptions.invalid("CCL_HOST", value, "an address or host name")
            }
            options.host = host
        }
        options.sendThread = try Self.autoSwitch("CCL_TCP_SEND_THREAD", environment, default: sendThread)
        options.stream = try Self.autoSwitch("CCL_TCP_STREAM", environment, default: stream)
        options.receiveThread = try Self.autoSwitch("CCL_TCP_RECEIVE_THREAD", environment, default: receiveThread)
        if let value = environment["CCL_TCP_CONNECTIONS"], !value.isEmpty {
            guard let count = Int(value), (1...Self.maxConnections).contains(count) else {
                throw CollectiveOptions.invalid("CCL_TCP_CONNECTIONS", value, "a number of connections from 1 to \(Self.maxConnections)")
            }
            options.connections = count
        }
        return options
    }

    /// An `auto|1|0` variable: nil for auto, `current` when unset or empty.
    private static func autoSwitch(_ name: String, _ environment: [String: String], default current: Bool?) throws(CCLError) -> Bool? {
        guard let value = environment[name], !value.isEmpty else { return current }
        switch value.lowercased() {
        case "auto": return nil
        case "1", "on", "true", "yes": return true
        case "0", "off", "false", "no": return false
        default: throw CollectiveOptions.invalid(name, value, "auto, 1 or 0")
        }
    }
}
