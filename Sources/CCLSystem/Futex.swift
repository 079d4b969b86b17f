import CCLShims
import Glibc

/// futex(2) wait and wake on a 32-bit word that may live in a `MAP_SHARED` segment, so waiters
/// and wakers may be different processes (no `FUTEX_PRIVATE_FLAG`).
///
/// The caller keeps the word's memory mapped for the duration of the call.
public enum Futex {
    /// How a `wait` ended.
    public enum WaitResult: Sendable, Equatable {
        /// Woken, or the word no longer held `expected` (EAGAIN), or a signal: re-check the state.
        case woken
        case timedOut
    }

    /// Sleeps while `*word == expected`, at most `timeoutNanoseconds` (nil: no limit).
    /// `FUTEX_WAIT`.
    public static func wait(
        _ word: UnsafeMutablePointer<UInt32>,
        expected: UInt32,
        timeoutNanoseconds: UInt64?
    ) -> WaitResult {
        let limit = timeoutNanoseconds.map { Int64(clamping: $0) } ?? -1
        if ccl_futex_wait(word, expected, limit) == 0 { return .woken }
        let code = errno
        switch code {
        case ETIMEDOUT: return .timedOut
        case EAGAIN, EINTR: return .woken
        default:
            // EINVAL (unaligned word or bad timeout) and EFAULT (unmapped word) are bugs here: the
            // word is always an aligned atomic inside a live mapping. Reporting them as a wake-up
            // would turn the bug into a silent spin.
            preconditionFailure("futex wait on \(word): \(SystemError(call: "futex", errno: code))")
        }
    }

    /// Wakes up to `count` waiters (`FUTEX_WAKE`); returns how many were woken.
    @discardableResult
    public static func wake(_ word: UnsafeMutablePointer<UInt32>, count: Int32 = Int32.max) -> Int {
        Int(max(0, ccl_futex_wake(word, count)))
    }

    /// The CPU's spin-loop hint (`pause`).
    @inline(__always)
    public static func relax() { ccl_cpu_relax() }

    /// Gives the core to another runnable thread (`sched_yield`).
    @inline(__always)
    public static func yield() { sched_yield() }
}
