import CCLCore
import Glibc

extension TCPConnection {
    /// Sends every buffer of `sends` on its connection and fills every buffer of `receives` from
    /// its own, all at once, until all are complete: a frame striped over several connections to
    /// one peer (`TCPOptions.connections`), or its send half alone on another thread.
    ///
    /// Like `exchange`: non-blocking tries on every unfinished side, the receiving connections'
    /// spin policy, then poll(2) on all of their descriptors; `timeout` bounds the whole call and
    /// errors name the connection that failed, or those still waiting. With `interrupted`, waits
    /// last at most `interruptCheckNanoseconds` and true ends the call with `.cancelled`.
    package static func exchangeAll(
        sends: [(connection: TCPConnection, buffer: UnsafeRawBufferPointer)],
        receives: [(connection: TCPConnection, buffer: UnsafeMutableRawBufferPointer)],
        timeout: Timeout,
        operation: String,
        interrupted: (() -> Bool)? = nil
    ) throws(CCLError) {
        var sent = [Int](repeating: 0, count: sends.count)
        var received = [Int](repeating: 0, count: receives.count)
        for side in sends where side.buffer.count > 0 { try side.connection.checkOpen(operation: operation) }
        for side in receives where side.buffer.count > 0 { try side.connection.checkOpen(operation: operation) }
        let deadline = SocketDeadline(timeout)
        let spin = receives.first?.connection.spin ?? sends.first?.connection.spin ?? SocketSpinPolicy()
        var idleSince: UInt64 = 0
        while true {
            var progressed = false
            var waiting: [pollfd] = []
            for (index, side) in sends.enumerated() where sent[index] < side.buffer.count {
                guard let base = side.buffer.baseAddress else { continue }
                do {
                    let count = try side.connection.trySend(base + sent[index], side.buffer.count - sent[index])
                    sent[index] += count
                    progressed = progressed || count > 0
                } catch {
                    throw side.connection.lost(
                        error, operation: operation, progress: "after sending \(sent[index]) of \(side.buffer.count) bytes")
                }
                if sent[index] < side.buffer.count { waiting.append(pollfd(fd: side.connection.fd, events: Int16(POLLOUT), revents: 0)) }
            }
            for (index, side) in receives.enumerated() where received[index] < side.buffer.count {
                guard let base = side.buffer.baseAddress else { continue }
                let progress = "after receiving \(received[index]) of \(side.buffer.count) bytes"
                let count: Int?
                do {
                    count = try side.connection.tryReceive(base + received[index], side.buffer.count - received[index])
                } catch {
                    throw side.connection.lost(error, operation: operation, progress: progress)
                }
                guard let count else {
                    throw side.connection.closedByPeer(
                        operation: operation, progress: "\(progress) (\(side.buffer.count - received[index]) bytes missing)")
                }
                received[index] += count
                progressed = progressed || count > 0
                if received[index] < side.buffer.count { waiting.append(pollfd(fd: side.connection.fd, events: Int16(POLLIN), revents: 0)) }
            }
            if waiting.isEmpty { return }
            if progressed {
                idleSince = 0
                continue
            }
            let now = monotonicNanoseconds()
            if idleSince == 0 { idleSince = now }
            if deadline.hasExpired(at: now) { throw timedOut(sends, sent, receives, received, deadline, now: now, operation: operation) }
            if spin.keepTrying(idle: now &- idleSince) { continue }
            do {
                _ = try pollSockets(waiting, deadline: interrupted == nil ? deadline : deadline.capped(atMost: interruptCheckNanoseconds))
            } catch {
                let connection = receives.first?.connection ?? sends.first?.connection
                throw CCLError.system(error, operation: operation, rank: connection?.rank, peer: connection?.peerLabel)
            }
            if let interrupted, interrupted() {
                let connection = receives.first?.connection ?? sends.first?.connection
                throw CCLError(
                    .cancelled, operation: operation, rank: connection?.rank, peer: connection?.peerLabel, "stopped by the caller")
            }
            idleSince = 0
        }
    }

    /// `.timeout` naming the connections still waiting and what each moved.
    private static func timedOut(
        _ sends: [(connection: TCPConnection, buffer: UnsafeRawBufferPointer)], _ sent: [Int],
        _ receives: [(connection: TCPConnection, buffer: UnsafeMutableRawBufferPointer)], _ received: [Int],
        _ deadline: SocketDeadline, now: UInt64, operation: String
    ) -> CCLError {
        var parts: [String] = []
        // One label per peer (its connections differ only in their ports).
        var peers: [(name: String, label: String)] = []
        func note(_ connection: TCPConnection) {
            let name = connection.peerName ?? connection.peerLabel
            if !peers.contains(where: { $0.name == name }) { peers.append((name, connection.peerLabel)) }
        }
        for (index, side) in sends.enumerated() where sent[index] < side.buffer.count {
            parts.append("sent \(sent[index]) of \(side.buffer.count) bytes on \(side.connection.localAddress)")
            note(side.connection)
        }
        for (index, side) in receives.enumerated() where received[index] < side.buffer.count {
            parts.append("received \(received[index]) of \(side.buffer.count) bytes on \(side.connection.localAddress)")
            note(side.connection)
        }
        let rank = (receives.first?.connection ?? sends.first?.connection)?.rank
        return CCLError(
            .timeout, operation: operation, rank: rank, peer: peers.map(\.label).joined(separator: " and "),
            "\(deadline.timedOutText(at: now)): \(parts.joined(separator: ", "))")
    }
}

/// Blocks in poll(2) until one of `descriptors` is ready or the deadline passes (as the one- and
/// two-descriptor `pollSockets`).
func pollSockets(_ descriptors: [pollfd], deadline: SocketDeadline) throws(SystemError) -> Bool {
    var fds = descriptors
    while true {
        let now = monotonicNanoseconds()
        if deadline.hasExpired(at: now) { return false }
        let result = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), deadline.pollMilliseconds(at: now)) }
        if result > 0 {
            if fds.contains(where: { $0.revents & Int16(POLLNVAL) != 0 }) { throw SystemError(call: "poll", errno: EBADF) }
            return true
        }
        if result == 0 { continue }
        let code = errno
        if code == EINTR { return true }
        throw SystemError(call: "poll", errno: code)
    }
}
