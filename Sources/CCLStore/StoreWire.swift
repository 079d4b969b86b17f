import CCLCore
import NIOCore

/// The TCP store's protocol. Integers little-endian.
///
/// ```
/// client → server, once: the `Handshake` hello, magic "CCLSHEL2", no rank, the token, no context
/// server → client, once: the `Handshake` ack, magic "CCLSACK2", status (0 ok, 1 bad token)
/// then, one request at a time:
///   request:  u32 length · u8 op · fields            (length counts op and fields, ≤ maxFrame)
///   response: u32 length · u8 status · payload        (0 ok, 1 timeout: u32 n · n keys, 2 error: text)
/// fields: key = u32 n · n UTF-8 bytes (n ≤ 4096) · bytes = u32 n · n bytes (n ≤ maxValue)
///         keys = u32 count (≤ 65536) · keys · i64, u64, u8 plain
/// ops:  1 set key bytes → ∅        2 get key u64 timeoutNs → bytes      3 add key i64 → i64
///       4 compareSet key bytes bytes → bytes             5 wait keys u64 timeoutNs → ∅
///       6 check keys → u8           7 delete key → u8     8 numKeys → u64
///       9 keys key(prefix) u8(has after) key(after) → u8(more follow) keys   (one page, sorted)
///      10 claim key bytes → u8(1: claimed) bytes(the value there when not)
/// timeoutNs: UInt64.max waits for ever.
/// ```
/// Anything else (a bad magic, an unknown op, a field that overruns its frame, trailing bytes,
/// a frame over the limit, half a frame left for the server's stall timeout) closes that connection.
enum StoreWire {
    // Version 3 since `keys` pages and `claim` exist (an older peer is refused at once).
    static let helloMagic: UInt64 = 0x334C_4548_534C_4343  // "CCLSHEL3"
    static let ackMagic: UInt64 = 0x334B_4341_534C_4343  // "CCLSACK3"
    static let maxTokenBytes = AuthToken.maxBytes
    static let maxKeyBytes = 4096
    static let maxValueBytes = 64 << 20
    static let maxKeys = 65536
    static let maxFrame = maxValueBytes * 2 + 64 * 1024

    enum Op: UInt8 {
        case set = 1, get, add, compareSet, wait, check, delete, numKeys, keys, claim
    }

    enum Status: UInt8 {
        case ok = 0, timeout, error
    }

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    // MARK: writing

    static func writeKey(_ key: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(key.utf8.count), endianness: .little)
        buffer.writeString(key)
    }

    static func writeBytes(_ bytes: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(bytes.count), endianness: .little)
        buffer.writeBytes(bytes)
    }

    static func writeKeys(_ keys: [String], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(keys.count), endianness: .little)
        for key in keys { writeKey(key, into: &buffer) }
    }

    /// A frame: its length, then what `body` writes.
    static func frame(_ allocator: ByteBufferAllocator, _ body: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        buffer.writeInteger(UInt32(0), endianness: .little)
        body(&buffer)
        buffer.setInteger(UInt32(buffer.readableBytes - 4), at: buffer.readerIndex, endianness: .little)
        return buffer
    }

    /// Checks what a caller passes before it goes on the wire.
    static func checkKey(_ key: String, operation: String) throws(CCLError) {
        guard key.utf8.count <= maxKeyBytes else {
            throw CCLError(.tooLarge, operation: operation, "key of \(key.utf8.count) bytes exceeds \(maxKeyBytes)")
        }
    }

    static func checkValue(_ value: [UInt8], operation: String) throws(CCLError) {
        guard value.count <= maxValueBytes else {
            throw CCLError(.tooLarge, operation: operation, "value of \(value.count) bytes exceeds \(maxValueBytes)")
        }
    }

    // MARK: reading (every read is bounded by the frame)

    /// Splits off one whole frame's contents, or nil when it has not all arrived.
    static func nextFrame(from buffer: inout ByteBuffer) throws(Malformed) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else { return nil }
        guard length >= 1, Int(length) <= maxFrame else { throw Malformed(description: "frame of \(length) bytes") }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }

    static func readKey(_ buffer: inout ByteBuffer) throws(Malformed) -> String {
        guard let length = buffer.readInteger(endianness: .little, as: UInt32.self), Int(length) <= maxKeyBytes,
            let bytes = buffer.readBytes(length: Int(length))
        else { throw Malformed(description: "bad key") }
        guard let key = String(validating: bytes, as: UTF8.self) else { throw Malformed(description: "key is not UTF-8") }
        return key
    }

    static func readBytes(_ buffer: inout ByteBuffer) throws(Malformed) -> [UInt8] {
        guard let length = buffer.readInteger(endianness: .little, as: UInt32.self), Int(length) <= maxValueBytes,
            let bytes = buffer.readBytes(length: Int(length))
        else { throw Malformed(description: "bad value") }
        return bytes
    }

    static func readKeys(_ buffer: inout ByteBuffer) throws(Malformed) -> [String] {
        guard let count = buffer.readInteger(endianness: .little, as: UInt32.self), Int(count) <= maxKeys,
            Int(count) * 4 <= buffer.readableBytes
        else { throw Malformed(description: "bad key list") }
        var keys: [String] = []
        keys.reserveCapacity(Int(count))
        for _ in 0..<count { keys.append(try readKey(&buffer)) }
        return keys
    }

    static func readInteger<T: FixedWidthInteger>(_ buffer: inout ByteBuffer, as: T.Type) throws(Malformed) -> T {
        guard let value = buffer.readInteger(endianness: .little, as: T.self) else { throw Malformed(description: "short integer") }
        return value
    }

    static func timeout(fromWire nanoseconds: UInt64) -> Timeout { nanoseconds == .max ? .indefinite : .nanoseconds(nanoseconds) }
    static func wire(_ timeout: Timeout) -> UInt64 { timeout.nanoseconds.map { min($0, .max - 1) } ?? .max }
}
