import CCLCore
import NIOCore

/// The TCP protocol between a queue writer and its remote readers. All integers little-endian.
///
/// ```
/// reader → writer, once:  the `Handshake` hello with magic "CCLQHEL2", the reader's rank, the token
///                         and no context
/// writer → reader, once:  the `Handshake` ack with magic "CCLQACK2" and status (0 ok, 1 bad token,
///                         2 not a reader, 3 rank taken)
/// writer → reader, then frames, each 24 bytes of header and a payload:
///                         u32 kind · u32 payloadLength · u64 messageLength · u64 offset
///   kind 1 data:   bytes offset ..< offset+payloadLength of a message of messageLength bytes
///   kind 2 ready:  every reader attached (payloadLength 0)
///   kind 3 closed: the writer closed the queue (payloadLength 0)
/// ```
/// A reader sends nothing after its hello; anything it sends closes its connection. Payloads
/// are at most `maxFramePayload` bytes; a frame that breaks a rule closes the connection.
enum RemoteWire {
    // Version 2 since the hello became the common `Handshake` (a version-1 peer is refused at once).
    static let helloMagic: UInt64 = 0x324C_4548_514C_4343  // "CCLQHEL2"
    static let ackMagic: UInt64 = 0x324B_4341_514C_4343  // "CCLQACK2"
    static let maxTokenBytes = AuthToken.maxBytes
    static let frameHeaderBytes = 24
    static let maxFramePayload = 1 << 20

    enum Status: UInt32 {
        case ok = 0
        case badToken = 1
        case notAReader = 2
        case rankTaken = 3
    }

    enum Kind: UInt32 {
        case data = 1
        case ready = 2
        case closed = 3
    }

    struct FrameHeader: Equatable {
        var kind: Kind
        var payloadLength: Int
        var messageLength: UInt64
        var offset: UInt64
    }

    static func writeFrameHeader(_ header: FrameHeader, into buffer: inout ByteBuffer) {
        buffer.writeInteger(header.kind.rawValue, endianness: .little)
        buffer.writeInteger(UInt32(header.payloadLength), endianness: .little)
        buffer.writeInteger(header.messageLength, endianness: .little)
        buffer.writeInteger(header.offset, endianness: .little)
    }

    /// Reads and checks a frame header; nil when fewer than 24 bytes are buffered.
    static func readFrameHeader(from buffer: inout ByteBuffer, maxMessageBytes: Int) throws(CCLError) -> FrameHeader? {
        guard buffer.readableBytes >= frameHeaderBytes,
            let rawKind = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .little, as: UInt32.self),
            let messageLength = buffer.getInteger(at: buffer.readerIndex + 8, endianness: .little, as: UInt64.self),
            let offset = buffer.getInteger(at: buffer.readerIndex + 16, endianness: .little, as: UInt64.self)
        else { return nil }
        let operation = "read queue frame"
        guard let kind = Kind(rawValue: rawKind) else {
            throw CCLError(.malformed, operation: operation, "unknown frame kind \(rawKind)")
        }
        guard Int(length) <= maxFramePayload else {
            throw CCLError(.tooLarge, operation: operation, "frame payload of \(length) bytes exceeds \(maxFramePayload)")
        }
        if kind != .data, length != 0 || messageLength != 0 || offset != 0 {
            throw CCLError(.malformed, operation: operation, "control frame \(kind) carries a payload")
        }
        if kind == .data {
            guard messageLength <= UInt64(maxMessageBytes) else {
                throw CCLError(.tooLarge, operation: operation, "message of \(messageLength) bytes exceeds the limit of \(maxMessageBytes)")
            }
            guard offset <= messageLength, UInt64(length) <= messageLength - offset else {
                throw CCLError(
                    .malformed, operation: operation,
                    "fragment of \(length) bytes at \(offset) overruns a \(messageLength)-byte message")
            }
        }
        buffer.moveReaderIndex(forwardBy: frameHeaderBytes)
        return FrameHeader(kind: kind, payloadLength: Int(length), messageLength: messageLength, offset: offset)
    }

    /// Remote readers and their writer share a token of 1 to `maxTokenBytes` bytes.
    static func checkToken(_ token: String, operation: String, rank: Int) throws(CCLError) {
        guard !token.isEmpty, token.utf8.count <= maxTokenBytes else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: rank,
                "remote queue readers and their writer need a shared token of 1 to \(maxTokenBytes) bytes "
                    + "(set CCL_TOKEN, or QueueOptions.token); this one has \(token.utf8.count)")
        }
    }
}
