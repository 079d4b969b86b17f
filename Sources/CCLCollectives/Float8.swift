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

    /// Rebias 127 → 7, round to nearest even at bit 20; below 2^-6 subnormal (units of 2^-9,
    /// through 2^14); from 480 (and infinity, NaN) NaN.
    @inline(__always)
    package static func narrow(_ value: Float) -> UInt8 {
        narrowToFloat8(
            value, shift: 20, rebias: 0x3C00_0000, smallestNormal: 0x3C80_0000, subnormalOffset: 0x1p14, overflow: 0x43F0_0000,
            overflowBits: 0x7F, nanBits: 0x7F)
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

    /// Rebias 127 → 15, round to nearest even at bit 21 (a carry reaches infinity); below
    /// 2^-14 subnormal (units of 2^-16, through 2^7); from 2^16 infinity, NaN for NaN.
    @inline(__always)
    package static func narrow(_ value: Float) -> UInt8 {
        narrowToFloat8(
            value, shift: 21, rebias: 0x3800_0000, smallestNormal: 0x3880_0000, subnormalOffset: 0x1p7, overflow: 0x4780_0000,
            overflowBits: 0x7C, nanBits: 0x7F)
    }
}

/// Float32 → an 8-bit float, branch-free (every candidate computed, one selected, so loops over
/// it vectorize): normal results rebias the exponent (`rebias`) and round to nearest even at bit
/// `shift`; magnitudes below `smallestNormal` are subnormal, rounded by the FPU when
/// `subnormalOffset` (the power of two whose units are the format's smallest) is added; from
/// `overflow` up the result is `overflowBits`, or `nanBits` for NaN. The sign is kept.
@inline(__always)
private func narrowToFloat8(
    _ value: Float, shift: Int32, rebias: Int32, smallestNormal: Int32, subnormalOffset: Float, overflow: Int32, overflowBits: Int32,
    nanBits: Int32
) -> UInt8 {
    let bits = value.bitPattern
    let sign = bits & 0x8000_0000
    // Below 2^31, so signed comparisons are exact.
    let magnitude = Int32(bitPattern: bits ^ sign)
    let odd = (magnitude >> shift) & 1
    let normal = (magnitude &- rebias &+ ((1 << (shift - 1)) - 1) &+ odd) >> shift
    let offset = Int32(bitPattern: subnormalOffset.bitPattern)
    let subnormal = Int32(bitPattern: (Float(bitPattern: UInt32(bitPattern: magnitude)) + subnormalOffset).bitPattern) &- offset
    let special = magnitude > 0x7F80_0000 ? nanBits : overflowBits
    let result = magnitude >= overflow ? special : (magnitude < smallestNormal ? subnormal : normal)
    return UInt8(truncatingIfNeeded: result) | UInt8(truncatingIfNeeded: sign >> 24)
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
