// PLACEHOLDER until the real coder lands (being written now).
public struct CCLBinaryDecoder {
    public init() {}
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        throw CCLError(.invalidArgument, operation: "decode", "not yet")
    }
}
