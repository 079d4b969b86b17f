import CCLCore
import CCLSystem
import Foundation

/// A thread of a TCP communicator's own that sends one large frame's payload while the caller
/// receives the frame coming in, so the two copies run on two cores (the overlap Gloo gets from
/// its threads). Used for calls of `minimumCallBytes` and more (`TCPOptions.sendThread`).
///
/// Threading: one caller posts a payload, receives, then waits for the send; the thread touches
/// only the send side of the connection it is given (`TCPConnection` allows one sending and one
/// receiving thread). The send has the caller's deadline, so `wait` returns by then at the latest.
/// Ownership: `stop()` ends the thread (the communicator's deinit calls it).
final class FrameSender: @unchecked Sendable {
    /// Payloads from this size go to the thread; smaller ones are not worth the hand-off.
    static let minimumBytes = 128 << 10
    /// Calls from this size (bytes per rank) use the thread: below it the hand-offs cost more
    /// than the overlap gains (measured here: 256 KiB and 1 MiB slower with it, 4 MiB and more
    /// faster).
    static let minimumCallBytes = 2 << 20

    private let condition = NSCondition()
    private var job: (connection: TCPConnection, payload: UnsafeRawBufferPointer, timeout: Timeout)?
    private var outcome: CCLError??
    private var stopping = false

    init() {
        let thread = Thread { [self] in serve() }
        thread.name = "ccl-tcp-sender"
        thread.start()
    }

    /// Ends the thread once it finished what it was given.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Starts sending `payload` on `connection` (within `timeout`); `wait()` must follow.
    func post(_ connection: TCPConnection, _ payload: UnsafeRawBufferPointer, timeout: Timeout) {
        condition.lock()
        job = (connection, payload, timeout)
        outcome = nil
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the posted payload is sent; its error, if any.
    func wait() -> CCLError? {
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil { condition.wait() }
        let result = outcome ?? nil
        outcome = nil
        return result
    }

    private func serve() {
        condition.lock()
        while true {
            while job == nil, !stopping { condition.wait() }
            guard let (connection, payload, timeout) = job, !stopping else {
                condition.unlock()
                return
            }
            condition.unlock()
            var failure: CCLError?
            do {
                _ = try TCPConnection.exchange(
                    send: (connection, payload), receive: nil, timeout: timeout, operation: TCPCommunicator.pendingLabel)
            } catch {
                failure = error
            }
            condition.lock()
            job = nil
            outcome = .some(failure)
            condition.broadcast()
        }
    }
}
