/// An element type that collectives can operate on, tied to its `DType`.
///
/// `MemoryLayout<Self>.size == dtype.size` for every conformance.
public protocol CollectiveScalar: BitwiseCopyable, Sendable {
    /// The dtype describing this type's elements on the wire and in reductions.
    static var dtype: DType { get }
}

extension Float: CollectiveScalar {
    public static var dtype: DType { .float32 }
}

extension Double: CollectiveScalar {
    public static var dtype: DType { .float64 }
}

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    extension Float16: CollectiveScalar {
        public static var dtype: DType { .float16 }
    }
#endif

extension BFloat16: CollectiveScalar {
    public static var dtype: DType { .bfloat16 }
}

extension Float8E4M3: CollectiveScalar {
    public static var dtype: DType { .float8e4m3 }
}

extension Float8E5M2: CollectiveScalar {
    public static var dtype: DType { .float8e5m2 }
}

extension Int8: CollectiveScalar {
    public static var dtype: DType { .int8 }
}

extension UInt8: CollectiveScalar {
    public static var dtype: DType { .uint8 }
}

extension Int32: CollectiveScalar {
    public static var dtype: DType { .int32 }
}

extension Int64: CollectiveScalar {
    public static var dtype: DType { .int64 }
}
