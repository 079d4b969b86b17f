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
    @inline(__always)
    package static func widen(_ bits: UInt8) -> Float {
        let sign = UInt32(bits & 0x80) << 24
        let magnitude = UInt32(bits & 0x7F)
        if magnitude == 0x7F { return Float(bitPattern: sign | 0x7FC0_0000) }
        let exponent = magnitude >> 3
        if exponent == 0 {
            // Subnormal: m · 2^-9, exact in Float32.
            return Float(bitPattern: (Float(magnitude) * 0x1p-9).bitPattern | sign)
        }
        // Rebias 7 → 127 and place the 3 significand bits at the top of Float32's 23.
        return Float(bitPattern: sign | ((exponent + 120) << 23) | ((magnitude & 7) << 20))
    }

    @inline(__always)
    package static func narrow(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: (bits & 0x8000_0000) >> 24)
        let magnitude = bits & 0x7FFF_FFFF
        // 480 and above (with infinity and NaN): NaN.
        if magnitude >= 0x43F0_0000 { return sign | 0x7F }
        // Below 2^-6 the result is subnormal: adding 2^14 leaves the units of 2^-9 in the low
        // bits, rounded by the FPU.
        if magnitude < 0x3C80_0000 {
            let shifted = (Float(bitPattern: magnitude) + 0x1p14).bitPattern &- 0x4680_0000
            return sign | UInt8(truncatingIfNeeded: shifted)
        }
        // Normal: rebias 127 → 7 and round to nearest even at bit 20.
        let odd = (magnitude >> 20) & 1
        let rounded = (magnitude &- 0x3C00_0000 &+ 0x7FFFF &+ odd) >> 20
        return sign | UInt8(truncatingIfNeeded: rounded)
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
        let sign = UInt8(truncatingIfNeeded: (bits & 0x8000_0000) >> 24)
        let magnitude = bits & 0x7FFF_FFFF
        // 2^16 and above: infinity, or NaN for NaN.
        if magnitude >= 0x4780_0000 { return sign | (magnitude > 0x7F80_0000 ? 0x7F : 0x7C) }
        // Below 2^-14 the result is subnormal: adding 2^7 leaves the units of 2^-16 in the low bits.
        if magnitude < 0x3880_0000 {
            let shifted = (Float(bitPattern: magnitude) + 0x1p7).bitPattern &- 0x4300_0000
            return sign | UInt8(truncatingIfNeeded: shifted)
        }
        // Normal: rebias 127 → 15 and round to nearest even at bit 21 (a carry reaches infinity).
        let odd = (magnitude >> 21) & 1
        let rounded = (magnitude &- 0x3800_0000 &+ 0xFFFFF &+ odd) >> 21
        return sign | UInt8(truncatingIfNeeded: rounded)
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
