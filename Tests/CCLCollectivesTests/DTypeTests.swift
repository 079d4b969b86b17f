import Testing

@testable import CCLCollectives

@Suite("DType, ReduceOp, CollectiveScalar")
struct DTypeTests {
    @Test("sizes and names round-trip", arguments: DType.allCases)
    func dtypeNames(dtype: DType) {
        #expect(DType(name: dtype.description) == dtype)
        #expect(DType(name: dtype.description.uppercased()) == dtype)
        #expect(DType(rawValue: dtype.rawValue) == dtype)
        #expect([1, 2, 4, 8].contains(dtype.size))
    }

    @Test("aliases")
    func dtypeAliases() {
        let expected: [String: DType] = [
            "f32": .float32, "FP32": .float32, "float": .float32, "f64": .float64, "fp64": .float64,
            "Double": .float64, "f16": .float16, "fp16": .float16, "half": .float16, "bf16": .bfloat16,
            "BF16": .bfloat16, "i8": .int8, "u8": .uint8, "i32": .int32, "int": .int32, "i64": .int64, "long": .int64,
            "float8_e4m3fn": .float8e4m3, "FP8E4M3": .float8e4m3, "e4m3": .float8e4m3, "float8_e5m2": .float8e5m2, "e5m2": .float8e5m2,
        ]
        for (name, dtype) in expected { #expect(DType(name: name) == dtype, "\(name)") }
        for name in ["", "float8", "uint32", "f 32", "bfloat"] { #expect(DType(name: name) == nil, "\(name)") }
        #expect(DType.float32.description == "float32")
        #expect(DType.bfloat16.description == "bfloat16")
    }

    @Test("ReduceOp names and aliases")
    func reduceOpNames() {
        for op in ReduceOp.allCases { #expect(ReduceOp(name: op.description) == op) }
        #expect(ReduceOp(name: "Product") == .prod)
        #expect(ReduceOp(name: "mean") == .avg)
        #expect(ReduceOp(name: "AVERAGE") == .avg)
        #expect(ReduceOp(name: "median") == nil)
    }

    @Test("scalar types map to dtypes of their size")
    func scalars() {
        func check<T: CollectiveScalar>(_: T.Type, _ dtype: DType) {
            #expect(T.dtype == dtype)
            #expect(MemoryLayout<T>.size == dtype.size)
        }
        check(Float.self, .float32)
        check(Double.self, .float64)
        check(Float16.self, .float16)
        check(BFloat16.self, .bfloat16)
        check(Int8.self, .int8)
        check(UInt8.self, .uint8)
        check(Int32.self, .int32)
        check(Int64.self, .int64)
        check(Float8E4M3.self, .float8e4m3)
        check(Float8E5M2.self, .float8e5m2)
    }
}
