import CCLCore
import Glibc

/// How a socket call waits when the kernel has nothing for it yet.
///
/// Blocking in poll(2) costs a wake-up on every small message (about 35 µs per side measured on
/// a 2-vCPU VM, where the idle vCPU halts), so a call first retries its non-blocking send/recv:
/// back to back until `spinNanoseconds` have passed without progress, then with a `sched_yield`
/// between tries until `yieldNanoseconds`, and only then blocks in poll(2) for what is left of
/// its timeout. The phases mirror `WaitPolicy`.
///
/// The default does not busy-spin at all: a `sched_yield` costs next to nothing when the core is
/// free, and when the peer shares the core it hands the core over at once (an 8-byte round trip
/// measured 8 µs on separate cores either way, but 14 µs instead of 24 µs on one shared core).
/// `.blocking` goes to poll(2) at once: no CPU burnt while idle, slow small messages.
package struct SocketSpinPolicy: Sendable, Equatable {
    /// Busy retries without progress up to this many ns.
    package var spinNanoseconds: UInt64
    /// Retries with `sched_yield` in between up to this many ns (counted from the same start).
    package var yieldNanoseconds: UInt64

    package init(spinNanoseconds: UInt64 = 0, yieldNanoseconds: UInt64 = 50_000) {
        self.spinNanoseconds = spinNanoseconds
        self.yieldNanoseconds = yieldNanoseconds
    }

    /// Straight to poll(2).
    package static let blocking = SocketSpinPolicy(spinNanoseconds: 0, yieldNanoseconds: 0)

    /// After a try that made no progress, `idle` ns after the last progress: true to try again
    /// (having yielded the core past the spin phase), false to block in poll(2).
    @inline(__always)
    func keepTrying(idle: UInt64) -> Bool {
        if idle < spinNanoseconds { return true }
        if idle < yieldNanoseconds {
            sched_yield()
            return true
        }
        return false
    }
}

/// The end of one call's timeout on the monotonic clock.
struct SocketDeadline {
    let timeout: Timeout
    let start: UInt64
    /// `UInt64.max` for `.indefinite`.
    let end: UInt64

    init(_ timeout: Timeout, now: UInt64 = monotonicNanoseconds()) {
        self.timeout = timeout
        start = now
        if let limit = timeout.nanoseconds {
            let (sum, overflow) = now.addingReportingOverflow(limit)
            end = overflow ? UInt64.max : sum
        } else {
            end = UInt64.max
        }
    }

    /// This deadline, or `nanoseconds` from now if that is sooner.
    func capped(atMost nanoseconds: UInt64, now: UInt64 = monotonicNanoseconds()) -> SocketDeadline {
        let (sum, overflow) = now.addingReportingOverflow(nanoseconds)
        return overflow || sum >= end ? self : SocketDeadline(.nanoseconds(nanoseconds), now: now)
    }

    func hasExpired(at now: UInt64) -> Bool { end != UInt64.max && now >= end }

    /// poll(2)'s timeout argument: what is left, rounded up to whole ms, or -1 for no limit.
    func pollMilliseconds(at now: UInt64) -> Int32 {
        if end == UInt64.max { return -1 }
        guard now < end else { return 0 }
        let milliseconds = (end - now + 999_999) / 1_000_000
        return Int32(clamping: milliseconds)
    }

    /// "timed out after 5 s (waited 5.0 s)".
    func timedOutText(at now: UInt64) -> String {
        "timed out after \(timeout) (waited \(describeDuration(now &- start)))"
    }
}

/// Blocks in poll(2) until one of `descriptors` (one or two) is ready or the deadline passes.
///
/// Returns false at the deadline, true when a descriptor is ready, has an error or hang-up
/// pending, or a signal interrupted the wait: the caller retries its calls, which report any
/// error. A descriptor that is not open fails with EBADF.
func pollSockets(_ first: pollfd, _ second: pollfd? = nil, deadline: SocketDeadline) throws(SystemError) -> Bool {
    while true {
        let now = monotonicNanoseconds()
        if deadline.hasExpired(at: now) { return false }
        let milliseconds = deadline.pollMilliseconds(at: now)
        let (result, invalid) = withUnsafeTemporaryAllocation(of: pollfd.self, capacity: 2) { fds in
            fds[0] = first
            fds[1] = second ?? pollfd(fd: -1, events: 0, revents: 0)
            let result = poll(fds.baseAddress, second == nil ? 1 : 2, milliseconds)
            let invalid = result > 0 && (fds[0].revents | fds[1].revents) & Int16(POLLNVAL) != 0
            return (result, invalid)
        }
        if invalid { throw SystemError(call: "poll", errno: EBADF) }
        if result > 0 { return true }
        if result == 0 { continue }  // ms rounding: re-check the deadline
        let code = errno
        if code == EINTR { return true }
        throw SystemError(call: "poll", errno: code)
    }
}
