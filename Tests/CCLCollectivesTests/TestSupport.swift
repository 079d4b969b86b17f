import Foundation

@testable import CCLCollectives

/// A deterministic generator (SplitMix64) so that failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A heap buffer whose elements start `offset` bytes past a 64-byte boundary (to test misaligned access).
final class TestBuffer {
    let allocation: UnsafeMutableRawPointer
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int, offset: Int = 0) {
        allocation = UnsafeMutableRawPointer.allocate(byteCount: byteCount + offset + 1, alignment: 64)
        pointer = allocation + offset
        self.byteCount = byteCount
    }

    convenience init(bytes: [UInt8], offset: Int = 0) {
        self.init(byteCount: bytes.count, offset: offset)
        bytes.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(pointer), byteCount: $0.count) }
    }

    var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: pointer, count: byteCount)) }

    deinit { allocation.deallocate() }
}

/// Runs the kernel on test buffers, keeping them alive until it returns.
func reduce(
    _ sources: [TestBuffer], into dst: TestBuffer, count: Int, dtype: DType, op: ReduceOp, divisor: Int = 1
) {
    withExtendedLifetime((sources, dst)) {
        sources.map { UnsafeRawPointer($0.pointer) }.withUnsafeBufferPointer {
            Reduction.reduce($0, into: dst.pointer, count: count, dtype: dtype, op: op, divisor: divisor)
        }
    }
}

/// The bytes of `values`.
func bytes<T: BitwiseCopyable>(of values: [T]) -> [UInt8] {
    values.withUnsafeBytes { Array($0) }
}

/// `values` read from `bytes`.
func values<T: BitwiseCopyable>(_: T.Type, from bytes: [UInt8]) -> [T] {
    let count = bytes.count / MemoryLayout<T>.stride
    return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        bytes.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(rebasing: raw[0..<(count * MemoryLayout<T>.stride)])
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
        }
        initialized = count
    }
}

/// Reference bfloat16 rounding, independent of the kernel's integer trick: pick the nearer of the two
/// neighbouring bfloat16 values by exact Double arithmetic, ties to the even one.
func referenceBFloat16Bits(_ x: Float) -> UInt16 {
    if x.isNaN { return UInt16(x.bitPattern >> 16) | 0x0040 }
    let truncated = UInt16(x.bitPattern >> 16)
    if x.bitPattern & 0xFFFF == 0 { return truncated }
    let next = truncated &+ 1
    func value(_ bits: UInt16) -> Double {
        // One step past the largest finite value is 2^128 in magnitude (it rounds to infinity).
        if bits & 0x7FFF == 0x7F80 { return bits & 0x8000 == 0 ? 0x1p128 : -0x1p128 }
        return Double(Float(bitPattern: UInt32(bits) << 16))
    }
    let below = abs(Double(x) - value(truncated))
    let above = abs(value(next) - Double(x))
    if below < above { return truncated }
    if above < below { return next }
    return truncated & 1 == 0 ? truncated : next
}

/// A straightforward scalar reference for `Reduction.reduce`, combining in source order.
enum Reference {
    static func reduce(_ sources: [[UInt8]], count: Int, dtype: DType, op: ReduceOp, divisor: Int) -> [UInt8] {
        let divisor = op == .avg ? divisor : 1
        switch dtype {
        case .float32: return floats(Float.self, sources, op, divisor)
        case .float64: return floats(Double.self, sources, op, divisor)
        case .int8: return integers(Int8.self, sources, op, divisor)
        case .uint8: return integers(UInt8.self, sources, op, divisor)
        case .int32: return integers(Int32.self, sources, op, divisor)
        case .int64: return integers(Int64.self, sources, op, divisor)
        case .float16:
            return half(sources, op, divisor, widen: { Float(Float16(bitPattern: $0)) }, narrow: { Float16($0).bitPattern })
        case .bfloat16:
            return half(
                sources, op, divisor, widen: { Float(bitPattern: UInt32($0) << 16) }, narrow: referenceBFloat16Bits)
        case .float8e4m3, .float8e5m2:
            let format = ReferenceFloat8(dtype)
            var acc = sources[0].map(format.value)
            for source in sources.dropFirst() {
                for i in acc.indices { acc[i] = combine(acc[i], format.value(source[i]), op) }
            }
            return acc.map { format.nearest(divisor == 1 ? $0 : $0 / Float(divisor)) }
        }
    }

