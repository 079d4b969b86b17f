import CCLCore
import CCLSystem
import Foundation

/// A thread of a TCP communicator's own that runs one posted job at a time (`FrameSender`,
/// `FrameReceiver` subclass it and override `run`): the job's items (frames) are numbered, item k
/// may be worked on once the caller `permit`s it, and the job counts what it finished in
/// `progress`; the caller can `cancel`, look at the `failure` of a job that ended, and `wait`.
///
/// Threading: one caller posts, permits, cancels and waits; everything shared is under one
/// condition lock, and waiting on it is how the caller and the thread hand memory over.
/// Ownership: `stop()` ends the thread once its job is done (the communicator's deinit calls it).
class JobThread<Job, Failure>: @unchecked Sendable {
    private let condition = NSCondition()
    private var job: Job?
    private var finished = false
    private var outcome: Failure?
    private var stopping = false
    private var cancelled = false
    private var permitted = 0
    private var done = 0

    init(name: String) {
        let thread = Thread { [self] in serve() }
        thread.name = name
        thread.start()
    }

    /// Does `job` on the thread; its failure, or nil when done or cancelled.
    func run(_ job: Job) -> Failure? { nil }

    /// Ends the thread once it finished what it was given.
    func stop() {
        locked {
            stopping = true
            condition.broadcast()
        }
    }

    /// Starts `posted`, its items below `permitted` allowed at once; `wait()` must follow.
    func start(_ posted: Job, permitted count: Int) {
        locked {
            job = posted
            finished = false
            outcome = nil
            cancelled = false
            permitted = count
            done = 0
            condition.broadcast()
        }
    }

    /// Lets the job work on its items below `count`.
    func permit(upTo count: Int) {
        locked {
            if count > permitted {
                permitted = count
                condition.broadcast()
            }
        }
    }

    /// Asks the job to stop where it is (`wait()` still follows).
    func cancel() {
        locked {
            cancelled = true
            condition.broadcast()
        }
    }

    var isCancelled: Bool { locked { cancelled } }

    /// The job's failure when it already ended with one (it does not wait).
    var failure: Failure? { locked { finished ? outcome : nil } }

    /// Waits until the job ended; its failure, if any (the same again until the next job).
    func wait() -> Failure? {
        locked {
            while !finished { condition.wait() }
            return outcome
        }
    }

    /// In `run`: waits until item `index` is permitted; false when the job was cancelled.
    func waitForPermission(_ index: Int) -> Bool {
        locked {
            while permitted <= index, !cancelled { condition.wait() }
            return !cancelled
        }
    }

    /// In `run`: the items below `count` are finished.
    func progress(_ count: Int) {
        locked {
            done = count
            condition.broadcast()
        }
    }

    /// Waits until item `index` is finished; false when the job ended without it or `giveUp()`,
    /// asked every `TCPConnection.interruptCheckNanoseconds` of waiting, said so.
    func waitForProgress(_ index: Int, giveUp: () -> Bool) -> Bool {
        locked {
            while done <= index, !finished {
                let slice = Date(timeIntervalSinceNow: Double(TCPConnection.interruptCheckNanoseconds) / 1e9)
                if !condition.wait(until: slice) {
                    condition.unlock()
                    let stop = giveUp()
                    condition.lock()
                    if stop { break }
                }
            }
            return done > index
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    private func serve() {
        condition.lock()
        while true {
            while job == nil, !stopping { condition.wait() }
            guard let posted = job, !stopping else {
                condition.unlock()
                return
            }
            condition.unlock()
            let failure = run(posted)
            condition.lock()
            job = nil
            outcome = failure
            finished = true
            condition.broadcast()
        }
    }
}
