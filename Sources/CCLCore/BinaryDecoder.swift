/// Decodes values written by `CCLBinaryEncoder`; safe on hostile bytes.
///
/// See `CCLBinaryEncoder` for the format. Decoding reads each field in the order it was encoded and checks
/// every key by name. It fails with `CCLError` (`.malformed`, or `.tooLarge` for a limit), never traps, on:
/// truncated input, trailing bytes, a count or length larger than the bytes left (checked before anything
/// is allocated) or than `maxCollectionCount`, nesting deeper than `maxDepth`, a `Bool` byte other than
/// 0 or 1, a presence byte other than 0 or 1, invalid UTF-8, a non-shortest varint, a wrong key, or a
/// duplicate dictionary key. Errors thrown by a type's own `init(from:)` come back wrapped in `CCLError`.
///
/// `decodeNil` consumes a presence byte: 1 means the value follows and is decoded as the wrapped type.
/// Keyed containers report in `allKeys` only the next key, as values are not self-delimiting.
public struct CCLBinaryDecoder: Sendable {
    /// How deeply values may nest. The top-level value is depth 1; each array, dictionary, nested container
    /// and value decoded through `init(from:)` adds a level, optionals and primitives add none.
    public var maxDepth: Int
    /// The largest element, entry or byte count accepted for any one collection or string.
    public var maxCollectionCount: Int

    /// A decoder with these limits.
    public init(maxDepth: Int = 64, maxCollectionCount: Int = 1 << 28) {
        self.maxDepth = maxDepth
        self.maxCollectionCount = maxCollectionCount
    }

    /// Decodes a `T` that must take up all of `bytes`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        let state = BinaryDecodingState(
            bytes: bytes, maxDepth: Swift.max(0, maxDepth), maxCount: Swift.max(0, maxCollectionCount))
        do {
            let value = try state.decodeValue(T.self, depth: 0)
            if let error = state.deferredError { throw error }
            guard state.position == bytes.count else {
                throw state.malformed("\(bytes.count - state.position) trailing bytes after the value")
            }
            return value
        } catch let error as CCLError {
            throw error
        } catch {
            throw CCLError(
                .malformed, operation: "decode", "\(T.self) rejected the decoded data at byte \(state.position)",
                cause: error)
        }
    }

    /// Decodes a `T` that must take up all of `bytes`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }
}

