import Testing

@testable import CCLCollectives

/// The float8 conversions against a reference worked out from the formats' definitions
/// (`ReferenceFloat8`): every bit pattern, and narrowing of random and edge values.
@Suite("float8 conversions")
struct Float8Tests {
    static let dtypes: [DType] = [.float8e4m3, .float8e5m2]

    static func widen(_ dtype: DType, _ bits: UInt8) -> Float {
        dtype == .float8e4m3 ? E4M3Format.widen(bits) : E5M2Format.widen(bits)
    }
    static func narrow(_ dtype: DType, _ value: Float) -> UInt8 {
        dtype == .float8e4m3 ? E4M3Format.narrow(value) : E5M2Format.narrow(value)
    }

    @Test("widening gives every pattern's value; narrowing it back gives the pattern (NaN stays NaN)", arguments: dtypes)
    func everyPattern(dtype: DType) {
        let reference = ReferenceFloat8(dtype)
        for bits in UInt8.min...UInt8.max {
            let ours = Self.widen(dtype, bits), expected = reference.value(bits)
            if expected.isNaN {
                #expect(ours.isNaN && ours.sign == expected.sign, "bits \(bits)")
                let back = Self.narrow(dtype, ours)
                #expect(reference.value(back).isNaN, "bits \(bits) back \(back)")
            } else {
                #expect(ours.bitPattern == expected.bitPattern, "bits \(bits): \(ours) against \(expected)")
                #expect(Self.narrow(dtype, ours) == bits, "bits \(bits)")
            }
        }
    }

    @Test("narrowing rounds to nearest, ties to even, as torch: random values over every exponent, and the edges", arguments: dtypes)
    func narrowing(dtype: DType) {
        let reference = ReferenceFloat8(dtype)
        var rng = SplitMix64(seed: dtype == .float8e4m3 ? 43 : 52)
        var inputs: [Float] = [
            0, -0, 1, -1, 448, 449, 463.99, 464, 464.01, 479.99, 480, 1000, 57344, 61439, 61440, 65535, 65536, 1e9, .infinity,
            -.infinity, .nan, -.nan, 0x1p-9, 0x1p-10, 0x1.8p-10, 0x1p-16, 0x1p-17, 0x1.8p-17, 0x1p-6, 0x1p-14, .leastNonzeroMagnitude,
            .greatestFiniteMagnitude,
        ]
        for _ in 0..<(1 << 18) {
            let exponent = UInt32.random(in: 100...150, using: &rng)
            var significand = UInt32.random(in: 0..<(1 << 23), using: &rng)
            // Exact ties for both formats' normals now and then.
            if Bool.random(using: &rng) {
                significand = dtype == .float8e4m3 ? significand & 0x70_0000 | 0x08_0000 : significand & 0x60_0000 | 0x10_0000
            }
            inputs.append(Float(bitPattern: UInt32.random(in: 0...1, using: &rng) << 31 | exponent << 23 | significand))
        }
        for x in inputs {
            let ours = Self.narrow(dtype, x), expected = reference.nearest(x)
            #expect(ours == expected, "\(dtype) \(x) (bits \(x.bitPattern)): \(ours) against \(expected)")
        }
    }

    @Test("torch's overflow: e4m3fn has no infinity (what rounds past 448 is NaN), e5m2 overflows to infinity")
    func overflow() {
        #expect(Float8E4M3(448).bitPattern == 0x7E && Float8E4M3(464).bitPattern == 0x7E)
        #expect(Float8E4M3(470).floatValue.isNaN && Float8E4M3(.infinity).floatValue.isNaN && Float8E4M3(-1e6).bitPattern == 0xFF)
        #expect(Float8E5M2(57344).bitPattern == 0x7B && Float8E5M2(61440).floatValue == .infinity)
        #expect(Float8E5M2(-.infinity).floatValue == -.infinity && Float8E5M2(.nan).floatValue.isNaN)
        #expect(Float8E4M3(-0.0).bitPattern == 0x80 && Float8E5M2(-0.0).bitPattern == 0x80)
    }
}
