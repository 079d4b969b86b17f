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

    /// The defaults.
    public init() {}

    /// `CCL_HOST` and `CCL_TOKEN` over `self`; the error names the variable and value.
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
        return options
    }
}
