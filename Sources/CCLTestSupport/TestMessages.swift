import CCL

/// Deterministic messages for multi-process tests: message `i` of a stream with seed `s` has a
/// length and bytes any process can regenerate, so a reader checks every byte it received.
public struct TestMessages: Sendable {
    public let seed: UInt64
    /// Lengths cycled through; when empty, lengths are pseudo-random in 0...maxRandomLength.
    public let lengths: [Int]
    public let maxRandomLength: Int

    public init(seed: UInt64, lengths: [Int] = [], maxRandomLength: Int = 0) {
        self.seed = seed
        self.lengths = lengths
        self.maxRandomLength = maxRandomLength
    }

    public func length(of index: Int) -> Int {
        if !lengths.isEmpty { return lengths[index % lengths.count] }
        var state = seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        return Int(Self.next(&state) % UInt64(maxRandomLength + 1))
    }

    public func message(_ index: Int) -> [UInt8] {
        let count = length(of: index)
        var state = seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03)
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset + 8 <= count {
                raw.storeBytes(of: Self.next(&state), toByteOffset: offset, as: UInt64.self)
                offset += 8
            }
            while offset < count {
                raw[offset] = UInt8(truncatingIfNeeded: Self.next(&state))
                offset += 1
            }
        }
        return bytes
    }

    /// True when `received` is exactly message `index`.
    public func matches(_ received: UnsafeRawBufferPointer, index: Int) -> Bool {
        let expected = message(index)
        return expected.count == received.count && expected.elementsEqual(received)
    }

    static func next(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A typed message for the Codable path.
public struct TestRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var name: String
    public var tokens: [Int32]
    public var scores: [Double]
    public var blockTable: [[Int]]
    public var note: String?

    public static func make(_ i: Int) -> TestRecord {
        TestRecord(
            step: i, name: "request-\(i)-é", tokens: (0..<(i % 50)).map { Int32($0 * i) },
            scores: [Double(i) / 3, -0.0, .infinity], blockTable: [[i, i + 1], [], [7]],
            note: i % 3 == 0 ? nil : "n\(i)")
    }
}
