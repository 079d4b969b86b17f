import CCLCore
import CCLSystem
import Foundation

/// A thread of a TCP communicator's own that receives a streamed call's frames (`StreamedRing`)
/// while the caller reduces the ones already in, and `FrameSender` sends: receiving, reducing
/// and sending each on a core of their own (`TCPOptions.receiveThread`).
///
/// A job is the call's incoming frames in order, each with the buffer it lands in; frame k is
/// received once the caller `allow`ed it (its buffer is free) and counted in `received` once all
/// of it is there. The header of each must be the expected one with the frame's length; when it
/// is not (an abort notice, a frame of another call) the job ends there with `.foreignHeader`,
/// the header left in the communicator's header buffer for the caller to read.
///
/// Threading: one caller posts a job, allows frames, waits for them, then waits for the end; the
/// thread touches only the receive side of the connection (`TCPConnection` allows one sending
/// and one receiving thread), the header buffer and the buffers of allowed frames. The job has
/// the caller's deadline, and `cancel()` stops it within `TCPConnection.interruptCheckNanoseconds`.
/// Ownership: `stop()` ends the thread (the communicator's deinit calls it); the thread and its
/// hand-offs are `JobThread`'s.
final class FrameReceiver: JobThread<FrameReceiver.Job, FrameReceiver.Failure>, @unchecked Sendable {
    /// How a job ended early.
    enum Failure {
        /// The socket failed or timed out.
        case error(CCLError)
        /// Frame `index` began with another header (in the header buffer).
        case foreignHeader(index: Int)
    }

    struct Job {
        let connection: TCPConnection
        let targets: [UnsafeMutableRawBufferPointer]
        let header: UnsafeMutableRawBufferPointer
        let expected: (UInt64, UInt64, UInt64)
        let timeout: Timeout
    }

    init() { super.init(name: "ccl-tcp-receiver") }

    /// Starts receiving into `targets` in order from `connection` (within `timeout`), each frame's
    /// header into `header` and checked against `expected` and the target's size; those below
    /// `allowed` at once. `finish()` must follow.
    func post(
        _ connection: TCPConnection, into targets: [UnsafeMutableRawBufferPointer], header: UnsafeMutableRawBufferPointer,
        expected: (UInt64, UInt64, UInt64), allowed count: Int, timeout: Timeout
    ) {
        start(Job(connection: connection, targets: targets, header: header, expected: expected, timeout: timeout), permitted: count)
    }

    /// Lets the frames below `count` be received (their buffers are free).
    func allow(upTo count: Int) { permit(upTo: count) }

    /// Waits until frame `index` is in; false when the job ended without it (`finish()` says
    /// why) or `giveUp()`, asked every 10 ms of waiting, said so.
    func waitFor(_ index: Int, giveUp: () -> Bool) -> Bool { waitForProgress(index, giveUp: giveUp) }

    /// Waits until the job ended; how it failed, if it did (again the same until the next job).
    func finish() -> Failure? { wait() }

    override func run(_ job: Job) -> Failure? {
        let start = monotonicNanoseconds()
        for (index, target) in job.targets.enumerated() {
            guard waitForPermission(index) else { return nil }
            do {
                try receiveAll(job.header, job.connection, job.timeout.remaining(since: start))
                let raw = UnsafeRawBufferPointer(job.header)
                let words = (
                    UInt64(littleEndian: raw.load(fromByteOffset: 0, as: UInt64.self)),
                    UInt64(littleEndian: raw.load(fromByteOffset: 8, as: UInt64.self)),
                    UInt64(littleEndian: raw.load(fromByteOffset: 16, as: UInt64.self))
                )
                let length = UInt64(littleEndian: raw.load(fromByteOffset: 24, as: UInt64.self))
                guard words == job.expected, length == UInt64(target.count) else { return .foreignHeader(index: index) }
                try receiveAll(target, job.connection, job.timeout.remaining(since: start))
            } catch {
                return error.code == .cancelled ? nil : .error(error)
            }
            progress(index + 1)
        }
        return nil
    }

    private func receiveAll(_ buffer: UnsafeMutableRawBufferPointer, _ connection: TCPConnection, _ timeout: Timeout) throws(CCLError) {
        try TCPConnection.exchange(
            send: nil, receive: (connection, buffer), timeout: timeout, operation: TCPCommunicator.pendingLabel,
            interrupted: { [self] in isCancelled })
    }
}
