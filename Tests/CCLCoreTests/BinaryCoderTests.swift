import CCLCore
import Testing

// MARK: - Sample types

private struct Address: Codable, Equatable {
    var street: String
    var zip: Int32
    var tags: [String]
}

private indirect enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(Double, Double)
    case empty
    case labeled(name: String, Shape?)
}

private enum Color: String, Codable, Equatable {
    case red, green
}

private struct Person: Codable, Equatable {
    var name: String
    var age: Int
    var nickname: String?
    var spouse: String?
    var address: Address
    var previous: [Address]
    var scores: [String: Int]
    var flags: [Bool]
    var data: [UInt8]
    var ratio: Double
    var shape: Shape
    var shapes: [Shape?]
    var color: Color
    var nested: Int??
}

private struct Empty: Codable, Equatable {}

/// A type whose coding writes and reads nothing: it still takes one 0 byte.
private struct NoOp: Codable, Equatable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
}

private struct Point: Codable, Equatable {
    var x: Int8
    var y: Bool
}

private struct OnlyX: Codable, Equatable { var x: Int }
private struct OnlyY: Codable, Equatable { var y: Int }

private indirect enum List: Codable, Equatable {
    case end
    case node(Int, List)

    init(depth: Int) {
        var list = List.end
        for index in 0..<depth { list = .node(index, list) }
        self = list
    }
}

private struct Tree: Codable, Equatable {
    var value: Int
    var children: [Tree]
}

/// Writes `count` entries into one keyed container, to exercise multi-byte entry counts.
private struct ManyKeys: Codable, Equatable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    var values: [Int]

    init(values: [Int]) { self.values = values }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (index, value) in values.enumerated() {
            try container.encode(value, forKey: Key(stringValue: "k\(index)"))
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        values = []
        var index = 0
        while container.contains(Key(stringValue: "k\(index)")) {
            values.append(try container.decode(Int.self, forKey: Key(stringValue: "k\(index)")))
            index += 1
        }
    }
}

/// Writes its elements one by one into an unkeyed container, bypassing the bulk array path.
private struct Elementwise<Element: Encodable>: Encodable {
    var values: [Element]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for value in values { try container.encode(value) }
    }
}

/// Writes a nested container after its parent moved on, which the format cannot represent.
private struct OutOfOrder: Encodable {
    enum Key: String, CodingKey { case a, b }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        var nested = container.nestedUnkeyedContainer(forKey: .a)
        try nested.encode(1)
        try container.encode(2, forKey: .b)
        try nested.encode(3)
    }
}

private struct UsesSuper: Codable {
    enum Key: String, CodingKey { case a }

    init() {}
    init(from decoder: any Decoder) throws {
        _ = try decoder.container(keyedBy: Key.self).superDecoder()
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        _ = container.superEncoder()
    }
}

/// Encodes optionals by hand with `encodeNil` / `decodeNil`.
private struct ManualOptionals: Codable, Equatable {
    enum Key: String, CodingKey { case a, b }

    var a: Int?
    var b: [String?]

