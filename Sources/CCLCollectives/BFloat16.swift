/// A bfloat16 value: the top 16 bits of an IEEE Float32, the storage type of `DType.bfloat16`.
///
/// Arithmetic is done by converting to `Float`. Equality and hashing compare bit patterns, so NaN equals
/// itself and `-0` differs from `+0`.
public struct BFloat16: Sendable, Hashable, BitwiseCopyable {
    /// The raw bits: sign, 8 exponent bits, 7 significand bits.
    public var bitPattern: UInt16

    /// The value with these raw bits.
    public init(bitPattern: UInt16) {
        self.bitPattern = bitPattern
    }

    /// The bfloat16 nearest to `value`, ties to even; overflow rounds to infinity. NaN stays NaN (quieted,
    /// keeping the sign and the top payload bits).
    public init(_ value: Float) {
        bitPattern = BFloat16Format.narrow(value)
    }

    /// The exact Float32 value.
    public var floatValue: Float {
        BFloat16Format.widen(bitPattern)
    }
}