/// The input and the read position; every read checks the bytes left first.
final class BinaryDecodingState {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    let maxDepth: Int
    let maxCount: Int
    /// An error found where the `Decoder` API cannot throw; `decode` throws it at the end.
    var deferredError: CCLError?

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, maxCount: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.maxCount = maxCount
    }

    var remaining: Int { bytes.count - position }

    func malformed(_ message: String) -> CCLError {
        CCLError(.malformed, operation: "decode", "at byte \(position): " + message)
    }

    func truncated(_ needed: Int) -> CCLError {
        malformed("needs \(needed) more bytes but only \(remaining) remain")
    }

    func readByte() throws(CCLError) -> UInt8 {
        guard position < bytes.count else { throw truncated(1) }
        let byte = bytes[position]
        position += 1
        return byte
    }

    func readInteger<T: FixedWidthInteger & BitwiseCopyable>(_ type: T.Type) throws(CCLError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw truncated(size) }
        let value = bytes.loadUnaligned(fromByteOffset: position, as: T.self)
        position += size
        return T(littleEndian: value)
    }

    /// A presence byte: false for 0 (nil), true for 1.
    func readPresence() throws(CCLError) -> Bool {
        switch try readByte() {
        case 0: return false
        case 1: return true
        case let byte: throw malformed("presence byte must be 0 or 1, got \(byte)")
        }
    }

    func readVarint() throws(CCLError) -> UInt64 {
        var result: UInt64 = 0
        for index in 0..<10 {
            let byte = try readByte()
            if index == 9 && byte > 1 { throw malformed("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << (7 * index)
            if byte & 0x80 == 0 {
                if byte == 0 && index > 0 { throw malformed("varint is not in its shortest form") }
                return result
            }
        }
        throw malformed("varint longer than 10 bytes")
    }

    /// A count of items of at least `itemSize` bytes each, checked against the bytes left and the limit.
    func readCount(itemSize: Int = 1) throws(CCLError) -> Int {
        let start = position
        let raw = try readVarint()
        guard raw <= UInt64(remaining / Swift.max(1, itemSize)) else {
            position = start
            throw malformed("claims \(raw) items of \(itemSize)+ bytes but only \(remaining) bytes remain")
        }
        guard raw <= UInt64(maxCount) else {
            position = start
            throw CCLError(
                .tooLarge, operation: "decode", "at byte \(start): count \(raw) exceeds the limit of \(maxCount)")
        }
        return Int(raw)
    }

    /// The next `count` bytes, which the caller has checked are there.
    func take(_ count: Int) -> UnsafeRawBufferPointer {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
        position += count
        return slice
    }

    func readString() throws(CCLError) -> String {
        let length = try readCount()
        if length == 0 { return "" }
        let start = position
        let raw = take(length)
        guard let string = raw.withMemoryRebound(to: UInt8.self, { String(validating: $0, as: UTF8.self) }) else {
            position = start
            throw malformed("string of \(length) bytes is not valid UTF-8")
        }
        return string
    }

    /// Reads a key and checks that it is `expected`.
    func readKey(_ expected: String) throws(CCLError) {
        let start = position
        let length = try readCount()
        let raw = take(length)
        guard expected.utf8.elementsEqual(raw) else {
            position = start
            let found = String(decoding: raw.prefix(80), as: UTF8.self)
            throw malformed("expected key '\(expected)', found '\(found)'")
        }
    }

    /// The next key, without consuming it; nil if there is no valid one.
    func peekKey() -> String? {
        let start = position
        defer { position = start }
        return try? readString()
    }

    /// Checks that a composite value or container one level below `depth` is allowed.
    func enter(from depth: Int) throws(CCLError) -> Int {
        guard depth < maxDepth else {
            throw CCLError(
                .tooLarge, operation: "decode", "at byte \(position): values nest deeper than \(maxDepth) levels")
        }
        return depth + 1
    }

    /// Reads any value: primitives, optionals, arrays and dictionaries directly, others via `init(from:)`.
    /// `depth` is that of the container holding the value.
    func decodeValue<T: Decodable>(_ type: T.Type, depth: Int) throws -> T {
        if let direct = T.self as? any DirectBinaryDecodable.Type {
            guard let value = try direct.decodeDirectly(from: self, depth: depth) as? T else {
                throw malformed("internal type mismatch decoding \(T.self)")
            }
            return value
        }
        let start = position
        let value = try T(from: BinaryValueDecoder(state: self, depth: enter(from: depth)))
        if position == start {
            let byte = try readByte()
            guard byte == 0 else {
                position = start
                throw malformed("\(T.self) reads nothing, so its encoding is one 0 byte, not \(byte)")
            }
        }
        return value
    }
}

/// Types read without going through `init(from:)`.
protocol DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Self
}

extension Bool: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Bool {
        switch try state.readByte() {
        case 0: return false
        case 1: return true
        case let byte:
            state.position -= 1
            throw state.malformed("Bool byte must be 0 or 1, got \(byte)")
        }
    }
}

extension String: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> String {
        try state.readString()
    }
}

extension Int: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Int {
        let wide = try state.readInteger(Int64.self)
        guard let value = Int(exactly: wide) else { throw state.malformed("\(wide) does not fit Int") }
        return value
    }
}

extension UInt: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> UInt {
        let wide = try state.readInteger(UInt64.self)
        guard let value = UInt(exactly: wide) else { throw state.malformed("\(wide) does not fit UInt") }
        return value
    }
}

extension Int8: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Int8 {
        try state.readInteger(Int8.self)
    }
}

extension Int16: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Int16 {
        try state.readInteger(Int16.self)
    }
}

extension Int32: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Int32 {
        try state.readInteger(Int32.self)
    }
}

extension Int64: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Int64 {
        try state.readInteger(Int64.self)
    }
}

extension Int128: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Int128 {
        try state.readInteger(Int128.self)
    }
}

extension UInt8: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> UInt8 {
        try state.readByte()
    }
}

