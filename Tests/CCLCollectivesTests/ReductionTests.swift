import Testing

@testable import CCLCollectives

@Suite("Reduction kernels")
struct ReductionTests {
    /// (sources, elements): every source count in 1...8 (the kernel fuses up to four sources per pass and works
    /// in 8 KiB blocks beyond that); counts that are empty, shorter than a vector, odd, and cross blocks.
    static let shapes: [(sources: Int, count: Int)] =
        [1, 2, 3, 4, 8].flatMap { k in [0, 1, 7, 1023, 4099].map { (k, $0) } }
        + [(5, 4099), (6, 4099), (7, 4099), (8, 20011)]

    @Test("matches the scalar reference", arguments: DType.allCases, ReduceOp.allCases)
    func matchesReference(dtype: DType, op: ReduceOp) {
        var rng = SplitMix64(seed: UInt64(dtype.rawValue) << 8 | UInt64(op.rawValue))
        for (k, count) in Self.shapes {
            // Other ops must ignore the divisor.
            for divisor in op == .avg ? [1, 3] : [3] {
                // Offset 1 makes every multi-byte element misaligned.
                for offset in [0, 1] {
                    let inputs = (0..<k).map { _ in randomElements(dtype, count: count, using: &rng) }
                    let expected = Reference.reduce(inputs, count: count, dtype: dtype, op: op, divisor: divisor)
                    let sources = inputs.map { TestBuffer(bytes: $0, offset: offset) }
                    let dst = TestBuffer(byteCount: count * dtype.size, offset: offset)
                    reduce(
                        sources, into: dst, count: count, dtype: dtype,
                        op: op, divisor: divisor)
                    let mismatch = firstMismatch(dst.bytes, expected, dtype)
                    #expect(
                        mismatch == nil,
                        "\(dtype) \(op) k=\(k) count=\(count) divisor=\(divisor) offset=\(offset)")
                    // The sources are untouched.
                    #expect(zip(sources, inputs).allSatisfy { $0.bytes == $1 })
                }
            }
        }
    }

    @Test("in place: dst is one of the sources", arguments: DType.allCases, ReduceOp.allCases)
    func inPlace(dtype: DType, op: ReduceOp) {
        var rng = SplitMix64(seed: 0xACC ^ UInt64(dtype.rawValue) << 8 | UInt64(op.rawValue))
        for k in [1, 2, 3, 4, 6, 8] {
            for alias in Set([0, k / 2, k - 1]).sorted() {
                for count in [7, 10007] {
                    let divisor = 3
                    let inputs = (0..<k).map { _ in randomElements(dtype, count: count, using: &rng) }
                    let expected = Reference.reduce(inputs, count: count, dtype: dtype, op: op, divisor: divisor)
                    let sources = inputs.map { TestBuffer(bytes: $0) }
                    reduce(
                        sources, into: sources[alias], count: count,
                        dtype: dtype, op: op, divisor: divisor)
                    let mismatch = firstMismatch(sources[alias].bytes, expected, dtype)
                    #expect(
                        mismatch == nil,
                        "\(dtype) \(op) k=\(k) dst=sources[\(alias)] count=\(count)")
                }
            }
        }
    }

    @Test("the same buffer passed as several sources")
    func repeatedSource() {
        let a: [Float] = [1, 2, 3, 4, 5]
        let source = TestBuffer(bytes: bytes(of: a))
        let dst = TestBuffer(byteCount: 20)
        reduce([source, source, source], into: dst, count: 5, dtype: .float32, op: .sum)
        #expect(values(Float.self, from: dst.bytes) == [3, 6, 9, 12, 15])
    }

    @Test("integer sums and products wrap; avg divides the wrapped sum, truncating")
    func integerWrapping() {
        func run<T: FixedWidthInteger & BitwiseCopyable>(
            _ inputs: [[T]], _ dtype: DType, _ op: ReduceOp, divisor: Int = 1
        ) -> [T] {
            let sources = inputs.map { TestBuffer(bytes: bytes(of: $0)) }
            let count = inputs[0].count
            let dst = TestBuffer(byteCount: count * MemoryLayout<T>.size)
            reduce(
                sources, into: dst, count: count, dtype: dtype, op: op,
                divisor: divisor)
            return values(T.self, from: dst.bytes)
        }
        #expect(run([[Int8.max, -128], [1, -1]], .int8, .sum) == [Int8.min, Int8.max])
        #expect(run([[UInt8.max, 0], [1, 255]], .uint8, .sum) == [0, 255])
        #expect(run([[Int32.max], [1]], .int32, .sum) == [Int32.min])
        #expect(run([[Int64.max], [2]], .int64, .sum) == [Int64.min + 1])
        #expect(run([[Int8(16)], [16]], .int8, .prod) == [0])
        #expect(run([[Int32(1 << 16)], [1 << 16]], .int32, .prod) == [0])
        #expect(run([[Int64.max], [2]], .int64, .prod) == [-2])
        // 100 * 3 = 300 wraps to 44; 44 / 3 = 14.
        #expect(run([[Int8(100)], [100], [100]], .int8, .avg, divisor: 3) == [14])
        #expect(run([[Int32(-7), 7], [0, 0]], .int32, .avg, divisor: 2) == [-3, 3])
        #expect(run([[UInt8(200)], [100]], .uint8, .avg, divisor: 2) == [22])
        #expect(run([[Int64.min], [0]], .int64, .avg, divisor: 3) == [Int64.min / 3])
        #expect(run([[Int8.min], [Int8.max]], .int8, .min) == [Int8.min])
        #expect(run([[UInt8(3)], [200]], .uint8, .max) == [200])
    }

    @Test("float avg divides in the accumulation type; divisor 1 and non-avg ops skip it")
    func floatAverage() {
        func run(_ inputs: [[Float]], _ dtype: DType, _ op: ReduceOp, divisor: Int) -> [Float] {
            let sources = inputs.map { TestBuffer(bytes: bytes(of: $0)) }
            let count = inputs[0].count
            let dst = TestBuffer(byteCount: count * 4)
            reduce(
                sources, into: dst, count: count, dtype: dtype, op: op,
                divisor: divisor)
            return values(Float.self, from: dst.bytes)
        }
        #expect(run([[1, 2], [2, 4], [3, 6]], .float32, .avg, divisor: 3) == [2, 4])
        #expect(run([[1, 2], [2, 4], [3, 6]], .float32, .avg, divisor: 1) == [6, 12])
        #expect(run([[1, 2], [2, 4], [3, 6]], .float32, .sum, divisor: 3) == [6, 12])
        #expect(run([[1]], .float32, .avg, divisor: 4) == [0.25])
        // Division, not multiplication by a rounded reciprocal: 3 * (1/3) would round differently.
        #expect(run([[0.3], [0.4], [0.3]], .float32, .avg, divisor: 3) == [(Float(0.3) + 0.4 + 0.3) / 3])
    }

    @Test("half types accumulate in Float32 and round once")
    func halfAccumulation() {
        // 2048 + 1 + 1 in float16 step by step is 2048 (each +1 is a tie to even); in Float32 it is 2050.
        let inputs: [[UInt16]] = [[Float16(2048).bitPattern], [Float16(1).bitPattern], [Float16(1).bitPattern]]
        let sources = inputs.map { TestBuffer(bytes: bytes(of: $0)) }
        let dst = TestBuffer(byteCount: 2)
        reduce(sources, into: dst, count: 1, dtype: .float16, op: .sum)
        #expect(Float16(bitPattern: values(UInt16.self, from: dst.bytes)[0]) == 2050)

        // bfloat16: 256 + 1 + 1: 258 is exact in bfloat16, 256 + 1 alone is a tie that rounds to 256.
        let bf: [[UInt16]] = [[BFloat16(256).bitPattern], [BFloat16(1).bitPattern], [BFloat16(1).bitPattern]]
        let bfSources = bf.map { TestBuffer(bytes: bytes(of: $0)) }
        reduce(bfSources, into: dst, count: 1, dtype: .bfloat16, op: .sum)
        #expect(BFloat16(bitPattern: values(UInt16.self, from: dst.bytes)[0]).floatValue == 258)
    }

    @Test("float min and max propagate NaN; equal operands keep the later source", arguments: [DType.float32, .float64])
    func floatSpecialValues(dtype: DType) {
        func run(_ a: Double, _ b: Double, _ op: ReduceOp) -> Double {
            let inputs = dtype == .float32 ? [bytes(of: [Float(a)]), bytes(of: [Float(b)])] : [bytes(of: [a]), bytes(of: [b])]
            let sources = inputs.map { TestBuffer(bytes: $0) }
            let dst = TestBuffer(byteCount: dtype.size)
            reduce(sources, into: dst, count: 1, dtype: dtype, op: op)
            return dtype == .float32 ? Double(values(Float.self, from: dst.bytes)[0]) : values(Double.self, from: dst.bytes)[0]
        }
        for op in [ReduceOp.min, .max] {
            #expect(run(.nan, 1, op).isNaN)
            #expect(run(1, .nan, op).isNaN)
            #expect(run(.nan, .nan, op).isNaN)
            #expect(run(.infinity, -.infinity, op) == (op == .min ? -.infinity : .infinity))
        }
        #expect(run(-0.0, 0.0, .min).sign == .plus)
        #expect(run(0.0, -0.0, .min).sign == .minus)
        #expect(run(-0.0, 0.0, .max).sign == .plus)
        #expect(run(0.0, -0.0, .max).sign == .minus)
        #expect(run(.infinity, -.infinity, .sum).isNaN)
    }

    @Test("half min and max propagate NaN", arguments: [DType.float16, .bfloat16])
    func halfSpecialValues(dtype: DType) {
        let nan: UInt16 = dtype == .float16 ? 0x7E00 : 0x7FC0
        let one: UInt16 = dtype == .float16 ? 0x3C00 : 0x3F80
        for op in [ReduceOp.min, .max] {
            for pair in [[nan, one], [one, nan]] {
                let sources = pair.map { TestBuffer(bytes: bytes(of: [$0])) }
                let dst = TestBuffer(byteCount: 2)
                reduce(sources, into: dst, count: 1, dtype: dtype, op: op)
                #expect(firstMismatch(dst.bytes, bytes(of: [nan]), dtype) == nil)
            }
        }
    }

    @Test("one source without division is a byte copy", arguments: DType.allCases)
    func singleSourceCopies(dtype: DType) {
        var rng = SplitMix64(seed: 7)
        let input = (0..<(64 * dtype.size)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let source = TestBuffer(bytes: input)
        for op in ReduceOp.allCases {
            let dst = TestBuffer(byteCount: input.count)
            reduce([source], into: dst, count: 64, dtype: dtype, op: op)
            #expect(dst.bytes == input)
            // Also in place.
            reduce([source], into: source, count: 64, dtype: dtype, op: op)
            #expect(source.bytes == input)
        }
    }
}