    static func minimum<T: FloatingPoint>(_ a: T, _ b: T) -> T {
        if a.isNaN { return a }
        if b.isNaN { return b }
        return a < b ? a : b
    }

    static func maximum<T: FloatingPoint>(_ a: T, _ b: T) -> T {
        if a.isNaN { return a }
        if b.isNaN { return b }
        return a > b ? a : b
    }

    static func combine<T: FloatingPoint>(_ a: T, _ b: T, _ op: ReduceOp) -> T {
        switch op {
        case .sum, .avg: a + b
        case .prod: a * b
        case .min: minimum(a, b)
        case .max: maximum(a, b)
        }
    }

    // Each reference folds source by source, so every element combines left to right like the kernel.

    static func floats<T: BinaryFloatingPoint & BitwiseCopyable>(
        _: T.Type, _ sources: [[UInt8]], _ op: ReduceOp, _ divisor: Int
    ) -> [UInt8] {
        var acc = values(T.self, from: sources[0])
        for source in sources.dropFirst() {
            let input = values(T.self, from: source)
            for i in acc.indices { acc[i] = combine(acc[i], input[i], op) }
        }
        if divisor != 1 {
            for i in acc.indices { acc[i] /= T(divisor) }
        }
        return bytes(of: acc)
    }

    static func integers<T: FixedWidthInteger & BitwiseCopyable>(
        _: T.Type, _ sources: [[UInt8]], _ op: ReduceOp, _ divisor: Int
    ) -> [UInt8] {
        var acc = values(T.self, from: sources[0])
        for source in sources.dropFirst() {
            let input = values(T.self, from: source)
            switch op {
            case .sum, .avg: for i in acc.indices { acc[i] = acc[i] &+ input[i] }
            case .prod: for i in acc.indices { acc[i] = acc[i] &* input[i] }
            case .min: for i in acc.indices { acc[i] = Swift.min(acc[i], input[i]) }
            case .max: for i in acc.indices { acc[i] = Swift.max(acc[i], input[i]) }
            }
        }
        if divisor != 1 {
            for i in acc.indices { acc[i] = T(Int(acc[i]) / divisor) }
        }
        return bytes(of: acc)
    }

    static func half(
        _ sources: [[UInt8]], _ op: ReduceOp, _ divisor: Int, widen: (UInt16) -> Float, narrow: (Float) -> UInt16
    ) -> [UInt8] {
        var acc = values(UInt16.self, from: sources[0]).map(widen)
        for source in sources.dropFirst() {
            let input = values(UInt16.self, from: source)
            for i in acc.indices { acc[i] = combine(acc[i], widen(input[i]), op) }
        }
        return bytes(of: acc.map { narrow(divisor == 1 ? $0 : $0 / Float(divisor)) })
    }
}

/// Random source bytes for `dtype`: finite floats in [-4, 4) (products of 8 stay finite), integers over their
/// whole range (sums and products wrap).
func randomElements(_ dtype: DType, count: Int, using rng: inout SplitMix64) -> [UInt8] {
    var words: [UInt64] = []
    words.reserveCapacity(count)
    for _ in 0..<count { words.append(rng.next()) }
    switch dtype {
    case .float32: return bytes(of: words.map { Float(Int32(truncatingIfNeeded: $0 >> 32)) * 0x1p-29 })
    case .float64: return bytes(of: words.map { Double(Int64(bitPattern: $0)) * 0x1p-61 })
    case .float16:
        return bytes(of: words.map { Float16(Float(Int32(truncatingIfNeeded: $0 >> 32)) * 0x1p-29).bitPattern })
    case .bfloat16:
        return bytes(of: words.map { BFloat16(Float(Int32(truncatingIfNeeded: $0 >> 32)) * 0x1p-29).bitPattern })
    case .int8, .uint8, .int32, .int64: return Array(bytes(of: words).prefix(count * dtype.size))
    case .float8e4m3: return words.map { Float8E4M3(Float(Int32(truncatingIfNeeded: $0 >> 32)) * 0x1p-29).bitPattern }
    case .float8e5m2: return words.map { Float8E5M2(Float(Int32(truncatingIfNeeded: $0 >> 32)) * 0x1p-29).bitPattern }
    }
}

