import CCLCore
import CCLSystem
import Foundation

/// A thread of a TCP communicator's own that sends one large frame's payload while the caller
/// receives the frame coming in, so the two copies run on two cores (the overlap Gloo gets from
/// its threads). Used for calls of `minimumCallBytes` and more (`TCPOptions.sendThread`).
///
/// Threading: one caller posts a payload, receives, then waits for the send; the thread touches
/// only the send side of the connection it is given (`TCPConnection` allows one sending and one
/// receiving thread). The send has the caller's deadline, and `cancel()` (the caller's receive
/// failed) stops it within a slice of 10 ms, so `wait` never outlasts either; a cancelled frame
/// is left part-sent, which the communicator's failure handling pads out from `bytesSent`.
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
    private var cancelled = false
    /// How long one send attempt waits before looking for a cancellation.
    static let sliceNanoseconds: UInt64 = 10_000_000

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
        cancelled = false
        condition.broadcast()
        condition.unlock()
    }

    /// Asks the posted send to stop where it is (`wait()` still follows).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.unlock()
    }

    private var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// Waits until the posted payload is sent, or its send stopped; its error, if any.
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
            let failure = send(payload, on: connection, timeout: timeout)
            condition.lock()
            job = nil
            outcome = .some(failure)
            condition.broadcast()
        }
    }

    /// Sends `payload` in attempts of at most a slice each, until it is all out, the deadline
    /// passes (its error) or the caller cancels (nil: the caller reports its own error).
    private func send(_ payload: UnsafeRawBufferPointer, on connection: TCPConnection, timeout: Timeout) -> CCLError? {
        let start = monotonicNanoseconds(), first = connection.bytesSent
        let deadline = timeout.nanoseconds.map { start.addingReportingOverflow($0).partialValue }
        while true {
            let done = Int(connection.bytesSent &- first)
            guard done < payload.count else { return nil }
            let now = monotonicNanoseconds()
            var slice = Self.sliceNanoseconds
            if let deadline { slice = min(slice, deadline > now ? deadline - now : 0) }
            do {
                _ = try TCPConnection.exchange(
                    send: (connection, UnsafeRawBufferPointer(rebasing: payload[done...])), receive: nil,
                    timeout: .nanoseconds(slice), operation: TCPCommunicator.pendingLabel)
                return nil
            } catch {
                guard error.code == .timeout, !isCancelled else { return isCancelled ? nil : error }
                if let deadline, monotonicNanoseconds() >= deadline { return error }
            }
        }
    }
}
