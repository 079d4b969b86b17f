import CCLCore
import CCLSystem
import Foundation

/// A thread of a TCP communicator's own that sends while the caller receives, so the copies in
/// and out of the kernel run on two cores (the overlap Gloo gets from its threads). Used for
/// calls of `minimumCallBytes` and more (`TCPOptions.sendThread`), in two ways:
/// - `post`: one frame's payload (its stripes, one per connection), sent while the caller
///   receives the frame coming in;
/// - `postStream`: a call's whole sequence of frames to one peer (header and payload each), each
///   sent once the caller `release`s it: the caller receives and reduces frame k while the
///   thread sends what earlier frames made final (`StreamedRing`).
///
/// Threading: one caller posts a job, may release frames and look at `failure`, then waits;
/// the thread touches only the send side of the connection it is given (`TCPConnection` allows
/// one sending and one receiving thread), and only memory the caller released. The job has the
/// caller's deadline, and `cancel()` (the caller's receive failed) stops it within
/// `TCPConnection.interruptCheckNanoseconds`, so `wait` never outlasts either; a cancelled
/// frame is left part-sent: `frameEnd` says where it ends, for the communicator's failure
/// handling to pad it out. Ownership: `stop()` ends the thread (the communicator's deinit calls it).
final class FrameSender: @unchecked Sendable {
    /// Payloads from this size go to the thread; smaller ones are not worth the hand-off.
    static let minimumBytes = 128 << 10
    /// Calls from this size (bytes per rank) use the thread: below it the hand-offs cost more
    /// than the overlap gains (measured here: 256 KiB and 1 MiB slower with it, 4 MiB and more
    /// faster).
    static let minimumCallBytes = 2 << 20

    /// Bytes to send on one connection.
    typealias Part = (connection: TCPConnection, buffer: UnsafeRawBufferPointer)

    private enum Job {
        case payload([Part], Timeout)
        /// Frames with headers carrying `call` (the fingerprint words) and each one's length.
        case stream(TCPConnection, [UnsafeRawBufferPointer], call: (UInt64, UInt64, UInt64), Timeout)
    }

    private let condition = NSCondition()
    private var job: Job?
    private var finished = false
    private var outcome: CCLError?
    private var stopping = false
    private var cancelled = false
    /// Frames of the stream below this index may be sent.
    private var released = 0
    /// Where the frame being sent ends, in the connection's `bytesSent` (read after `wait`).
    private(set) var frameEnd: UInt64 = 0
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: TCPCommunicator.headerBytes, alignment: 8)

    init() {
        let thread = Thread { [self] in serve() }
        thread.name = "ccl-tcp-sender"
        thread.start()
    }

    deinit { header.deallocate() }

    /// Ends the thread once it finished what it was given.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Starts sending each part on its connection (within `timeout`); `wait()` must follow.
    func post(_ parts: [Part], timeout: Timeout) {
        start(.payload(parts, timeout), released: 0)
    }

    /// Starts sending `frames` on `connection`, each as a header with `call` and its length, then
    /// its bytes, in order; those below `released` at once, the others as `release` allows. The
    /// memory of a frame must not change from its release until `wait()` returned.
    func postStream(
        _ connection: TCPConnection, _ frames: [UnsafeRawBufferPointer], call: (UInt64, UInt64, UInt64), released: Int,
        timeout: Timeout
    ) {
        start(.stream(connection, frames, call: call, timeout), released: released)
    }

    private func start(_ posted: Job, released count: Int) {
        condition.lock()
        job = posted
        finished = false
        outcome = nil
        cancelled = false
        released = count
        condition.broadcast()
        condition.unlock()
    }

    /// Lets the stream send its frames below `count`.
    func release(upTo count: Int) {
        condition.lock()
        if count > released {
            released = count
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Asks the posted job to stop where it is (`wait()` still follows).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    private var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// The job's error when it already ended with one (it does not wait).
    var failure: CCLError? {
        condition.lock()
        defer { condition.unlock() }
        return finished ? outcome : nil
    }

    /// Waits until the posted job is done, or stopped; its error, if any.
    func wait() -> CCLError? {
        condition.lock()
        defer { condition.unlock() }
        while !finished { condition.wait() }
        finished = false
        return outcome
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
            let failure: CCLError?
            switch posted {
            case .payload(let parts, let timeout):
                failure = send(parts, timeout: timeout)
            case .stream(let connection, let frames, let call, let timeout):
                failure = stream(frames, call: call, on: connection, timeout: timeout)
            }
            condition.lock()
            job = nil
            outcome = failure
            finished = true
            condition.broadcast()
        }
    }

    /// Sends each frame once released; stops at the first error or a cancellation.
    private func stream(
        _ frames: [UnsafeRawBufferPointer], call: (UInt64, UInt64, UInt64), on connection: TCPConnection, timeout: Timeout
    ) -> CCLError? {
        let start = monotonicNanoseconds()
        frameEnd = connection.bytesSent
        for (index, frame) in frames.enumerated() {
            condition.lock()
            while released <= index, !cancelled { condition.wait() }
            let stop = cancelled
            condition.unlock()
            if stop { return nil }
            header.storeBytes(of: call.0.littleEndian, toByteOffset: 0, as: UInt64.self)
            header.storeBytes(of: call.1.littleEndian, toByteOffset: 8, as: UInt64.self)
            header.storeBytes(of: call.2.littleEndian, toByteOffset: 16, as: UInt64.self)
            header.storeBytes(of: UInt64(frame.count).littleEndian, toByteOffset: 24, as: UInt64.self)
            frameEnd = connection.bytesSent &+ UInt64(header.count + frame.count)
            let left = timeout.remaining(since: start)
            if let failure = send([(connection, UnsafeRawBufferPointer(header))], timeout: left) { return failure }
            if isCancelled { return nil }
            if let failure = send([(connection, frame)], timeout: left) { return failure }
            if isCancelled { return nil }
        }
        return nil
    }

    /// Sends `parts` (on different connections) until all are out (nil), the deadline passes
    /// (its error) or the caller cancels (nil: the caller reports its own error).
    private func send(_ parts: [Part], timeout: Timeout) -> CCLError? {
        do {
            try TCPConnection.exchangeAll(
                sends: parts, receives: [], timeout: timeout, operation: TCPCommunicator.pendingLabel,
                interrupted: { [self] in isCancelled })
            return nil
        } catch {
            return error.code == .cancelled ? nil : error
        }
    }
}