extension UInt16: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> UInt16 {
        try state.readInteger(UInt16.self)
    }
}

extension UInt32: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> UInt32 {
        try state.readInteger(UInt32.self)
    }
}

extension UInt64: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> UInt64 {
        try state.readInteger(UInt64.self)
    }
}

extension UInt128: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> UInt128 {
        try state.readInteger(UInt128.self)
    }
}

extension Float: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Float {
        Float(bitPattern: try state.readInteger(UInt32.self))
    }
}

extension Double: DirectBinaryDecodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Double {
        Double(bitPattern: try state.readInteger(UInt64.self))
    }
}

extension Optional: DirectBinaryDecodable where Wrapped: Decodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> Wrapped? {
        guard try state.readPresence() else { return nil }
        return try state.decodeValue(Wrapped.self, depth: depth)
    }
}

/// Room to reserve up front for `count` items: never more than about 64 KiB before the items are read.
private func initialCapacity<Element>(_ count: Int, of type: Element.Type) -> Int {
    Swift.min(count, (1 << 16) / Swift.max(1, MemoryLayout<Element>.stride))
}

extension Array: DirectBinaryDecodable where Element: Decodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> [Element] {
        let inner = try state.enter(from: depth)
        if isBulkBinaryElement(Element.self) {
            let size = MemoryLayout<Element>.size
            let count = try state.readCount(itemSize: size)
            let raw = state.take(count * size)
            return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw) }
                initialized = count
            }
        }
        let count = try state.readCount()
        var array: [Element] = []
        array.reserveCapacity(initialCapacity(count, of: Element.self))
        for _ in 0..<count {
            array.append(try state.decodeValue(Element.self, depth: inner))
        }
        return array
    }
}

extension Dictionary: DirectBinaryDecodable where Key: Decodable, Value: Decodable {
    static func decodeDirectly(from state: BinaryDecodingState, depth: Int) throws -> [Key: Value] {
        let inner = try state.enter(from: depth)
        let count = try state.readCount(itemSize: 2)
        var dictionary: [Key: Value] = [:]
        dictionary.reserveCapacity(initialCapacity(count, of: (Key, Value).self))
        for _ in 0..<count {
            let start = state.position
            let key = try state.decodeValue(Key.self, depth: inner)
            let value = try state.decodeValue(Value.self, depth: inner)
            guard dictionary.updateValue(value, forKey: key) == nil else {
                state.position = start
                throw state.malformed("duplicate dictionary key")
            }
        }
        return dictionary
    }
}

/// The `Decoder` handed to one value's `init(from:)`; it gives out one kind of container.
final class BinaryValueDecoder: Decoder {
    let state: BinaryDecodingState
    let depth: Int
    private var keyed: BinaryKeyedCursor?
    private var unkeyed: BinaryUnkeyedCursor?
    private var single = false

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(state: BinaryDecodingState, depth: Int) {
        self.state = state
        self.depth = depth
    }

    private func mismatch(_ asked: String) -> CCLError {
        state.malformed("a value asked for a \(asked) container after another kind")
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard unkeyed == nil && !single else { throw mismatch("keyed") }
        let cursor = try keyed ?? BinaryKeyedCursor(remaining: state.readCount())
        keyed = cursor
        return KeyedDecodingContainer(BinaryKeyedDecoding<Key>(state: state, cursor: cursor, depth: depth))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard keyed == nil && !single else { throw mismatch("unkeyed") }
        let cursor = try unkeyed ?? BinaryUnkeyedCursor(count: state.readCount())
        unkeyed = cursor
        return BinaryUnkeyedDecoding(state: state, cursor: cursor, depth: depth)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        guard keyed == nil && unkeyed == nil else { throw mismatch("single-value") }
        single = true
        return BinarySingleValueDecoding(state: state, depth: depth)
    }
}

private func unsupportedSuperDecoder() -> CCLError {
    CCLError(.invalidArgument, operation: "decode", "superDecoder is not supported by the binary format")
}

/// Where a keyed container is: entries left, and a key whose presence byte `decodeNil` has read already.
final class BinaryKeyedCursor {
    var remaining: Int
    var pendingKey: String?

