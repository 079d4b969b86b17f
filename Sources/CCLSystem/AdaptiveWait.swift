import CCLCore

/// How a blocked call waits: spin, then yield, then sleep on a futex.
///
/// Spinning alone collapses when processes outnumber cores (the spinner holds the core the
/// writer needs), sleeping alone costs a futex wake-up (~6 µs here) on every message. So a
/// waiter spins with `pause` for `spinNanoseconds`, then calls `sched_yield` until
/// `yieldNanoseconds` have passed, then sleeps in slices of `sleepSliceNanoseconds`, checking the
/// deadline, cancellation and the peer's liveness after every slice.
public struct WaitPolicy: Sendable, Equatable {
    /// How long to spin with `pause` first.
    public var spinNanoseconds: UInt64
    /// Until when (from the start of the wait) to keep yielding the core before sleeping.
    public var yieldNanoseconds: UInt64
    /// The longest single futex sleep; bounds how late a dead peer, a cancellation or a stall
    /// warning is noticed.
    public var sleepSliceNanoseconds: UInt64

    /// A policy; the defaults spin 1 µs, yield until 100 µs, sleep in 50 ms slices.
    public init(spinNanoseconds: UInt64 = 1_000, yieldNanoseconds: UInt64 = 100_000, sleepSliceNanoseconds: UInt64 = 50_000_000) {
        self.spinNanoseconds = spinNanoseconds
        self.yieldNanoseconds = yieldNanoseconds
        self.sleepSliceNanoseconds = sleepSliceNanoseconds
    }
}

/// One blocking wait, driven by closures so the writer and readers share the loop.
///
/// Threading: runs on the caller's thread; never spawns or hands off to another thread.
package struct AdaptiveWait {
    package let policy: WaitPolicy
    package let timeout: Timeout
    /// 0 disables stall warnings.
    package let stallIntervalNanoseconds: UInt64

    package init(policy: WaitPolicy, timeout: Timeout, stallIntervalNanoseconds: UInt64) {
        self.policy = policy
        self.timeout = timeout
        self.stallIntervalNanoseconds = stallIntervalNanoseconds
    }

    /// Returns once `ready()` holds.
    ///
    /// - `sleep(limit)`: block at most `limit` ns on a futex; it must re-check the condition
    ///   after announcing itself as a sleeper, so no wake-up is lost.
    /// - `check()`: throws when the peer is dead or gone; called after each sleep slice.
    /// - `stalled(waited)`: a warning hook, called every `stallIntervalNanoseconds`.
    /// - `timedOut(waited)`: the error to throw at the deadline.
    @inline(__always)
    package func run(
        until ready: () -> Bool,
        sleep: (UInt64) -> Void,
        check: () throws(CCLError) -> Void,
        stalled: (UInt64) -> Void,
        timedOut: (UInt64) -> CCLError,
        cancelled: () -> CCLError
    ) throws(CCLError) {
        if ready() { return }
        let start = monotonicNanoseconds()
        var now = start
        // Spin phase: check the clock only every 32 rounds.
        while now &- start < policy.spinNanoseconds {
            for _ in 0..<32 {
                if ready() { return }
                Futex.relax()
            }
            now = monotonicNanoseconds()
        }
        // Yield phase: hand the core to whoever we wait for.
        while now &- start < policy.yieldNanoseconds {
            Futex.yield()
            if ready() { return }
            now = monotonicNanoseconds()
        }
        // Sleep phase.
        let deadline = timeout.nanoseconds.map { limit in
            let (end, overflow) = start.addingReportingOverflow(limit)
            return overflow ? UInt64.max : end
        }
        var nextStall =
            stallIntervalNanoseconds > 0 && timeout != .indefinite
            ? start.addingReportingOverflow(stallIntervalNanoseconds).partialValue : UInt64.max
        while true {
            var limit = policy.sleepSliceNanoseconds
            if let deadline {
                if now >= deadline {
                    if ready() { return }
                    throw timedOut(now &- start)
                }
                limit = min(limit, deadline &- now)
            }
            sleep(limit)
            if ready() { return }
            if Task.isCancelled { throw cancelled() }
            try check()
            now = monotonicNanoseconds()
            if now >= nextStall {
                stalled(now &- start)
                nextStall = now.addingReportingOverflow(stallIntervalNanoseconds).partialValue
            }
        }
    }
}

/// "1.5 s", "250 ms": durations in messages.
package func describeDuration(_ nanoseconds: UInt64) -> String {
    if nanoseconds >= 1_000_000_000 {
        let tenths = nanoseconds / 100_000_000
        return "\(tenths / 10).\(tenths % 10) s"
    }
    if nanoseconds >= 1_000_000 { return "\(nanoseconds / 1_000_000) ms" }
    return "\(nanoseconds / 1_000) µs"
}

/// What is left of one call's timeout across its several waits. The clock starts at the first
/// wait, so a call that never has to wait never reads it (the fast path stays a few loads).
package struct CallBudget {
    package let timeout: Timeout
    private var start: UInt64 = 0

    package init(_ timeout: Timeout) { self.timeout = timeout }

    /// The timeout for the next wait.
    package mutating func next() -> Timeout {
        if start == 0 {
            start = monotonicNanoseconds()
            return timeout
        }
        return timeout.remaining(since: start)
    }
}

extension Timeout {
    /// What is left of this timeout `start` ns after it began (at least 0).
    package func remaining(since start: UInt64) -> Timeout {
        guard let limit = nanoseconds else { return .indefinite }
        let spent = monotonicNanoseconds() &- start
        return .nanoseconds(limit > spent ? limit - spent : 0)
    }
}
