import Atomics
import CCLCollectiveAPI
import CCLCore
import Dispatch

/// Reports an MPI call still running after the group's timeout: MPI calls cannot time out, so a
/// rank that never arrives leaves the others blocked inside MPI with nothing said. The report
/// names the group, this rank, the call and how long it has run; with `abortOnTimeout` it then
/// ends the job with `MPI_Abort`.
///
/// The caller's side costs two atomic stores (plain stores on x86-64) and one small copy per call
/// (no clock, no allocation, no reference counting): `enter` publishes the call and its number,
/// `leave` the number finished. A timer
/// on a global dispatch queue samples them every quarter timeout; a call still in flight across
/// samples spanning the timeout is reported once.
///
/// Threading: `enter`/`leave` (on `progress`) from the communicator's one calling thread; the
/// timer reads with a sequence check (a call described while it changes is not reported).
/// Ownership: `progress` points into memory the watchdog owns; the communicator that calls it
/// owns the watchdog.
final class MPIWatchdog: @unchecked Sendable {
    /// The caller's side: plain pointers, so that a call pays no reference counting.
    struct Progress {
        fileprivate let started: UnsafeAtomic<UInt64>
        fileprivate let finished: UnsafeAtomic<UInt64>
        fileprivate let slot: UnsafeMutablePointer<CollectiveCall>

        /// Call `number` (counting from 1) starts.
        @inline(__always)
        func enter(_ call: CollectiveCall, number: UInt64) {
            slot.pointee = call
            started.store(number, ordering: .releasing)
        }

        /// Call `number` is over.
        @inline(__always)
        func leave(_ number: UInt64) {
            finished.store(number, ordering: .releasing)
        }
    }

    let progress: Progress
    private var started: UnsafeAtomic<UInt64> { progress.started }
    private var finished: UnsafeAtomic<UInt64> { progress.finished }
    private var slot: UnsafeMutablePointer<CollectiveCall> { progress.slot }
    /// Nil without a timeout: then nothing reads the calls.
    private let timer: DispatchSourceTimer?
    private let timeoutNanoseconds: UInt64
    // Timer-queue state (the timer's handler runs serially).
    private var watched: UInt64 = 0
    private var firstSeen: UInt64 = 0
    private var reported: UInt64 = 0

    /// Watches calls against `timeout` (nil: records them only); `report` gets the message, on a
    /// dispatch queue's thread.
    init(timeout: UInt64?, report: @escaping @Sendable (String) -> Void) {
        timeoutNanoseconds = timeout ?? .max
        let slot = UnsafeMutablePointer<CollectiveCall>.allocate(capacity: 1)
        slot.initialize(to: CollectiveCall(.barrier, dtype: .uint8, count: 0))
        progress = Progress(started: .create(0), finished: .create(0), slot: slot)
        guard let timeout else {
            timer = nil
            return
        }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let interval = max(timeout / 4, 10_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(Int(interval)), repeating: .nanoseconds(Int(interval)), leeway: .milliseconds(10))
        self.timer = timer
        timer.setEventHandler { [weak self] in
            guard let self, let message = self.sample() else { return }
            report(message)
        }
        timer.resume()
    }

    deinit {
        timer?.setEventHandler {}
        timer?.cancel()
        slot.deinitialize(count: 1)
        slot.deallocate()
        started.destroy()
        finished.destroy()
    }

    /// The message for a call in flight longer than the timeout, once per call; else nil.
    private func sample() -> String? {
        let number = started.load(ordering: .acquiring)
        guard number != finished.load(ordering: .acquiring) else { return nil }
        let now = DispatchTime.now().uptimeNanoseconds
        guard number == watched else {
            watched = number
            firstSeen = now
            return nil
        }
        guard reported != number, now - firstSeen >= timeoutNanoseconds else { return nil }
        let call = slot.pointee
        // The call is described only if it is still the one in flight.
        guard started.load(ordering: .acquiring) == number, finished.load(ordering: .acquiring) != number else { return nil }
        reported = number
        let seconds = Double(now - firstSeen) / 1e9
        return "call #\(number), \(call), has been inside MPI for at least \(String(format: "%.1f", seconds)) s"
    }
}
