/// Encodes any `Encodable` value in swift-ccl's compact binary format.
///
/// The format is positional, not self-describing: bytes decode only as the type that wrote them, read
/// in the same order. `CCLBinaryDecoder` reads it back.
/// - Integers: little-endian, fixed width; `Int` and `UInt` always take 8 bytes.
/// - `Float`, `Double`: their IEEE bit patterns, little-endian. `Bool`: one byte, 0 or 1.
/// - Counts and lengths: unsigned LEB128 varint in its shortest form.
/// - `String`: UTF-8 byte length, then the UTF-8 bytes.
/// - Optional values: a presence byte, 0 (nil) or 1 followed by the wrapped value; `encodeNil` writes 0.
/// - Unkeyed containers and arrays: element count, then the elements. Arrays of fixed-width numbers
///   (`[UInt8]`, `[Int32]`, `[Double]`, ...) are copied in bulk; the bytes are the same as element by element.
/// - Keyed containers: entry count, then per entry the key's `stringValue` (as a String) and the value,
///   in the order encoded.
/// - Dictionaries: entry count, then key, value, key, value, ... in the dictionary's iteration order.
/// - A value whose `encode(to:)` writes nothing (a struct without stored properties) takes one 0 byte, so
///   every value takes at least one byte and no count can stand for more values than there are bytes.
///
/// A nested container can no longer be written once its parent has written past it (`CCLError`), and
/// `superEncoder` is unsupported.
public struct CCLBinaryEncoder: Sendable {
    /// An encoder (it keeps no state between values).
    public init() {}

    /// The encoding of `value`.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(value, into: &bytes)
        return bytes
    }

    /// Appends the encoding of `value` to `bytes`; on error `bytes` is left as it was.
    public func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        let start = bytes.count
        let state = BinaryEncodingState()
        swap(&state.bytes, &bytes)
        do {
            try state.encodeValue(value)
            if let error = state.deferredError { throw error }
        } catch {
            swap(&state.bytes, &bytes)
            bytes.removeSubrange(start...)
            if let error = error as? CCLError { throw error }
            throw CCLError(
                .invalidArgument, operation: "encode", "the value's Encodable conformance failed", cause: error)
        }
        swap(&state.bytes, &bytes)
    }
}

/// A keyed or unkeyed container being written: where its count varint sits and what it says.
final class BinaryEncodingFrame {
    let offset: Int
    var width = 1
    var count: UInt64 = 0
    var isOpen = true

    init(offset: Int) { self.offset = offset }
}

/// The output buffer and the stack of containers that may still be written, innermost last.
final class BinaryEncodingState {
    var bytes: [UInt8] = []
    var frames: [BinaryEncodingFrame] = []
    /// An error found where the `Encoder` API cannot throw; `encode` throws it at the end.
    var deferredError: CCLError?

    func fail(_ error: CCLError) {
        if deferredError == nil { deferredError = error }
    }

    func writeVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    func writeInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    func writeString(_ value: String) {
        writeVarint(UInt64(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    /// Writes any value: primitives, optionals, arrays and dictionaries directly, others via `encode(to:)`.
    func encodeValue<T: Encodable>(_ value: T) throws {
        if let direct = value as? any DirectBinaryEncodable {
            try direct.encodeDirectly(into: self)
            return
        }
        let height = frames.count
        let start = bytes.count
        try value.encode(to: BinaryValueEncoder(state: self))
        closeFrames(downTo: height)
        if bytes.count == start { bytes.append(0) }
    }

    /// Starts a keyed or unkeyed container here: a count varint, patched as entries arrive.
    func openFrame() -> BinaryEncodingFrame {
        let frame = BinaryEncodingFrame(offset: bytes.count)
        bytes.append(0)
        frames.append(frame)
        return frame
    }

    func closeFrames(downTo height: Int) {
        while frames.count > height, let last = frames.popLast() {
            last.isOpen = false
        }
    }

    /// Counts one more entry in `frame`, closing any containers nested in it that were opened before.
    func beginEntry(of frame: BinaryEncodingFrame) throws(CCLError) {
        guard frame.isOpen else {
            throw CCLError(
                .invalidArgument, operation: "encode",
                "a container was written after its parent moved on; the binary format needs values in order")
        }
        while let last = frames.last, last !== frame {
            last.isOpen = false
            frames.removeLast()
        }
        frame.count &+= 1
        var needed = 1
        var rest = frame.count >> 7
        while rest != 0 {
            needed += 1
            rest >>= 7
        }
        if needed > frame.width {
            bytes.insert(contentsOf: repeatElement(0, count: needed - frame.width), at: frame.offset + frame.width)
            frame.width = needed
        }
        var value = frame.count
        for index in frame.offset..<(frame.offset + frame.width) {
            let more: UInt8 = index < frame.offset + frame.width - 1 ? 0x80 : 0
            bytes[index] = UInt8(truncatingIfNeeded: value & 0x7F) | more
            value >>= 7
        }
    }
}

/// Types written without going through `encode(to:)`.
protocol DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) throws
}

extension Bool: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.bytes.append(self ? 1 : 0) }
}

