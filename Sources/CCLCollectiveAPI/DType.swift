/// The element type of a collective's buffers.
///
/// The raw value is part of the wire format; never renumber a case.
public enum DType: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case float32, float64, float16, bfloat16, int8, uint8, int32, int64
    /// 8-bit floats (torch.float8_e4m3fn and torch.float8_e5m2); reductions on the CPU widen to
    /// Float32 and round once to the storage type, as for 16-bit floats.
    case float8e4m3, float8e5m2

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .int8, .uint8, .float8e4m3, .float8e5m2: 1
        case .float16, .bfloat16: 2
        case .float32, .int32: 4
        case .float64, .int64: 8
        }
    }

    /// The case name, e.g. `"float32"`, `"bfloat16"`.
    public var description: String {
        switch self {
        case .float32: "float32"
        case .float64: "float64"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .int8: "int8"
        case .uint8: "uint8"
        case .int32: "int32"
        case .int64: "int64"
        case .float8e4m3: "float8e4m3"
        case .float8e5m2: "float8e5m2"
        }
    }

    /// Parses a case name or a common alias (`"fp32"`, `"double"`, `"half"`, `"bf16"`, `"int"`, `"long"`,
    /// `"float8_e4m3fn"`, `"float8_e5m2"` (torch's names), ...),
    /// ignoring case. Returns nil for anything else.
    public init?(name: String) {
        switch name.lowercased() {
        case "float32", "f32", "fp32", "float": self = .float32
        case "float64", "f64", "fp64", "double": self = .float64
        case "float16", "f16", "fp16", "half": self = .float16
        case "bfloat16", "bf16": self = .bfloat16
        case "int8", "i8": self = .int8
        case "uint8", "u8": self = .uint8
        case "int32", "i32", "int": self = .int32
        case "int64", "i64", "long": self = .int64
        case "float8e4m3", "float8_e4m3fn", "float8_e4m3", "fp8e4m3", "e4m3": self = .float8e4m3
        case "float8e5m2", "float8_e5m2", "fp8e5m2", "e5m2": self = .float8e5m2
        default: return nil
        }
    }
}
