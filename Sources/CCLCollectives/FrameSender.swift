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
/// handling to pad it out. Ownership: `stop()` ends the thread (the communicator's deinit calls it);
/// the thread and its hand-offs are `JobThread`'s.
final class FrameSender: JobThread<FrameSender.Job, CCLError>, @unchecked Sendable {
    /// Payloads from this size go to the thread; smaller ones are not worth the hand-off.
    static let minimumBytes = 128 << 10
    /// Calls from this size (bytes per rank) use the thread: below it the hand-offs cost more
    /// than the overlap gains (measured here: 256 KiB and 1 MiB slower with it, 4 MiB and more
    /// faster).
    static let minimumCallBytes = 2 << 20

    /// Bytes to send on one connection.
    typealias Part = (connection: TCPConnection, buffer: UnsafeRawBufferPointer)

    enum Job {
        case payload([Part], Timeout)
        /// Frames with headers carrying `call` (the fingerprint words) and each one's length.
        case stream(TCPConnection, [UnsafeRawBufferPointer], call: (UInt64, UInt64, UInt64), Timeout)
    }

    /// Where the frame being sent ends, in the connection's `bytesSent` (read after `wait`).
    private(set) var frameEnd: UInt64 = 0
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: TCPCommunicator.headerBytes, alignment: 8)

    init() { super.init(name: "ccl-tcp-sender") }

    deinit { header.deallocate() }

    /// Starts sending each part on its connection (within `timeout`); `wait()` must follow.
    func post(_ parts: [Part], timeout: Timeout) {
        start(.payload(parts, timeout), permitted: 0)
    }

    /// Starts sending `frames` on `connection`, each as a header with `call` and its length, then
    /// its bytes, in order; those below `released` at once, the others as `release` allows. The
    /// memory of a frame must not change from its release until `wait()` returned.
    func postStream(
        _ connection: TCPConnection, _ frames: [UnsafeRawBufferPointer], call: (UInt64, UInt64, UInt64), released: Int,
        timeout: Timeout
    ) {
        start(.stream(connection, frames, call: call, timeout), permitted: released)
    }

    /// Lets the stream send its frames below `count`.
    func release(upTo count: Int) { permit(upTo: count) }

    override func run(_ job: Job) -> CCLError? {
        switch job {
        case .payload(let parts, let timeout): return send(parts, timeout: timeout)
        case .stream(let connection, let frames, let call, let timeout): return stream(frames, call: call, on: connection, timeout: timeout)
        }
    }

    /// Sends each frame once released; stops at the first error or a cancellation.
    private func stream(
        _ frames: [UnsafeRawBufferPointer], call: (UInt64, UInt64, UInt64), on connection: TCPConnection, timeout: Timeout
    ) -> CCLError? {
        let start = monotonicNanoseconds()
        frameEnd = connection.bytesSent
        for (index, frame) in frames.enumerated() {
            guard waitForPermission(index) else { return nil }
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
