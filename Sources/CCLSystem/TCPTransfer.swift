import CCLCore
import Glibc

extension TCPConnection {
    /// How long an interruptible wait (`exchange(…, interrupted:)`) sleeps between checks.
    package static let interruptCheckNanoseconds: UInt64 = 10_000_000

    /// Sends every byte of `buffer` within `timeout`.
    ///
    /// Fails with `.timeout` (bytes sent so far, time waited), `.peerDead` (reset, broken pipe).
    package func sendAll(_ buffer: UnsafeRawBufferPointer, timeout: Timeout, operation: String = "send") throws(CCLError) {
        _ = try Self.exchange(send: (self, buffer), receive: nil, timeout: timeout, operation: operation)
    }

    /// Fills `buffer` completely within `timeout`.
    ///
    /// Fails with `.peerDead` when the peer closes first (saying how many bytes were missing) or
    /// resets, and with `.timeout` (bytes received so far, time waited).
    package func receiveAll(into buffer: UnsafeMutableRawBufferPointer, timeout: Timeout, operation: String = "receive") throws(CCLError) {
        _ = try Self.exchange(send: nil, receive: (self, buffer), timeout: timeout, operation: operation)
    }

    /// Sends one buffer and receives another at the same time, until both are complete.
    ///
    /// The two may use the same connection or two different ones (a ring step sends to the next
    /// rank while receiving from the previous). Each round tries a non-blocking send and a
    /// non-blocking receive; when neither moves, it spins per the receiving connection's
    /// `spin` policy, then blocks in poll(2) on both descriptors. Because the receive keeps
    /// draining while the send is stuck on a full socket buffer, two peers that send large
    /// buffers to each other at once never deadlock.
    ///
    /// `timeout` bounds the whole call. Errors name the peer whose side failed.
    ///
    /// With `receiveAtLeast`, the receive is complete once that many bytes arrived (it never
    /// reads past the buffer); the return value is how many did. A caller that expects a small
    /// frame reads header and payload with one `recv` this way, and still sees a short or foreign
    /// frame's header without waiting for bytes that will not come.
    ///
    /// With `interrupted`, a wait in poll(2) lasts at most `interruptCheckNanoseconds`, after
    /// which `interrupted()` is asked; true ends the call with `.cancelled` (what moved so far
    /// stays moved). A thread that must give up when another one fails waits this way.
    @discardableResult
    package static func exchange(
        send: (connection: TCPConnection, buffer: UnsafeRawBufferPointer)?,
        receive: (connection: TCPConnection, buffer: UnsafeMutableRawBufferPointer)?,
        receiveAtLeast: Int? = nil,
        timeout: Timeout,
        operation: String = "exchange",
        interrupted: (() -> Bool)? = nil
    ) throws(CCLError) -> Int {
        var transfer = Transfer(send: send, receive: receive, minimum: receiveAtLeast)
        if transfer.isComplete { return transfer.received }
        if let connection = send?.connection { try connection.checkOpen(operation: operation) }
        if let connection = receive?.connection { try connection.checkOpen(operation: operation) }
        let deadline = SocketDeadline(timeout)
        let spin = receive?.connection.spin ?? send?.connection.spin ?? SocketSpinPolicy()
        var idleSince: UInt64 = 0  // 0: the last round made progress
        while true {
            let progressed = try transfer.step(operation: operation)
            if transfer.isComplete { return transfer.received }
            if progressed {
                idleSince = 0
                continue
            }
            let now = monotonicNanoseconds()
            if idleSince == 0 { idleSince = now }
            if deadline.hasExpired(at: now) { throw transfer.timedOut(deadline, now: now, operation: operation) }
            if spin.keepTrying(idle: now &- idleSince) { continue }
            let ready: Bool
            do {
                ready = try transfer.wait(deadline: interrupted == nil ? deadline : deadline.capped(atMost: interruptCheckNanoseconds))
            } catch {
                let connection = receive?.connection ?? send?.connection
                throw CCLError.system(error, operation: operation, rank: connection?.rank, peer: connection?.peerLabel)
            }
            if let interrupted, interrupted() {
                let connection = receive?.connection ?? send?.connection
                throw CCLError(
                    .cancelled, operation: operation, rank: connection?.rank, peer: connection?.peerLabel,
                    "stopped by the caller: \(transfer.progress)")
            }
            if !ready, deadline.hasExpired(at: monotonicNanoseconds()) {
                throw transfer.timedOut(deadline, now: monotonicNanoseconds(), operation: operation)
            }
            idleSince = 0
        }
    }
}

