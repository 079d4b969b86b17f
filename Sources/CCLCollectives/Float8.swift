/// Conversions between Float32 and the two 8-bit float formats inference engines use, on bit
/// patterns, with torch's rounding (`c10::Float8_e4m3fn`, `c10::Float8_e5m2`): to nearest, ties
/// to even, subnormals included.
package protocol Float8Format {
    /// The Float32 equal to the 8-bit value; NaN keeps its sign.
    static func widen(_ bits: UInt8) -> Float
    /// The 8-bit value nearest to `value` (overflow as the format says).
    static func narrow(_ value: Float) -> UInt8
}

/// float8 e4m3fn (OCP FP8 E4M3, torch.float8_e4m3fn): 1 sign, 4 exponent (bias 7), 3
/// significand bits; no infinities; NaN is S.1111.111; the largest finite value is 448. A value
/// that rounds above 448 (above 464; 464 itself rounds to even, 448), an infinity or NaN becomes
/// NaN, as in torch.
package enum E4M3Format: Float8Format {
    // Branch-free (every candidate computed, one selected) so that loops over them vectorize.
    @inline(__always)
    package static func widen(_ bits: UInt8) -> Float {
        let sign = UInt32(bits & 0x80) << 24
        let magnitude = UInt32(bits & 0x7F)
        // Normal: rebias 7 → 127 and place the 3 significand bits at the top of Float32's 23.
        let normal = (magnitude << 20) &+ 0x3C00_0000
        // Subnormal: m · 2^-9, exact in Float32.
        let subnormal = (Float(magnitude) * 0x1p-9).bitPattern
        let result = magnitude == 0x7F ? 0x7FC0_0000 : (magnitude < 8 ? subnormal : normal)
        return Float(bitPattern: result | sign)
    }

    @inline(__always)
    package static func narrow(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = bits & 0x8000_0000
        // Below 2^31, so signed comparisons are exact.
        let magnitude = Int32(bitPattern: bits ^ sign)
        // Normal: rebias 127 → 7 and round to nearest even at bit 20.
        let odd = (magnitude >> 20) & 1
        let normal = (magnitude &- 0x3C00_0000 &+ 0x7FFFF &+ odd) >> 20
        // Below 2^-6 the result is subnormal: adding 2^14 leaves the units of 2^-9 in the low
        // bits, rounded by the FPU.
        let subnormal = Int32(bitPattern: (Float(bitPattern: UInt32(bitPattern: magnitude)) + 0x1p14).bitPattern) &- 0x4680_0000
        // 480 and above (with infinity and NaN): NaN.
        let result: Int32 = magnitude >= 0x43F0_0000 ? 0x7F : (magnitude < 0x3C80_0000 ? subnormal : normal)
        return UInt8(truncatingIfNeeded: result) | UInt8(truncatingIfNeeded: sign >> 24)
    }
}

/// float8 e5m2 (OCP FP8 E5M2, torch.float8_e5m2): 1 sign, 5 exponent (bias 15), 2 significand
/// bits; the top byte of an IEEE binary16, with infinities and NaN; the largest finite value is
/// 57344, and values that round above it become infinity.
package enum E5M2Format: Float8Format {
    @inline(__always)
    package static func widen(_ bits: UInt8) -> Float {
        IEEEHalfFormat.widen(UInt16(bits) << 8)
    }

    @inline(__always)
    package static func narrow(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = bits & 0x8000_0000
        let magnitude = Int32(bitPattern: bits ^ sign)
        // Normal: rebias 127 → 15 and round to nearest even at bit 21 (a carry reaches infinity).
        let odd = (magnitude >> 21) & 1
        let normal = (magnitude &- 0x3800_0000 &+ 0xFFFFF &+ odd) >> 21
        // Below 2^-14 the result is subnormal: adding 2^7 leaves the units of 2^-16 in the low bits.
        let subnormal = Int32(bitPattern: (Float(bitPattern: UInt32(bitPattern: magnitude)) + 0x1p7).bitPattern) &- 0x4300_0000
        // 2^16 and above: infinity, or NaN for NaN.
        let special: Int32 = magnitude > 0x7F80_0000 ? 0x7F : 0x7C
        let result = magnitude >= 0x4780_0000 ? special : (magnitude < 0x3880_0000 ? subnormal : normal)
        return UInt8(truncatingIfNeeded: result) | UInt8(truncatingIfNeeded: sign >> 24)
    }
}

/// A float8 e4m3fn value (`DType.float8e4m3`, torch.float8_e4m3fn). Arithmetic converts to
/// `Float`; equality compares bit patterns.
public struct Float8E4M3: Sendable, Hashable, BitwiseCopyable {
    /// The raw bits: sign, 4 exponent bits, 3 significand bits.
    public var bitPattern: UInt8

    /// The value with these raw bits.
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }

    /// The nearest e4m3fn value to `value`, ties to even; from 480 up (and NaN, infinity) NaN.
    public init(_ value: Float) { bitPattern = E4M3Format.narrow(value) }

    /// The exact Float32 value.
    public var floatValue: Float { E4M3Format.widen(bitPattern) }
}

/// A float8 e5m2 value (`DType.float8e5m2`, torch.float8_e5m2). Arithmetic converts to `Float`;
/// equality compares bit patterns.
public struct Float8E5M2: Sendable, Hashable, BitwiseCopyable {
    /// The raw bits: sign, 5 exponent bits, 2 significand bits.
    public var bitPattern: UInt8

    /// The value with these raw bits.
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }

    /// The nearest e5m2 value to `value`, ties to even; overflow to infinity; NaN stays NaN.
    public init(_ value: Float) { bitPattern = E5M2Format.narrow(value) }

    /// The exact Float32 value.
    public var floatValue: Float { E5M2Format.widen(bitPattern) }
}
