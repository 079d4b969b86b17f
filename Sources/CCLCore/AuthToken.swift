/// The shared secret that authenticates every TCP peer (store clients, remote queue readers, the
/// collectives' mesh): one bound and one comparison for all of them.
public enum AuthToken {
    /// The longest token any handshake accepts.
    public static let maxBytes = 4096

    /// Whether `presented` equals `expected`, in time that does not depend on where they differ
    /// (every byte is compared), so timing does not reveal the token. Lengths are not secret.
    public static func matches(_ presented: [UInt8], _ expected: [UInt8]) -> Bool {
        guard presented.count == expected.count else { return false }
        var difference: UInt8 = 0
        for index in presented.indices { difference |= presented[index] ^ expected[index] }
        return difference == 0
    }
}
