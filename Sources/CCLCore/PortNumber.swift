/// TCP port numbers from outside (options, variables, addresses): checked where they are parsed
/// or first used, since a larger value would be truncated to 16 bits by the socket layer
/// (99999 listens on 34463).
public enum PortNumber {
    /// The ports a listener may ask for (0: the kernel picks one).
    public static let listenable = 0...65535
    /// The ports a client may connect to.
    public static let connectable = 1...65535

    /// Throws `.invalidArgument` naming the operation and the value when `port` is outside `range`.
    public static func check(_ port: Int, in range: ClosedRange<Int>, operation: String) throws(CCLError) {
        guard range.contains(port) else {
            throw CCLError(.invalidArgument, operation: operation, "port \(port) is outside \(range.lowerBound)...\(range.upperBound)")
        }
    }
}