extension String: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeString(self) }
}

extension Int: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(Int64(self)) }
}

extension UInt: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(UInt64(self)) }
}

extension Int8: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension Int16: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension Int32: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension Int64: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension Int128: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension UInt8: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.bytes.append(self) }
}

extension UInt16: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension UInt32: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension UInt64: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension UInt128: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(self) }
}

extension Float: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(bitPattern) }
}

extension Double: DirectBinaryEncodable {
    func encodeDirectly(into state: BinaryEncodingState) { state.writeInteger(bitPattern) }
}

extension Optional: DirectBinaryEncodable where Wrapped: Encodable {
    func encodeDirectly(into state: BinaryEncodingState) throws {
        guard let wrapped = self else {
            state.bytes.append(0)
            return
        }
        state.bytes.append(1)
        try state.encodeValue(wrapped)
    }
}

extension Array: DirectBinaryEncodable where Element: Encodable {
    func encodeDirectly(into state: BinaryEncodingState) throws {
        state.writeVarint(UInt64(count))
        if isBulkBinaryElement(Element.self) {
            withUnsafeBytes { state.bytes.append(contentsOf: $0) }
            return
        }
        for element in self {
            try state.encodeValue(element)
        }
    }
}

extension Dictionary: DirectBinaryEncodable where Key: Encodable, Value: Encodable {
    func encodeDirectly(into state: BinaryEncodingState) throws {
        state.writeVarint(UInt64(count))
        for (key, value) in self {
            try state.encodeValue(key)
            try state.encodeValue(value)
        }
    }
}

/// Whether an array of `Element` has the wire layout in memory already (fixed-width numbers on a
/// little-endian machine), so that it can be copied in bulk.
func isBulkBinaryElement<Element>(_ type: Element.Type) -> Bool {
    #if _endian(little)
        if type == Int.self || type == UInt.self { return MemoryLayout<Int>.size == 8 }
        return type == UInt8.self || type == Int8.self || type == UInt16.self || type == Int16.self
            || type == UInt32.self || type == Int32.self || type == UInt64.self || type == Int64.self
            || type == Float.self || type == Double.self
    #else
        return false
    #endif
}

/// The `Encoder` handed to one value's `encode(to:)`; it gives out one kind of container.
final class BinaryValueEncoder: Encoder {
    enum Kind {
        case none
        case keyed(BinaryEncodingFrame)
        case unkeyed(BinaryEncodingFrame)
        case single
    }

    let state: BinaryEncodingState
    var kind = Kind.none
    var holdsSingleValue = false

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(state: BinaryEncodingState) { self.state = state }

    private func mismatch(_ asked: String) {
        state.fail(
            CCLError(.invalidArgument, operation: "encode", "a value asked for a \(asked) container after another kind")
        )
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        switch kind {
        case .keyed(let frame):
            return KeyedEncodingContainer(BinaryKeyedEncoding<Key>(state: state, frame: frame))
        case .none:
            let frame = state.openFrame()
            kind = .keyed(frame)
            return KeyedEncodingContainer(BinaryKeyedEncoding<Key>(state: state, frame: frame))
        case .unkeyed, .single:
            mismatch("keyed")
            return KeyedEncodingContainer(BinaryKeyedEncoding<Key>(state: state, frame: state.openFrame()))
        }
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        switch kind {
        case .unkeyed(let frame):
            return BinaryUnkeyedEncoding(state: state, frame: frame)
        case .none:
            let frame = state.openFrame()
            kind = .unkeyed(frame)
            return BinaryUnkeyedEncoding(state: state, frame: frame)
        case .keyed, .single:
            mismatch("unkeyed")
            return BinaryUnkeyedEncoding(state: state, frame: state.openFrame())
        }
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        switch kind {
        case .none, .single:
            kind = .single
        case .keyed, .unkeyed:
            mismatch("single-value")
        }
        return BinarySingleValueEncoding(encoder: self)
    }
}

private func unsupportedSuperEncoder(_ state: BinaryEncodingState) -> any Encoder {
    state.fail(CCLError(.invalidArgument, operation: "encode", "superEncoder is not supported by the binary format"))
    return BinaryValueEncoder(state: state)
}

