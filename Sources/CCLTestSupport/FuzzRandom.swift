import Foundation

/// SplitMix64 with its seed kept for the failure message; the seed comes from `CCL_FUZZ_SEED`
/// or the suite's name, so runs repeat unless asked otherwise.
public struct FuzzRandom {
    public let seed: UInt64
    private var state: UInt64

    public static func seeded(_ name: String) -> FuzzRandom {
        let seed =
            UInt64(ProcessInfo.processInfo.environment["CCL_FUZZ_SEED"] ?? "")
            ?? name.utf8.reduce(1469598103934665603) { ($0 ^ UInt64($1)) &* 1099511628211 }
        return FuzzRandom(seed: seed, state: seed)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension FuzzRandom {
    /// How many cases a fuzz test runs: `CCL_FUZZ_CASES`, else `fallback`.
    public static func cases(_ fallback: Int = 3000) -> Int { Int(ProcessInfo.processInfo.environment["CCL_FUZZ_CASES"] ?? "") ?? fallback }

    /// A value at an edge of an integer or parser rule, a random integer, or random short text.
    public mutating func value() -> String {
        switch next() % 4 {
        case 0: return Self.boundaries[Int(next() % UInt64(Self.boundaries.count))]
        case 1: return String(Int64(bitPattern: next()) >> Int64(next() % 64))
        case 2: return String(next() % 70_000)
        default:
            let length = Int(next() % 12)
            var bytes: [UInt8] = []
            for _ in 0..<length { bytes.append(UInt8(truncatingIfNeeded: next() % 128)) }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// A third of the time random bytes (up to `randomLength`), else `valid`; then up to
    /// `flips` bytes overwritten at random places.
    public mutating func mutated(_ valid: [UInt8], randomLength: Int, flips: Int) -> [UInt8] {
        var bytes = valid
        if next() % 3 == 0 {
            bytes = []
            for _ in 0..<Int(next() % UInt64(randomLength)) { bytes.append(UInt8(truncatingIfNeeded: next())) }
        }
        for _ in 0..<Int(next() % UInt64(flips + 1)) where !bytes.isEmpty {
            bytes[Int(next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: next())
        }
        return bytes
    }

    /// Values at and around the edges of every integer and parser rule.
    public static let boundaries = [
        "0", "1", "-1", "2147483647", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "99999999999999999999", "nan", "NaN", "inf", "-inf", "1e308", "", " ", "  3 ", "+3", "0x10", "3.5", "\u{661}", "[::1]", "[::1",
        "::1", "a:b", "host:99999", "a b", String(repeating: "9", count: 10_000), String(repeating: "x", count: 100_000), "\u{0}",
        "65535", "65536", "65537", "1024", "-0",
    ]
}
