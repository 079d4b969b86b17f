import Atomics
import CCLSystem
import Foundation

/// The floor under every sleeping waiter's wake-up (the queue's readers, idle collectives): a
/// thread asleep in `FUTEX_WAIT`, woken by `FUTEX_WAKE`; the sample is the time from just
/// before the store to the sleeper running again. `Benchmarks/futex_wake_floor.c` measures the
/// same between two processes. Used by `ccl doctor` and beside `ccl bench queue`'s wake-up.
///
/// One sample per probe: `armed()` starts the sleeper, `wake()` ends it.
final class WakeProbe: @unchecked Sendable {
    private let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    private var wokeAt: UInt64 = 0
    private let done = DispatchSemaphore(value: 0)

    private init() { word.initialize(to: 0) }
    deinit { word.deallocate() }

    /// A probe whose sleeper thread is (about to be) asleep on its word.
    static func armed() -> WakeProbe {
        let probe = WakeProbe()
        let thread = Thread {
            probe.sleepUntilWoken()
            probe.done.signal()
        }
        thread.start()
        return probe
    }

    /// Wakes the sleeper; the nanoseconds until it ran, nil when it did not run within 5 s.
    func wake() -> UInt64? {
        let sent = monotonicNanoseconds()
        UnsafeAtomic<UInt32>(at: storage).store(1, ordering: .releasing)
        Futex.wake(word)
        guard done.wait(timeout: .now() + 5) == .success else { return nil }
        return wokeAt &- sent
    }

    /// Sleeps until `wake` has stored 1 (re-checking after every return from the futex).
    private func sleepUntilWoken() {
        while UnsafeAtomic<UInt32>(at: storage).load(ordering: .acquiring) == 0 {
            // Asleep for as long as it takes (an hour at most): a shorter timeout would wake it
            // during the idle time it is meant to spend asleep.
            _ = Futex.wait(word, expected: 0, timeoutNanoseconds: 3_600_000_000_000)
        }
        wokeAt = monotonicNanoseconds()
    }

    private var storage: UnsafeMutablePointer<UnsafeAtomic<UInt32>.Storage> {
        UnsafeMutableRawPointer(word).assumingMemoryBound(to: UnsafeAtomic<UInt32>.Storage.self)
    }
}
