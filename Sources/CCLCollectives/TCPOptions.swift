import CCLCore

/// Settings of the TCP backend (`TCPBackend`, `TCPCommunicator`).
public struct TCPOptions: Sendable {
    /// The address this rank's listener binds and advertises to its peers (`CCL_HOST`): an address
    /// of this node the other nodes reach. Loopback works only within one machine.
    public var host = "127.0.0.1"
    /// Shared secret every connection presents (the store's token; `CCL_TOKEN`).
    public var token = ""
    /// Forces the all-reduce (`CCL_ALGO=ring|rd`); nil chooses by size.
    public var allReduce: PeerAllReduce?
    /// Whether a thread of the communicator's own sends the frames of large calls while the
    /// caller receives (`CCL_TCP_SEND_THREAD=auto|1|0`): nil (auto) uses one unless the node has
    /// a single CPU or more than two of the group's ranks per CPU; true always; false never.
    public var sendThread: Bool?

    /// The defaults.
    public init() {}

    /// Whether a communicator with `ranksOnNode` ranks of its group on this node of `cpus` CPUs
    /// gets a send thread.
    func usesSendThread(ranksOnNode: Int, cpus: Int) -> Bool {
        sendThread ?? (cpus >= 2 && max(1, ranksOnNode) <= 2 * cpus)
    }

    /// `CCL_HOST`, `CCL_TOKEN` and `CCL_TCP_SEND_THREAD` over `self`; the error names the
    /// variable and value.
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
        if let value = environment["CCL_TCP_SEND_THREAD"], !value.isEmpty {
            switch value.lowercased() {
            case "auto": options.sendThread = nil
            case "1", "on", "true", "yes": options.sendThread = true
            case "0", "off", "false", "no": options.sendThread = false
            default: throw CollectiveOptions.invalid("CCL_TCP_SEND_THREAD", value, "auto, 1 or 0")
            }
        }
        return options
    }
}
