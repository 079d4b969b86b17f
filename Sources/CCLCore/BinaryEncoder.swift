// PLACEHOLDER until the real coder lands (being written now).
public struct CCLBinaryEncoder {
    public init() {}
    public func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        throw CCLError(.invalidArgument, operation: "encode", "not yet")
    }
}
