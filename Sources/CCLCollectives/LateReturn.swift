import CCLCore
import CCLSystem

/// When a communicator's calls return, to tell a late one: a call that returns more than half the
/// timeout after the previous one may have been given up by the peers while this rank was
/// stalled, though their data had all arrived, so it looks for their abort before it succeeds.
///
/// One clock read per call. Threading: the communicator's (one thread at a time).
struct LateReturn {
    private var last = monotonicNanoseconds()
    private let half: UInt64?

    init(timeout: Timeout) { half = timeout.nanoseconds.map { $0 / 2 } }

    /// Records a return now; true when it came more than half the timeout after the previous one.
    @inline(__always)
    mutating func isLate() -> Bool {
        let now = monotonicNanoseconds()
        defer { last = now }
        guard let half else { return false }
        return now &- last > half
    }
}