/// An 8-bit float format worked out the long way, independent of the kernel's bit tricks: every
/// pattern's value from the definition, and rounding by exact Double distance to the two
/// neighbours, ties to the even pattern; what torch does past the largest finite value (e4m3fn:
/// NaN from the pattern 0x7F, which stands for 480; e5m2: infinity, 0x7C, standing for 65536).
struct ReferenceFloat8 {
    let exponentBits: Int
    let bias: Int
    /// The non-negative patterns in order with their values; the last is the overflow pattern.
    let ladder: [(bits: UInt8, value: Double)]
    let nanBits: UInt8

    init(_ dtype: DType) {
        let exponentBits = dtype == .float8e4m3 ? 4 : 5
        let bias = dtype == .float8e4m3 ? 7 : 15
        let mantissaBits = 7 - exponentBits
        let scale = Double(1 << mantissaBits)
        let last: UInt8 = dtype == .float8e4m3 ? 0x7F : 0x7C
        ladder = (UInt8(0)...last).map { bits in
            let exponent = Int(bits) >> mantissaBits
            let fraction = Double(Int(bits) & ((1 << mantissaBits) - 1)) / scale
            let value = exponent == 0 ? fraction * pow(2, Double(1 - bias)) : (1 + fraction) * pow(2, Double(exponent - bias))
            return (bits, value)
        }
        self.exponentBits = exponentBits
        self.bias = bias
        nanBits = 0x7F
    }

    /// The value of `bits` (NaN patterns as NaN, e5m2's infinity as infinity).
    func value(_ bits: UInt8) -> Float {
        let magnitude = bits & 0x7F
        let negative = bits & 0x80 != 0
        let result: Float
        if exponentBits == 4 {
            result = magnitude == 0x7F ? .nan : Float(ladder[Int(magnitude)].value)
        } else {
            result = magnitude > 0x7C ? .nan : magnitude == 0x7C ? .infinity : Float(ladder[Int(magnitude)].value)
        }
        return negative ? -result : result
    }

    /// The pattern nearest to `x`.
    func nearest(_ x: Float) -> UInt8 {
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        if x.isNaN { return sign | nanBits }
        let magnitude = Double(x.magnitude)
        guard let top = ladder.last, magnitude < top.value else { return sign | (ladder.last?.bits ?? nanBits) }
        var index = 0
        while ladder[index + 1].value <= magnitude { index += 1 }
        let below = ladder[index], above = ladder[index + 1]
        let down = magnitude - below.value, up = above.value - magnitude
        if down < up || (down == up && below.bits & 1 == 0) { return sign | below.bits }
        return sign | above.bits
    }
}

/// The index of the first element where `a` and `b` differ, treating any two NaN as equal (payloads are
/// unspecified when NaN meet); nil if they match. A length mismatch reports the shorter length.
func firstMismatch(_ a: [UInt8], _ b: [UInt8], _ dtype: DType) -> Int? {
    guard a.count == b.count else { return Swift.min(a.count, b.count) / dtype.size }
    switch dtype {
    case .float32:
        let (x, y) = (values(UInt32.self, from: a), values(UInt32.self, from: b))
        let nan: (UInt32) -> Bool = { $0 & 0x7FFF_FFFF > 0x7F80_0000 }
        return x.indices.first { x[$0] != y[$0] && !(nan(x[$0]) && nan(y[$0])) }
    case .float64:
        let (x, y) = (values(UInt64.self, from: a), values(UInt64.self, from: b))
        let nan: (UInt64) -> Bool = { $0 & 0x7FFF_FFFF_FFFF_FFFF > 0x7FF0_0000_0000_0000 }
        return x.indices.first { x[$0] != y[$0] && !(nan(x[$0]) && nan(y[$0])) }
    case .float16, .bfloat16:
        let (x, y) = (values(UInt16.self, from: a), values(UInt16.self, from: b))
        let infinity: UInt16 = dtype == .float16 ? 0x7C00 : 0x7F80
        let nan: (UInt16) -> Bool = { $0 & 0x7FFF > infinity }
        return x.indices.first { x[$0] != y[$0] && !(nan(x[$0]) && nan(y[$0])) }
    case .int8, .uint8, .int32, .int64:
        return a.indices.first { a[$0] != b[$0] }.map { $0 / dtype.size }
    case .float8e4m3, .float8e5m2:
        let nan: (UInt8) -> Bool = { dtype == .float8e4m3 ? $0 & 0x7F == 0x7F : $0 & 0x7F > 0x7C }
        return a.indices.first { a[$0] != b[$0] && !(nan(a[$0]) && nan(b[$0])) }
    }
}
