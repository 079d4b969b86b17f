import Testing

@testable import CCLCollectives

@Suite("16-bit float conversions")
struct HalfPrecisionTests {
    @Test("float16 widening matches Swift's Float16 conversion for all 65536 bit patterns")
    func float16WidenExhaustive() {
        for bits in UInt16.min...UInt16.max {
            let ours = IEEEHalfFormat.widen(bits)
            let swift = Float(Float16(bitPattern: bits))
            if swift.isNaN {
                // Sign and payload are kept (no quieting: widening is exact).
                #expect(ours.isNaN && ours.bitPattern == UInt32(bits & 0x8000) << 16 | 0x7F80_0000 | UInt32(bits & 0x3FF) << 13)
            } else {
                #expect(ours.bitPattern == swift.bitPattern, "bits \(bits)")
            }
        }
    }

    @Test("float16 round trip is the identity for all non-NaN bit patterns; NaN stays NaN, quieted")
    func float16RoundTripExhaustive() {
        for bits in UInt16.min...UInt16.max {
            let back = IEEEHalfFormat.narrow(IEEEHalfFormat.widen(bits))
            if Float16(bitPattern: bits).isNaN {
                #expect(back == bits | 0x0200, "bits \(bits)")
            } else {
                #expect(back == bits, "bits \(bits)")
            }
        }
    }

    @Test("float16 narrowing matches Swift's Float16(Float) on random and edge values")
    func float16Narrowing() {
        var rng = SplitMix64(seed: 16)
        var inputs: [Float] = [
            0, -0, 1, -1, 65504, 65519.996, 65520, 65536, -65520, .infinity, -.infinity, .nan, -.nan,
            .greatestFiniteMagnitude, .leastNonzeroMagnitude, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 0x1.fffffep-15,
            0x1p-14, 0x1.ff8p-15, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC0_1234),
        ]
        // Every exponent from far below to far above float16's range, random significands (ties included).
        for _ in 0..<(1 << 20) {
            let exponent = UInt32.random(in: 90...160, using: &rng)
            var significand = UInt32.random(in: 0..<(1 << 23), using: &rng)
            if Bool.random(using: &rng) { significand = significand & ~0x1FFF | 0x1000 }  // an exact tie for normals
            inputs.append(Float(bitPattern: UInt32.random(in: 0...1, using: &rng) << 31 | exponent << 23 | significand))
        }
        for _ in 0..<(1 << 18) { inputs.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        for x in inputs {
            let ours = IEEEHalfFormat.narrow(x)
            let swift = Float16(x).bitPattern
            if x.isNaN {
                #expect(Float16(bitPattern: ours).isNaN && ours & 0x8000 == swift & 0x8000 && ours & 0x0200 != 0)
            } else {
                #expect(ours == swift, "\(x) (bits \(x.bitPattern))")
            }
        }
    }

    /// (input, expected bfloat16 bits)
    static let bfloat16Cases: [(Float, UInt16)] = [
        (1, 0x3F80),
        (-0.0, 0x8000),
        (0, 0x0000),
        (Float.infinity, 0x7F80),
        (-Float.infinity, 0xFF80),
        (Float(bitPattern: 0x3F80_8000), 0x3F80),  // halfway, even below: down
        (Float(bitPattern: 0x3F81_8000), 0x3F82),  // halfway, odd below: up
        (Float(bitPattern: 0x3F80_8001), 0x3F81),  // above halfway: up
        (Float(bitPattern: 0x3F80_7FFF), 0x3F80),  // below halfway: down
        (Float(bitPattern: 0xBF81_8000), 0xBF82),  // negative tie to even
        (Float.greatestFiniteMagnitude, 0x7F80),  // rounds up to infinity
        (Float(bitPattern: 0x7F7F_7FFF), 0x7F7F),  // largest that stays finite
        (Float(bitPattern: 0x0000_8000), 0x0000),  // subnormal tie to even (zero)
        (Float(bitPattern: 0x0001_8000), 0x0002),
        (Float.leastNonzeroMagnitude, 0x0000),
    ]

    @Test("bfloat16 rounds to nearest, ties to even", arguments: bfloat16Cases)
    func bfloat16Vectors(value: Float, bits: UInt16) {
        #expect(BFloat16(value).bitPattern == bits)
        #expect(BFloat16(value).bitPattern == referenceBFloat16Bits(value))
    }

    @Test("bfloat16 NaN stays NaN, quieted, sign and top payload kept")
    func bfloat16NaN() {
        #expect(BFloat16(Float.nan).bitPattern == 0x7FC0)
        #expect(BFloat16(-Float.nan).bitPattern == 0xFFC0)
        // A signaling NaN whose payload is only in the low bits would truncate to infinity; it must not.
        #expect(BFloat16(Float(bitPattern: 0x7F80_0001)).bitPattern == 0x7FC0)
        #expect(BFloat16(Float(bitPattern: 0x7FA0_0000)).bitPattern == 0x7FE0)
        #expect(BFloat16(Float(bitPattern: 0xFFFF_FFFF)).bitPattern == 0xFFFF)
    }

    @Test("bfloat16 matches the reference rounding on random floats; widening is exact")
    func bfloat16Random() {
        var rng = SplitMix64(seed: 0xBF16)
        for _ in 0..<(1 << 20) {
            let x = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            if x.isNaN {
                #expect(BFloat16(x).floatValue.isNaN)
            } else {
                #expect(BFloat16(x).bitPattern == referenceBFloat16Bits(x), "bits \(x.bitPattern)")
            }
        }
        for bits in UInt16.min...UInt16.max {
            #expect(BFloat16(bitPattern: bits).floatValue.bitPattern == UInt32(bits) << 16)
        }
    }
}