struct BinaryKeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: BinaryEncodingState
    let frame: BinaryEncodingFrame

    var codingPath: [any CodingKey] { [] }

    private func begin(_ key: Key) throws(CCLError) {
        try state.beginEntry(of: frame)
        state.writeString(key.stringValue)
    }

    private func put<T: DirectBinaryEncodable>(_ value: T, _ key: Key) throws {
        try begin(key)
        try value.encodeDirectly(into: state)
    }

    mutating func encodeNil(forKey key: Key) throws {
        try begin(key)
        state.bytes.append(0)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int128, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { try put(value, key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        try state.encodeValue(value)
    }

    // Absent optionals are written too (presence byte 0), unlike the skipping default.
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: Int128?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try put(value, key) }
    mutating func encodeIfPresent(_ value: UInt128?, forKey key: Key) throws { try put(value, key) }

    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try put(value, key) }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        do { try begin(key) } catch { state.fail(error) }
        return KeyedEncodingContainer(BinaryKeyedEncoding<NestedKey>(state: state, frame: state.openFrame()))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        do { try begin(key) } catch { state.fail(error) }
        return BinaryUnkeyedEncoding(state: state, frame: state.openFrame())
    }

    mutating func superEncoder() -> any Encoder { unsupportedSuperEncoder(state) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { unsupportedSuperEncoder(state) }
}

struct BinaryUnkeyedEncoding: UnkeyedEncodingContainer {
    let state: BinaryEncodingState
    let frame: BinaryEncodingFrame

    var codingPath: [any CodingKey] { [] }
    var count: Int { Int(truncatingIfNeeded: frame.count) }

    private func put<T: DirectBinaryEncodable>(_ value: T) throws {
        try state.beginEntry(of: frame)
        try value.encodeDirectly(into: state)
    }

    mutating func encodeNil() throws {
        try state.beginEntry(of: frame)
        state.bytes.append(0)
    }

    mutating func encode(_ value: Bool) throws { try put(value) }
    mutating func encode(_ value: String) throws { try put(value) }
    mutating func encode(_ value: Double) throws { try put(value) }
    mutating func encode(_ value: Float) throws { try put(value) }
    mutating func encode(_ value: Int) throws { try put(value) }
    mutating func encode(_ value: Int8) throws { try put(value) }
    mutating func encode(_ value: Int16) throws { try put(value) }
    mutating func encode(_ value: Int32) throws { try put(value) }
    mutating func encode(_ value: Int64) throws { try put(value) }
    mutating func encode(_ value: Int128) throws { try put(value) }
    mutating func encode(_ value: UInt) throws { try put(value) }
    mutating func encode(_ value: UInt8) throws { try put(value) }
    mutating func encode(_ value: UInt16) throws { try put(value) }
    mutating func encode(_ value: UInt32) throws { try put(value) }
    mutating func encode(_ value: UInt64) throws { try put(value) }
    mutating func encode(_ value: UInt128) throws { try put(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try state.beginEntry(of: frame)
        try state.encodeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        do { try state.beginEntry(of: frame) } catch { state.fail(error) }
        return KeyedEncodingContainer(BinaryKeyedEncoding<NestedKey>(state: state, frame: state.openFrame()))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        do { try state.beginEntry(of: frame) } catch { state.fail(error) }
        return BinaryUnkeyedEncoding(state: state, frame: state.openFrame())
    }

    mutating func superEncoder() -> any Encoder { unsupportedSuperEncoder(state) }
}

struct BinarySingleValueEncoding: SingleValueEncodingContainer {
    let encoder: BinaryValueEncoder

    var codingPath: [any CodingKey] { [] }

    private func claim() throws {
        guard !encoder.holdsSingleValue else {
            throw CCLError(.invalidArgument, operation: "encode", "a single-value container was written twice")
        }
        encoder.holdsSingleValue = true
    }

    private func put<T: DirectBinaryEncodable>(_ value: T) throws {
        try claim()
        try value.encodeDirectly(into: encoder.state)
    }

    mutating func encodeNil() throws {
        try claim()
        encoder.state.bytes.append(0)
    }

    mutating func encode(_ value: Bool) throws { try put(value) }
    mutating func encode(_ value: String) throws { try put(value) }
    mutating func encode(_ value: Double) throws { try put(value) }
    mutating func encode(_ value: Float) throws { try put(value) }
    mutating func encode(_ value: Int) throws { try put(value) }
    mutating func encode(_ value: Int8) throws { try put(value) }
    mutating func encode(_ value: Int16) throws { try put(value) }
    mutating func encode(_ value: Int32) throws { try put(value) }
    mutating func encode(_ value: Int64) throws { try put(value) }
    mutating func encode(_ value: Int128) throws { try put(value) }
    mutating func encode(_ value: UInt) throws { try put(value) }
    mutating func encode(_ value: UInt8) throws { try put(value) }
    mutating func encode(_ value: UInt16) throws { try put(value) }
    mutating func encode(_ value: UInt32) throws { try put(value) }
    mutating func encode(_ value: UInt64) throws { try put(value) }
    mutating func encode(_ value: UInt128) throws { try put(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try claim()
        try encoder.state.encodeValue(value)
    }
}
