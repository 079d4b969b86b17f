/// The one handshake every TCP service of swift-ccl opens with (the store, remote queue readers,
/// the collectives' mesh): the connecting side says who it is and presents the shared token;
/// the accepting side checks it (`AuthToken.matches`) before anything else is read.
///
///     hello: magic u64 · rank u32 (0xFFFF_FFFF: none) · tokenLength u32 · contextLength u32
///            · token · context                                         (little-endian)
///     ack:   ackMagic u64 · status u32 (the service's: 0 for accepted in the store and the
///            queue; the accepting rank in the mesh)
///
/// Each service has its own magic (so a client of one is refused by another at once) and puts
/// what else both sides must agree on in `context` (the mesh: world size and group name). Nothing
/// in a hello sizes a buffer beyond `AuthToken.maxBytes + maxContextBytes`.
public struct Handshake: Sendable, Equatable {
    /// Bytes of a hello's fixed part.
    public static let headerBytes = 20
    /// Bytes of an ack.
    public static let ackBytes = 12
    /// The most context a hello may carry.
    public static let maxContextBytes = 4096
    static let noRank: UInt32 = 0xFFFF_FFFF

    /// The connecting side's rank, when it has one.
    public var rank: Int?
    /// The shared token.
    public var token: [UInt8]
    /// What else both sides must agree on (the mesh: world size and group name).
    public var context: [UInt8]

    /// A hello from `rank` (none: a client without one) presenting `token`.
    public init(rank: Int? = nil, token: [UInt8], context: [UInt8] = []) {
        self.rank = rank
        self.token = token
        self.context = context
    }

    /// The hello's bytes, opening with `magic`.
    public func encode(magic: UInt64) -> [UInt8] {
        var bytes = Self.littleEndian(magic)
        bytes += Self.littleEndian(rank.map { UInt32(truncatingIfNeeded: $0) } ?? Self.noRank)
        bytes += Self.littleEndian(UInt32(truncatingIfNeeded: token.count))
        bytes += Self.littleEndian(UInt32(truncatingIfNeeded: context.count))
        return bytes + token + context
    }

    /// What a hello's first `headerBytes` announce.
    public struct Header: Sendable, Equatable {
        /// The sender's rank, when it has one.
        public var rank: Int?
        /// Bytes of the token that follows.
        public var tokenLength: Int
        /// Bytes of the context after the token.
        public var contextLength: Int

        /// A header announcing these.
        public init(rank: Int?, tokenLength: Int, contextLength: Int) {
            self.rank = rank
            self.tokenLength = tokenLength
            self.contextLength = contextLength
        }

        /// The whole hello, header included.
        public var totalBytes: Int { Handshake.headerBytes + tokenLength + contextLength }
    }

    /// Why bytes are not a hello of this service.
    public enum Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        /// Fewer bytes than a header.
        case short(Int)
        /// Another magic: a client of another service, or not swift-ccl at all.
        case notThisService
        /// A token or context longer than the limits (`AuthToken.maxBytes`, `maxContextBytes`).
        case tokenTooLong(Int)
        case contextTooLong(Int)

        /// The rejection in words, for the log.
        public var description: String {
            switch self {
            case .short(let count): "a hello of \(count) bytes"
            case .notThisService: "bad hello (another service or protocol)"
            case .tokenTooLong(let count): "token of \(count) bytes (at most \(AuthToken.maxBytes))"
            case .contextTooLong(let count): "context of \(count) bytes (at most \(Handshake.maxContextBytes))"
            }
        }
    }

    /// Reads a header (`bytes` holds at least `headerBytes`); a wrong magic or a length over its
    /// bound is a rejection, before anything else is read.
    public static func parseHeader(_ bytes: [UInt8], magic: UInt64) -> Result<Header, Rejection> {
        guard bytes.count >= headerBytes else { return .failure(.short(bytes.count)) }
        guard word64(bytes, 0) == magic else { return .failure(.notThisService) }
        let rank = word32(bytes, 8), tokenLength = Int(word32(bytes, 12)), contextLength = Int(word32(bytes, 16))
        guard tokenLength <= AuthToken.maxBytes else { return .failure(.tokenTooLong(tokenLength)) }
        guard contextLength <= maxContextBytes else { return .failure(.contextTooLong(contextLength)) }
        return .success(Header(rank: rank == noRank ? nil : Int(rank), tokenLength: tokenLength, contextLength: contextLength))
    }

    /// The hello whose header is `header` and whose remaining `header.totalBytes - headerBytes`
    /// bytes are `rest`; nil when `rest` has another length.
    public init?(header: Header, rest: [UInt8]) {
        guard rest.count == header.tokenLength + header.contextLength else { return nil }
        self.init(rank: header.rank, token: Array(rest[..<header.tokenLength]), context: Array(rest[header.tokenLength...]))
    }

    /// An ack's bytes.
    public static func ack(magic: UInt64, status: UInt32) -> [UInt8] { littleEndian(magic) + littleEndian(status) }

    /// An ack's status, or nil when `bytes` (at least `ackBytes`) is not this service's ack.
    public static func parseAck(_ bytes: [UInt8], magic: UInt64) -> UInt32? {
        guard bytes.count >= ackBytes, word64(bytes, 0) == magic else { return nil }
        return word32(bytes, 8)
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    static func word64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    static func word32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }
}