    init(remaining: Int) { self.remaining = remaining }
}

struct BinaryKeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let state: BinaryDecodingState
    let cursor: BinaryKeyedCursor
    let depth: Int

    var codingPath: [any CodingKey] { [] }

    var allKeys: [Key] {
        guard let name = cursor.pendingKey ?? (cursor.remaining > 0 ? state.peekKey() : nil) else { return [] }
        return Key(stringValue: name).map { [$0] } ?? []
    }

    func contains(_ key: Key) -> Bool {
        if let pending = cursor.pendingKey { return pending == key.stringValue }
        return cursor.remaining > 0 && state.peekKey() == key.stringValue
    }

    /// Moves to the value of `key`, which must be the next entry.
    private func enter(_ key: Key) throws(CCLError) {
        if let pending = cursor.pendingKey {
            guard pending == key.stringValue else {
                throw state.malformed("the value of key '\(pending)' comes next, not '\(key.stringValue)'")
            }
            cursor.pendingKey = nil
            return
        }
        guard cursor.remaining > 0 else { throw state.malformed("no entry left for key '\(key.stringValue)'") }
        try state.readKey(key.stringValue)
        cursor.remaining -= 1
    }

    private func get<T: DirectBinaryDecodable>(_ type: T.Type, _ key: Key) throws -> T {
        try enter(key)
        return try T.decodeDirectly(from: state, depth: depth)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if cursor.pendingKey == key.stringValue { return false }
        try enter(key)
        guard try state.readPresence() else { return true }
        cursor.pendingKey = key.stringValue
        return false
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try get(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try get(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try get(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try get(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try get(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try get(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try get(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try get(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try get(type, key) }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try get(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try get(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try get(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try get(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try get(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try get(type, key) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try get(type, key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try enter(key)
        return try state.decodeValue(T.self, depth: depth)
    }

    // The key must be there (with presence byte 0 for nil), unlike the lenient default.
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try get(Bool?.self, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try get(String?.self, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try get(Double?.self, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try get(Float?.self, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try get(Int?.self, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try get(Int8?.self, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try get(Int16?.self, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try get(Int32?.self, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try get(Int64?.self, key) }
    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws -> Int128? { try get(Int128?.self, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try get(UInt?.self, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try get(UInt8?.self, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try get(UInt16?.self, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try get(UInt32?.self, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try get(UInt64?.self, key) }
    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws -> UInt128? {
        try get(UInt128?.self, key)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try decode(T?.self, forKey: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try enter(key)
        let inner = try state.enter(from: depth)
        let cursor = try BinaryKeyedCursor(remaining: state.readCount())
        return KeyedDecodingContainer(BinaryKeyedDecoding<NestedKey>(state: state, cursor: cursor, depth: inner))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try enter(key)
        let inner = try state.enter(from: depth)
        return try BinaryUnkeyedDecoding(
            state: state, cursor: BinaryUnkeyedCursor(count: state.readCount()), depth: inner)
    }

    func superDecoder() throws -> any Decoder { throw unsupportedSuperDecoder() }
    func superDecoder(forKey key: Key) throws -> any Decoder { throw unsupportedSuperDecoder() }
}

/// Where an unkeyed container is; `pending` means `decodeNil` has read a presence byte of 1.
final class BinaryUnkeyedCursor {
    let count: Int
    var index = 0
    var pending = false

    init(count: Int) { self.count = count }
}

struct BinaryUnkeyedDecoding: UnkeyedDecodingContainer {
    let state: BinaryDecodingState
    let cursor: BinaryUnkeyedCursor
    let depth: Int

    var codingPath: [any CodingKey] { [] }
    var count: Int? { cursor.count }
    var isAtEnd: Bool { cursor.index >= cursor.count }
    var currentIndex: Int { cursor.index }

    /// Moves past the next element, whose bytes the caller then reads.
    private func advance() throws(CCLError) {
        if cursor.pending {
            cursor.pending = false
        } else if cursor.index >= cursor.count {
            throw state.malformed("all \(cursor.count) elements of the container were read already")
        }
        cursor.index += 1
    }

    private func get<T: DirectBinaryDecodable>(_ type: T.Type) throws -> T {
        try advance()
        return try T.decodeDirectly(from: state, depth: depth)
    }

    mutating func decodeNil() throws -> Bool {
        if cursor.pending { return false }
        guard cursor.index < cursor.count else {
            throw state.malformed("all \(cursor.count) elements of the container were read already")
        }
        guard try state.readPresence() else {
            cursor.index += 1
            return true
        }
        cursor.pending = true
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try get(type) }
    mutating func decode(_ type: String.Type) throws -> String { try get(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try get(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try get(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try get(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try get(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try get(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try get(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try get(type) }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try get(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try get(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try get(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try get(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try get(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try get(type) }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try get(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try advance()
        return try state.decodeValue(T.self, depth: depth)
    }

    // The element must be there (presence byte 0 for nil), unlike the lenient default.
    mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? { try get(Bool?.self) }
    mutating func decodeIfPresent(_ type: String.Type) throws -> String? { try get(String?.self) }
    mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? { try get(Double?.self) }
    mutating func decodeIfPresent(_ type: Float.Type) throws -> Float? { try get(Float?.self) }
    mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? { try get(Int?.self) }
    mutating func decodeIfPresent(_ type: Int8.Type) throws -> Int8? { try get(Int8?.self) }
    mutating func decodeIfPresent(_ type: Int16.Type) throws -> Int16? { try get(Int16?.self) }
    mutating func decodeIfPresent(_ type: Int32.Type) throws -> Int32? { try get(Int32?.self) }
    mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? { try get(Int64?.self) }
    mutating func decodeIfPresent(_ type: Int128.Type) throws -> Int128? { try get(Int128?.self) }
    mutating func decodeIfPresent(_ type: UInt.Type) throws -> UInt? { try get(UInt?.self) }
    mutating func decodeIfPresent(_ type: UInt8.Type) throws -> UInt8? { try get(UInt8?.self) }
    mutating func decodeIfPresent(_ type: UInt16.Type) throws -> UInt16? { try get(UInt16?.self) }
    mutating func decodeIfPresent(_ type: UInt32.Type) throws -> UInt32? { try get(UInt32?.self) }
    mutating func decodeIfPresent(_ type: UInt64.Type) throws -> UInt64? { try get(UInt64?.self) }
    mutating func decodeIfPresent(_ type: UInt128.Type) throws -> UInt128? { try get(UInt128?.self) }

    mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? {
        try decode(T?.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try advance()
        let inner = try state.enter(from: depth)
        let cursor = try BinaryKeyedCursor(remaining: state.readCount())
        return KeyedDecodingContainer(BinaryKeyedDecoding<NestedKey>(state: state, cursor: cursor, depth: inner))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try advance()
        let inner = try state.enter(from: depth)
        return try BinaryUnkeyedDecoding(
            state: state, cursor: BinaryUnkeyedCursor(count: state.readCount()), depth: inner)
    }

    mutating func superDecoder() throws -> any Decoder { throw unsupportedSuperDecoder() }
}

struct BinarySingleValueDecoding: SingleValueDecodingContainer {
    let state: BinaryDecodingState
    let depth: Int

    var codingPath: [any CodingKey] { [] }

    private func get<T: DirectBinaryDecodable>(_ type: T.Type) throws -> T {
        try T.decodeDirectly(from: state, depth: depth)
    }

    /// Reads a presence byte; an invalid one makes the whole decode fail (this method cannot throw).
    func decodeNil() -> Bool {
        do {
            return try !state.readPresence()
        } catch {
            if state.deferredError == nil { state.deferredError = error }
            return false
        }
    }

    func decode(_ type: Bool.Type) throws -> Bool { try get(type) }
    func decode(_ type: String.Type) throws -> String { try get(type) }
    func decode(_ type: Double.Type) throws -> Double { try get(type) }
    func decode(_ type: Float.Type) throws -> Float { try get(type) }
    func decode(_ type: Int.Type) throws -> Int { try get(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try get(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try get(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try get(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try get(type) }
    func decode(_ type: Int128.Type) throws -> Int128 { try get(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try get(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try get(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try get(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try get(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try get(type) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try get(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try state.decodeValue(T.self, depth: depth)
    }
}
