/// How a reduction combines the ranks' elements. See `Reduction` for the exact arithmetic.
///
/// The raw value is part of the wire format; never renumber a case.
public enum ReduceOp: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case sum, prod, min, max
    /// The sum divided by the number of contributions (truncating for integer dtypes).
    case avg

    /// The case name, e.g. `"sum"`.
    public var description: String {
        switch self {
        case .sum: "sum"
        case .prod: "prod"
        case .min: "min"
        case .max: "max"
        case .avg: "avg"
        }
    }

    /// Parses a case name or an alias (`"product"`, `"mean"`, `"average"`), ignoring case.
    public init?(name: String) {
        switch name.lowercased() {
        case "sum": self = .sum
        case "prod", "product": self = .prod
        case "min": self = .min
        case "max": self = .max
        case "avg", "mean", "average": self = .avg
        default: return nil
        }
    }
}
