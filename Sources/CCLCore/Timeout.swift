/// How long a blocking call may wait.
///
/// `.seconds(5)` fails with `CCLError.Code.timeout` after 5 s; `.indefinite` waits for ever
/// (still failing at once on a dead peer or on cancellation) and emits no stall warnings.
public enum Timeout: Sendable, Equatable, CustomStringConvertible {
    case nanoseconds(UInt64)
    case indefinite

    /// Longer than ~292 years (or not finite) is `.indefinite`; negative is zero.
    public static func seconds(_ s: Double) -> Timeout {
        guard !s.isNaN else { return .nanoseconds(0) }
        let nanoseconds = max(0, s) * 1e9
        return nanoseconds < 1.8e19 ? .nanoseconds(UInt64(nanoseconds)) : .indefinite
    }
    /// `ms` milliseconds (negative counts as 0).
    public static func milliseconds(_ ms: Int) -> Timeout {
        let (nanoseconds, overflow) = UInt64(max(0, ms)).multipliedReportingOverflow(by: 1_000_000)
        return overflow ? .indefinite : .nanoseconds(nanoseconds)
    }

    /// The limit in nanoseconds, or nil for `.indefinite`.
    public var nanoseconds: UInt64? {
        if case .nanoseconds(let n) = self { return n }
        return nil
    }

    /// "5 s", "0.25 s", "indefinitely".
    public var description: String {
        switch self {
        case .indefinite: return "indefinitely"
        case .nanoseconds(let n):
            if n % 1_000_000_000 == 0 { return "\(n / 1_000_000_000) s" }
            return "\(Double(n) / 1e9) s"
        }
    }
}