    init(a: Int?, b: [String?]) {
        self.a = a
        self.b = b
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        if let a { try container.encode(Optional(a), forKey: .a) } else { try container.encodeNil(forKey: .a) }
        var list = container.nestedUnkeyedContainer(forKey: .b)
        for item in b {
            if let item { try list.encode(Optional(item)) } else { try list.encodeNil() }
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        a = try container.decodeNil(forKey: .a) ? nil : container.decode(Int.self, forKey: .a)
        var list = try container.nestedUnkeyedContainer(forKey: .b)
        b = []
        while !list.isAtEnd {
            b.append(try list.decodeNil() ? nil : list.decode(String.self))
        }
    }
}

private let samplePerson = Person(
    name: "Ada Lovelace",
    age: 36,
    nickname: "Enchantress of Numbers",
    spouse: nil,
    address: Address(street: "St James's Square", zip: 12345, tags: ["home", "London"]),
    previous: [Address(street: "", zip: -1, tags: []), Address(street: "Ockham", zip: 0, tags: ["ü"])],
    scores: ["math": 100, "poetry": -3],
    flags: [true, false, true],
    data: [0, 1, 2, 255],
    ratio: 0.5,
    shape: .labeled(name: "outer", .labeled(name: "inner", .rect(2, 3))),
    shapes: [.circle(radius: 1), nil, .empty, .labeled(name: "x", nil)],
    color: .green,
    nested: .some(nil)
)

// MARK: - Helpers

private func roundTrip<T: Codable>(_ value: T, decoder: CCLBinaryDecoder = CCLBinaryDecoder()) throws -> T {
    let bytes = try CCLBinaryEncoder().encode(value)
    return try decoder.decode(T.self, from: bytes)
}

private func varint(_ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    var rest = value
    while rest >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    bytes.append(UInt8(truncatingIfNeeded: rest))
    return bytes
}

/// Expects decoding `bytes` as `T` to fail with a `CCLError` of `code`.
private func expectRejected<T: Decodable>(
    _ type: T.Type, _ bytes: [UInt8], _ code: CCLError.Code = .malformed,
    decoder: CCLBinaryDecoder = CCLBinaryDecoder(), sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = #expect(throws: CCLError.self, sourceLocation: sourceLocation) {
        _ = try decoder.decode(T.self, from: bytes)
    }
    #expect(error?.code == code, "\(String(describing: error))", sourceLocation: sourceLocation)
}

/// SplitMix64: a small seeded generator, so fuzz failures reproduce.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Round trips

@Suite struct BinaryCoderRoundTripTests {
    @Test func nestedStruct() throws {
        #expect(try roundTrip(samplePerson) == samplePerson)
    }

    @Test func enumsWithAssociatedValues() throws {
        let shapes: [Shape] = [
            .circle(radius: 2.5), .rect(1, -1), .empty, .labeled(name: "a", .labeled(name: "b", nil)),
        ]
        #expect(try roundTrip(shapes) == shapes)
        #expect(try roundTrip(Color.red) == .red)
    }

    @Test func optionals() throws {
        #expect(try roundTrip(Int?.none) == nil)
        #expect(try roundTrip(Int?.some(7)) == 7)
        #expect(try roundTrip(Int??.some(nil)) == .some(nil))
        #expect(try roundTrip(Int??.none) == .none)
        #expect(try roundTrip([1, nil, 3] as [Int?]) == [1, nil, 3])
        #expect(try CCLBinaryEncoder().encode(Int?.none) == [0])
        #expect(try CCLBinaryEncoder().encode(Int8?.some(5)) == [1, 5])
        let manual = ManualOptionals(a: nil, b: ["x", nil, ""])
        #expect(try roundTrip(manual) == manual)
        let manual2 = ManualOptionals(a: 4, b: [])
        #expect(try roundTrip(manual2) == manual2)
    }

    @Test func arraysAndDictionaries() throws {
        let scores: [String: Int] = Dictionary(uniqueKeysWithValues: (0..<300).map { ("key\($0)", $0 * 7) })
        #expect(try roundTrip(scores) == scores)
        let byNumber: [Int: String] = [1: "one", -2: "minus two"]
        #expect(try roundTrip(byNumber) == byNumber)
        #expect(try roundTrip([[1, 2], [], [3]]) == [[1, 2], [], [3]])
        #expect(try roundTrip(["a", "b"]) == ["a", "b"])
        // Sets go through an unkeyed container whose count grows past one and two varint bytes.
        let set = Set(0..<20_000)
        #expect(try roundTrip(set) == set)
        let many = ManyKeys(values: Array(0..<300))
        #expect(try roundTrip(many) == many)
    }

