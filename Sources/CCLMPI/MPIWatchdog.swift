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
        /// The call in flight, as atomic words (read by the timer while it may change).
        fileprivate let slot: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
        fileprivate static let words = (MemoryLayout<CollectiveCall>.size + 7) / 8

        /// Call `number` (counting from 1) starts.
        @inline(__always)
        func enter(_ call: CollectiveCall, number: UInt64) {
            // Orders the previous call's `leave` before these words (see `MPIWatchdog.sample`).
            atomicMemoryFence(ordering: .releasing)
            withUnsafeBytes(of: call) { bytes in
                for word in 0..<Self.words {
                    var value: UInt64 = 0
                    let start = word * 8, end = Swift.min(start + 8, bytes.count)
                    withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<end])) }
                    UnsafeAtomic<UInt64>(at: slot + word).store(value, ordering: .relaxed)
                }
            }
            started.store(number, ordering: .releasing)
        }

        /// Call `number` is over.
        @inline(__always)
        func leave(_ number: UInt64) {
            finished.store(number, ordering: .releasing)
        }

        /// The words' bytes; a call only once the caller has checked (see `sample`) that no
        /// `enter` wrote them meanwhile.
        fileprivate func words() -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: Self.words * 8)
            for word in 0..<Self.words {
                var value = UnsafeAtomic<UInt64>(at: slot + word).load(ordering: .relaxed)
                withUnsafeBytes(of: &value) { bytes.replaceSubrange((word * 8)..<(word * 8 + 8), with: $0) }
            }
            return bytes
        }
    }

    let progress: Progress
    private var started: UnsafeAtomic<UInt64> { progress.started }
    private var finished: UnsafeAtomic<UInt64> { progress.finished }
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
        let slot = UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>.allocate(capacity: Progress.words)
        slot.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: Progress.words)
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
        progress.slot.deinitialize(count: Progress.words)
        progress.slot.deallocate()
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
        // A sequence lock: the words describe call `number` only if it was still in flight after
        // they were read. `enter` writes the next call's words after this call's `leave`, behind a
        // release fence; the acquire fence here makes that `leave` visible to the check below
        // whenever the words read were the next call's.
        let words = progress.words()
        atomicMemoryFence(ordering: .acquiring)
        guard started.load(ordering: .relaxed) == number, finished.load(ordering: .relaxed) != number else { return nil }
        let call = words.withUnsafeBytes { $0.loadUnaligned(as: CollectiveCall.self) }
        reported = number
        let seconds = Double(now - firstSeen) / 1e9
        return "call #\(number), \(call), has been inside MPI for at least \(String(format: "%.1f", seconds)) s"
    }
}
