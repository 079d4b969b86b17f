/// Conversions between Float32 and a 16-bit floating-point storage format, on bit patterns.
///
/// Both directions are exact IEEE conversions (narrowing rounds to nearest, ties to even, including into and
/// out of subnormals and overflow to infinity). They are branch-free integer arithmetic so that loops over
/// them vectorize; Swift's own `Float16` conversions are a libcall per element on x86-64 without F16C. The
/// few floating-point steps never see or produce a Float32 subnormal that matters, so the results are also
/// exact when the thread flushes subnormals to zero (FTZ/DAZ).
package protocol HalfPrecisionFormat {
    /// The Float32 equal to the 16-bit value; NaN keeps its sign and payload.
    static func widen(_ bits: UInt16) -> Float
    /// The 16-bit value nearest to `value`; NaN becomes a quiet NaN keeping the sign and top payload bits.
    static func narrow(_ value: Float) -> UInt16
}

/// IEEE 754 binary16 (`Float16`): 1 sign, 5 exponent, 10 significand bits.
package enum IEEEHalfFormat: HalfPrecisionFormat {
    @inline(__always)
    package static func widen(_ bits: UInt16) -> Float {
        let half = UInt32(bits)
        let magnitude = (half & 0x7FFF) << 13
        let exponent = magnitude & 0x0F80_0000
        // Rebias the exponent from 15 to 127.
        let normal = magnitude &+ 0x3800_0000
        // Infinity and NaN: exponent all ones in both formats.
        let special = normal &+ 0x3800_0000
        // Zero and subnormals: build 2^-14 * (1 + m/1024) and subtract 2^-14, which is exact.
        let subnormal = (Float(bitPattern: normal &+ 0x0080_0000) - Float(bitPattern: 0x3880_0000)).bitPattern
        let result = exponent == 0x0F80_0000 ? special : (exponent == 0 ? subnormal : normal)
        return Float(bitPattern: result | ((half & 0x8000) << 16))
    }

    @inline(__always)
    package static func narrow(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = bits & 0x8000_0000
        // Below 2^31, so signed comparisons are exact (SSE2 has no unsigned vector compare).
        let magnitude = Int32(bitPattern: bits ^ sign)
        // Normal result: rebias the exponent from 127 to 15 and round to nearest even at bit 13; a carry
        // out of the significand correctly bumps the exponent, up to infinity.
        let odd = (magnitude >> 13) & 1
        let normal = (magnitude &- 0x3800_0000 &+ 0x0FFF &+ odd) >> 13
        // Subnormal or zero result: adding 0.5 puts the half's units (2^-24) in the low bits, rounded by the FPU.
        let subnormal = Int32(bitPattern: (Float(bitPattern: UInt32(bitPattern: magnitude)) + 0.5).bitPattern) &- 0x3F00_0000
        // NaN: quiet, keeping the top payload bits.
        let special: Int32 = magnitude > 0x7F80_0000 ? 0x7E00 | ((magnitude >> 13) & 0x03FF) : 0x7C00
        let result = magnitude >= 0x4780_0000 ? special : (magnitude < 0x3880_0000 ? subnormal : normal)
        return UInt16(truncatingIfNeeded: result) | UInt16(truncatingIfNeeded: sign >> 16)
    }
}

/// bfloat16: the top 16 bits of a Float32 (1 sign, 8 exponent, 7 significand bits).
package enum BFloat16Format: HalfPrecisionFormat {
    @inline(__always)
    package static func widen(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    @inline(__always)
    package static func narrow(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
        let quietNaN = (bits >> 16) | 0x0040
        // `value != value` is the NaN test as one vectorizable compare.
        return UInt16(truncatingIfNeeded: value != value ? quietNaN : rounded)
    }
}