    @Test func emptyValues() throws {
        #expect(try roundTrip("") == "")
        #expect(try roundTrip([Int]()) == [])
        #expect(try roundTrip([String: Int]()) == [:])
        #expect(try roundTrip(Empty()) == Empty())
        #expect(try roundTrip([Empty(), Empty()]) == [Empty(), Empty()])
        #expect(try CCLBinaryEncoder().encode("") == [0])
        #expect(try CCLBinaryEncoder().encode([NoOp(), NoOp()]) == [2, 0, 0])
        #expect(try roundTrip([NoOp(), NoOp()]) == [NoOp(), NoOp()])
    }

    @Test func unicode() throws {
        let text = "héllo wörld 🌍 日本語 e\u{301} \u{0} \u{10FFFF}"
        #expect(try roundTrip(text) == text)
        #expect(try CCLBinaryEncoder().encode("é") == [2, 0xC3, 0xA9])
    }

    @Test func extremeIntegers() throws {
        #expect(try roundTrip([Int.min, Int.max, 0, -1]) == [Int.min, Int.max, 0, -1])
        #expect(try roundTrip([UInt.max, 0]) == [UInt.max, 0])
        #expect(try roundTrip([Int8.min, Int8.max]) == [Int8.min, Int8.max])
        #expect(try roundTrip([Int16.min, Int16.max]) == [Int16.min, Int16.max])
        #expect(try roundTrip([Int32.min, Int32.max]) == [Int32.min, Int32.max])
        #expect(try roundTrip([Int64.min, Int64.max]) == [Int64.min, Int64.max])
        #expect(try roundTrip([UInt16.max, 1]) == [UInt16.max, 1])
        #expect(try roundTrip([UInt32.max, 1]) == [UInt32.max, 1])
        #expect(try roundTrip([UInt64.max]) == [UInt64.max])
        #expect(try roundTrip([Int128.min, Int128.max]) == [Int128.min, Int128.max])
        #expect(try roundTrip([UInt128.max]) == [UInt128.max])
        #expect(try CCLBinaryEncoder().encode(1) == [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(try CCLBinaryEncoder().encode(Int16(-2)) == [0xFE, 0xFF])
        #expect(try CCLBinaryEncoder().encode(UInt32(0x0102_0304)) == [4, 3, 2, 1])
    }

    @Test func floatBitPatterns() throws {
        let doubles: [Double] = [
            .nan, -.nan, .signalingNaN, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, 1e308,
        ]
        let payload = Double(bitPattern: 0x7FF8_0000_0000_0123)
        for value in doubles + [payload] {
            #expect(try roundTrip(value).bitPattern == value.bitPattern)
        }
        #expect(try roundTrip(doubles + [payload]).map(\.bitPattern) == (doubles + [payload]).map(\.bitPattern))
        let floats: [Float] = [.nan, Float(bitPattern: 0x7FC0_0001), .infinity, -.infinity, -0.0]
        #expect(try roundTrip(floats).map(\.bitPattern) == floats.map(\.bitPattern))
        #expect(try CCLBinaryEncoder().encode(Double(1)) == [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
    }

    @Test func oneMebibyteOfBytes() throws {
        var generator = SeededGenerator(state: 1)
        let data = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let bytes = try CCLBinaryEncoder().encode(data)
        #expect(bytes.count == (1 << 20) + 3)
        #expect(bytes.prefix(3) == [0x80, 0x80, 0x40])
        #expect(try CCLBinaryDecoder().decode([UInt8].self, from: bytes) == data)
    }