/// The state of one `exchange`: what is left to send and to receive.
private struct Transfer {
    let sender: TCPConnection?
    let sendBase: UnsafeRawPointer?
    let sendTotal: Int
    var sent = 0
    let receiver: TCPConnection?
    let receiveBase: UnsafeMutableRawPointer?
    let receiveTotal: Int
    /// The receive is complete at this many bytes (at most `receiveTotal`).
    let receiveMinimum: Int
    var received = 0

    init(
        send: (connection: TCPConnection, buffer: UnsafeRawBufferPointer)?,
        receive: (connection: TCPConnection, buffer: UnsafeMutableRawBufferPointer)?,
        minimum: Int?
    ) {
        sender = send?.connection
        sendBase = send?.buffer.baseAddress
        sendTotal = sendBase == nil ? 0 : send?.buffer.count ?? 0
        receiver = receive?.connection
        receiveBase = receive?.buffer.baseAddress
        receiveTotal = receiveBase == nil ? 0 : receive?.buffer.count ?? 0
        receiveMinimum = min(receiveTotal, max(0, minimum ?? receiveTotal))
    }

    var isComplete: Bool { sent == sendTotal && received >= receiveMinimum }

    /// One non-blocking try on each unfinished side; true when either moved bytes.
    @inline(__always)
    mutating func step(operation: String) throws(CCLError) -> Bool {
        var progressed = false
        if sent < sendTotal, let sender, let sendBase {
            do {
                let count = try sender.trySend(sendBase + sent, sendTotal - sent)
                sent += count
                progressed = count > 0
            } catch {
                throw sender.lost(error, operation: operation, progress: sendProgress)
            }
        }
        if received < receiveMinimum, let receiver, let receiveBase {
            let count: Int?
            do {
                count = try receiver.tryReceive(receiveBase + received, receiveTotal - received)
            } catch {
                throw receiver.lost(error, operation: operation, progress: receiveProgress)
            }
            guard let count else {
                throw receiver.closedByPeer(
                    operation: operation, progress: "\(receiveProgress) (\(receiveTotal - received) bytes missing)")
            }
            received += count
            progressed = progressed || count > 0
        }
        return progressed
    }

    var sendProgress: String { "after sending \(sent) of \(sendTotal) bytes" }
    /// Both sides' progress, for an interrupted transfer.
    var progress: String {
        [
            sendTotal > 0 ? "sent \(sent) of \(sendTotal) bytes" : nil,
            receiveTotal > 0 ? "received \(received) of \(receiveTotal) bytes" : nil,
        ]
        .compactMap { $0 }.joined(separator: ", ")
    }
    var receiveProgress: String { "after receiving \(received) of \(receiveTotal) bytes" }

    /// poll(2) on the unfinished sides' descriptors (one descriptor when both use the same connection).
    func wait(deadline: SocketDeadline) throws(SystemError) -> Bool {
        let sending = sent < sendTotal ? sender : nil
        let receiving = received < receiveMinimum ? receiver : nil
        if let sending, let receiving, sending !== receiving {
            return try pollSockets(
                pollfd(fd: sending.fd, events: Int16(POLLOUT), revents: 0),
                pollfd(fd: receiving.fd, events: Int16(POLLIN), revents: 0), deadline: deadline)
        }
        let events = Int16(sending == nil ? 0 : POLLOUT) | Int16(receiving == nil ? 0 : POLLIN)
        guard let connection = sending ?? receiving else { return true }
        return try pollSockets(pollfd(fd: connection.fd, events: events, revents: 0), deadline: deadline)
    }

    /// `.timeout` naming the side(s) still waiting, what they moved, and how long was waited.
    func timedOut(_ deadline: SocketDeadline, now: UInt64, operation: String) -> CCLError {
        let sending = sent < sendTotal ? sender : nil
        let receiving = received < receiveMinimum ? receiver : nil
        var parts: [String] = []
        if sendTotal > 0 { parts.append("sent \(sent) of \(sendTotal) bytes") }
        if receiveTotal > 0 { parts.append("received \(received) of \(receiveTotal) bytes") }
        let peer: String?
        if let sending, let receiving, sending !== receiving {
            peer = "\(sending.peerLabel) (sending) and \(receiving.peerLabel) (receiving)"
        } else {
            peer = (sending ?? receiving)?.peerLabel
        }
        let rank = (sending ?? receiving)?.rank
        return CCLError(
            .timeout, operation: operation, rank: rank, peer: peer,
            "\(deadline.timedOutText(at: now)): \(parts.joined(separator: ", "))")
    }
}