    @Test func bulkArraysMatchElementwiseLayout() throws {
        let encoder = CCLBinaryEncoder()
        #expect(try encoder.encode([Int32(1), -1]) == [2, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try encoder.encode([Int8(-1), 2]) == [2, 0xFF, 2])
        // The bulk array bytes equal those of an unkeyed container filled element by element.
        let values = Array(0..<1000)
        #expect(try encoder.encode(values) == encoder.encode(Elementwise(values: values)))
        #expect(
            try encoder.encode(values.map(Float.init)) == encoder.encode(Elementwise(values: values.map(Float.init))))
        #expect(try roundTrip(values.map(Double.init)) == values.map(Double.init))
        #expect(try roundTrip(values.map(Int64.init)) == values.map(Int64.init))
        #expect(try roundTrip(values.map(UInt16.init)) == values.map(UInt16.init))
    }

    @Test func keyedLayout() throws {
        // entry count 2, key "x" = -1, key "y" = true
        #expect(try CCLBinaryEncoder().encode(Point(x: -1, y: true)) == [2, 1, 0x78, 0xFF, 1, 0x79, 1])
        #expect(try CCLBinaryEncoder().encode(Empty()) == [0])
    }

    @Test func decodesFromUnalignedBuffer() throws {
        let doubles: [Double] = [1.5, -2, .pi]
        let padded: [UInt8] = try [0xAA] + CCLBinaryEncoder().encode(doubles) + CCLBinaryEncoder().encode(Int64(-9))
        let doublesEnd = 1 + 1 + 3 * 8
        let decoded = try padded.withUnsafeBytes { raw in
            let decoder = CCLBinaryDecoder()
            return try (
                decoder.decode([Double].self, from: UnsafeRawBufferPointer(rebasing: raw[1..<doublesEnd])),
                decoder.decode(Int64.self, from: UnsafeRawBufferPointer(rebasing: raw[doublesEnd...]))
            )
        }
        #expect(decoded.0 == doubles)
        #expect(decoded.1 == -9)
        #expect(throws: CCLError.self) {
            try CCLBinaryDecoder().decode(String.self, from: UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    @Test func encodeIntoAppends() throws {
        var bytes: [UInt8] = [9, 9]
        try CCLBinaryEncoder().encode(UInt8(7), into: &bytes)
        #expect(bytes == [9, 9, 7])
        #expect(throws: CCLError.self) { try CCLBinaryEncoder().encode(OutOfOrder(), into: &bytes) }
        #expect(bytes == [9, 9, 7])
    }

    @Test func deepValuesWithinLimit() throws {
        let list = List(depth: 100)
        #expect(try roundTrip(list, decoder: CCLBinaryDecoder(maxDepth: 1000)) == list)
        let tree = Tree(value: 1, children: [Tree(value: 2, children: []), Tree(value: 3, children: [])])
        #expect(try roundTrip(tree) == tree)
    }
}

// MARK: - Rejections

@Suite struct BinaryCoderRejectionTests {
    @Test func everyTruncationThrows() throws {
        let bytes = try CCLBinaryEncoder().encode(samplePerson)
        for length in 0..<bytes.count {
            #expect(throws: CCLError.self, "prefix of \(length) bytes") {
                _ = try CCLBinaryDecoder().decode(Person.self, from: Array(bytes.prefix(length)))
            }
        }
    }

    @Test func trailingBytes() throws {
        expectRejected(Person.self, try CCLBinaryEncoder().encode(samplePerson) + [0])
        expectRejected(UInt8.self, [1, 2])
        expectRejected(Int.self, [])
    }

    @Test func boolAndPresenceBytes() throws {
        expectRejected(Bool.self, [2])
        expectRejected([Bool].self, [2, 1, 0xFF])
        expectRejected(Int8?.self, [2, 5])
        #expect(try CCLBinaryDecoder().decode(Bool.self, from: [1]) == true)
    }

    @Test func invalidUTF8() {
        expectRejected(String.self, [2, 0xC3, 0x28])
        expectRejected(String.self, [2, 0xC0, 0x80])
        expectRejected(String.self, [3, 0xED, 0xA0, 0x80])
        expectRejected(String.self, [1, 0xFF])
        expectRejected([String: Int].self, [1, 1, 0x80] + [UInt8](repeating: 0, count: 8))
    }

    @Test func hugeLengthClaims() {
        // Four bytes claiming 2^27 elements, and six claiming 2^40: rejected before any allocation.
        expectRejected([UInt8].self, [0x80, 0x80, 0x80, 0x40])
        expectRejected([Person].self, [0x80, 0x80, 0x80, 0x40])
        let claim = varint(1 << 40)
        expectRejected([UInt8].self, claim + [1, 2, 3, 4])
        expectRejected([Int64].self, claim)
        expectRejected([String].self, claim + [0, 0])
        expectRejected([Person].self, claim + [0, 0])
        expectRejected([String: Int].self, claim + [0])
        expectRejected(String.self, claim + [0x61])
        expectRejected(Person.self, claim)
        expectRejected([UInt8].self, varint(UInt64.max))
        // Fits the bytes but not the limit.
        expectRejected([UInt8].self, [3, 1, 2, 3], .tooLarge, decoder: CCLBinaryDecoder(maxCollectionCount: 2))
        expectRejected(String.self, [3, 0x61, 0x62, 0x63], .tooLarge, decoder: CCLBinaryDecoder(maxCollectionCount: 2))
    }

    @Test func malformedVarints() {
        expectRejected(String.self, [0x80, 0x00])
        expectRejected([UInt8].self, [UInt8](repeating: 0xFF, count: 9) + [0x02])
        expectRejected([UInt8].self, [UInt8](repeating: 0xFF, count: 11))
    }

    @Test func excessiveDepth() throws {
        let bytes = try CCLBinaryEncoder().encode(List(depth: 100))
        expectRejected(List.self, bytes, .tooLarge)
        expectRejected(List.self, bytes, .tooLarge, decoder: CCLBinaryDecoder(maxDepth: 150))
        expectRejected([[[Int]]].self, try CCLBinaryEncoder().encode([[[1]]]), .tooLarge, decoder: .init(maxDepth: 2))
        #expect(
            try CCLBinaryDecoder(maxDepth: 3).decode([[[Int]]].self, from: CCLBinaryEncoder().encode([[[1]]])) == [
                [[1]]
            ])
    }

    @Test func wrongKeys() throws {
        expectRejected(OnlyY.self, try CCLBinaryEncoder().encode(OnlyX(x: 1)))
        let error = #expect(throws: CCLError.self) {
            try CCLBinaryDecoder().decode(OnlyY.self, from: CCLBinaryEncoder().encode(OnlyX(x: 1)))
        }
        #expect(error?.message.contains("expected key 'y', found 'x'") == true)
        // A struct read as an enum, and an unknown enum case.
        expectRejected(Shape.self, try CCLBinaryEncoder().encode(OnlyX(x: 1)))
        expectRejected(Color.self, try CCLBinaryEncoder().encode("blue"))
    }

    @Test func duplicateDictionaryKey() {
        let entry: [UInt8] = [1, 0x61, 5, 0, 0, 0, 0, 0, 0, 0]
        expectRejected([String: Int].self, [2] + entry + entry)
    }

    @Test func unsupportedEncodings() {
        #expect(throws: CCLError.self) { try CCLBinaryEncoder().encode(OutOfOrder()) }
        #expect(throws: CCLError.self) { try CCLBinaryEncoder().encode(UsesSuper()) }
        expectRejected(UsesSuper.self, [1, 1, 0x61, 0], .invalidArgument)
    }

    @Test func randomBytesNeverCrash() {
        var generator = SeededGenerator(state: 0xCC1)
        var decoded = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...96, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            do {
                _ = try CCLBinaryDecoder().decode(Person.self, from: bytes)
                decoded += 1
            } catch {
                #expect(error is CCLError)
            }
            do {
                _ = try CCLBinaryDecoder().decode([Shape?].self, from: bytes)
            } catch {
                #expect(error is CCLError)
            }
        }
        #expect(decoded == 0)
    }

    @Test func mutatedEncodingsNeverCrash() throws {
        let valid = try CCLBinaryEncoder().encode(samplePerson)
        var generator = SeededGenerator(state: 0x5EED)
        var survived = 0
        for _ in 0..<20_000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: index)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
                }
            }
            do {
                _ = try CCLBinaryDecoder().decode(Person.self, from: bytes)
                survived += 1
            } catch {
                #expect(error is CCLError)
            }
        }
        #expect(survived < 20_000)
    }
}
