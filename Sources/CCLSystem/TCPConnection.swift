import CCLCore
import Glibc

/// One connected TCP socket to a peer, driven on the caller's thread.
///
/// The socket is non-blocking with TCP_NODELAY on. `sendAll`, `receiveAll` and `exchange` (in
/// TCPTransfer.swift) wait up to a timeout; `sendSome` and `receiveSome` never wait, so a caller
/// can drive many connections itself, polling `fd`.
///
/// Ownership: the object owns the descriptor and closes it exactly once, in `close()` or
/// `deinit`. Share the reference, never the number: do not close, dup or wrap `fd` elsewhere.
///
/// Threading: `@unchecked Sendable` so it can be handed to the thread that uses it. Use it from
/// one thread at a time; the one exception is one thread that only sends and another that only
/// receives, provided nobody changes `peerName`, `rank` or `spin` or calls `close()` meanwhile.
package final class TCPConnection: @unchecked Sendable {
    /// The descriptor, for poll(2); -1 once closed.
    package private(set) var fd: Int32
    package let peerAddress: SocketAddress
    package let localAddress: SocketAddress
    /// Who the peer is, e.g. "rank 3"; errors then say "rank 3 at 10.0.0.2:4567".
    package var peerName: String?
    /// This process's rank, put into errors.
    package var rank: Int?
    /// How waits spin before blocking in poll(2).
    package var spin: SocketSpinPolicy
    /// Every byte sent on this connection so far (a sender that must finish a frame it began
    /// knows from this how much of it went out).
    package private(set) var bytesSent: UInt64 = 0

    init(fd: Int32, peer: SocketAddress, local: SocketAddress, spin: SocketSpinPolicy) {
        self.fd = fd
        self.peerAddress = peer
        self.localAddress = local
        self.spin = spin
    }

    deinit { close() }

    /// "10.0.0.2:4567", "[::1]:4567".
    package var peerDescription: String { peerAddress.description }

    /// The peer as errors name it.
    package var peerLabel: String { peerName.map { "\($0) at \(peerDescription)" } ?? peerDescription }

    /// Closes the socket (the peer sees end of stream); later calls fail. Idempotent.
    package func close() {
        if fd >= 0 {
            closeDescriptor(fd)
            fd = -1
        }
    }

    // MARK: Connecting

    /// Connects to `host:port`, retrying while nobody listens yet.
    ///
    /// Refused, unreachable and reset attempts are retried with a backoff from 1 ms up to 100 ms,
    /// over every address the host resolves to, until `timeout`; then it fails with `.timeout`
    /// naming the last error. Other errors fail at once. When the host has several addresses, one
    /// that does not answer is given up after 1 s for the next.
    package static func connect(
        host: String, port: Int, timeout: Timeout, options: TCPSocketOptions = .init(), operation: String? = nil
    ) throws(CCLError) -> TCPConnection {
        let target = SocketAddressSpec(host: host, port: port)
        let operation = operation ?? "connect to \(target)"
        try PortNumber.check(port, in: PortNumber.connectable, operation: operation)
        let deadline = SocketDeadline(timeout)
        let addresses = try target.resolve(operation: operation)
        var lastError: SystemError?
        var attempts = 0
        var backoff: UInt64 = 1_000_000
        while true {
            for address in addresses {
                attempts += 1
                let outcome: ConnectOutcome
                do {
                    let limit = addresses.count > 1 ? deadline.capped(atMost: 1_000_000_000) : deadline
                    outcome = try attempt(address, deadline: limit, options: options)
                } catch {
                    throw CCLError.system(error, operation: operation, peer: address.description)
                }
                switch outcome {
                case .connected(let connection): return connection
                case .retry(let error): lastError = error
                case .timedOut: break
                }
            }
            let now = monotonicNanoseconds()
            if deadline.hasExpired(at: now) {
                let last = lastError.map { "last: \($0)" } ?? "the peer did not answer"
                let hint = lastError?.errno == ECONNREFUSED ? " (is the peer listening yet?)" : ""
                throw CCLError(
                    .timeout, operation: operation, peer: target.description,
                    "\(deadline.timedOutText(at: now)) after \(attempts) attempt\(attempts == 1 ? "" : "s"); \(last)\(hint)",
                    cause: lastError)
            }
            let pause = min(backoff, deadline.end - now)
            usleep(UInt32(clamping: pause / 1_000))
            backoff = min(backoff * 2, 100_000_000)
        }
    }

    private enum ConnectOutcome {
        case connected(TCPConnection)
        case retry(SystemError)
        case timedOut
    }

    /// Errors that mean "not there yet": try again until the deadline.
    private static func isRetryable(_ code: Int32) -> Bool {
        switch code {
        case ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ETIMEDOUT, ECONNRESET, ECONNABORTED, ENETDOWN, EHOSTDOWN,
            EADDRNOTAVAIL, EAGAIN:
            return true
        default: return false
        }
    }

    private static func attempt(
        _ address: SocketAddress, deadline: SocketDeadline, options: TCPSocketOptions
    ) throws(SystemError) -> ConnectOutcome {
        let fd = try openTCPSocket(family: address.family)
        var keep = false
        defer { if !keep { closeDescriptor(fd) } }
        try applyBufferSizes(fd, options)
        let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if result != 0 {
            let code = errno
            if isRetryable(code) { return .retry(SystemError(call: "connect", errno: code)) }
            guard code == EINPROGRESS || code == EINTR else { throw SystemError(call: "connect", errno: code) }
            let ready = try pollSockets(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0), deadline: deadline)
            if !ready { return .timedOut }
            let pending = try socketOption(fd, SOL_SOCKET, SO_ERROR, call: "getsockopt(SO_ERROR)")
            if pending == EINPROGRESS || pending == EALREADY { return .timedOut }  // woken by a signal at the deadline
            if pending != 0 {
                if isRetryable(pending) { return .retry(SystemError(call: "connect", errno: pending)) }
                throw SystemError(call: "connect", errno: pending)
            }
        }
        let local = try SocketAddress.local(of: fd)
        let peer: SocketAddress
        do {
            peer = try SocketAddress.peer(of: fd)
        } catch {
            if error.errno == ENOTCONN { return .retry(SystemError(call: "connect", errno: ECONNRESET)) }
            throw error
        }
        // Nobody listening on a local ephemeral port can yield TCP simultaneous open with itself.
        if local.description == peer.description { return .retry(SystemError(call: "connect", errno: ECONNREFUSED)) }
        try configureConnectedSocket(fd, fromAccept: false)
        keep = true
        return .connected(TCPConnection(fd: fd, peer: peer, local: local, spin: options.spin))
    }

    // MARK: Non-blocking primitives

    /// Sends what the kernel takes now (MSG_NOSIGNAL: never SIGPIPE); 0 when it would block.
    ///
    /// A reset or broken connection fails with `.peerDead` naming the peer.
    package func sendSome(_ buffer: UnsafeRawBufferPointer, operation: String = "send") throws(CCLError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        try checkOpen(operation: operation)
        do {
            return try trySend(base, buffer.count)
        } catch {
            throw lost(error, operation: operation, progress: "")
        }
    }

    /// Receives what has arrived, up to `buffer.count` bytes; 0 when nothing has.
    ///
    /// End of stream fails with `.peerDead` (the peer closed), as does a reset.
    package func receiveSome(into buffer: UnsafeMutableRawBufferPointer, operation: String = "receive") throws(CCLError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        try checkOpen(operation: operation)
        let received: Int?
        do {
            received = try tryReceive(base, buffer.count)
        } catch {
            throw lost(error, operation: operation, progress: "")
        }
        guard let received else { throw closedByPeer(operation: operation, progress: "") }
        return received
    }

    // MARK: Internals shared with the transfer loop

    @inline(__always)
    func trySend(_ base: UnsafeRawPointer, _ count: Int) throws(SystemError) -> Int {
        let fd = self.fd
        do {
            let sent = try sysCall("send") { Glibc.send(fd, base, count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            bytesSent &+= UInt64(sent)
            return sent
        } catch {
            if error.errno == EAGAIN || error.errno == EWOULDBLOCK { return 0 }
            throw error
        }
    }

    /// Copies what has arrived, up to `buffer.count` bytes, without consuming it: the count, 0
    /// when nothing has (or at end of stream, or on an error: the next receive reports those).
    package func peek(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0, fd >= 0 else { return 0 }
        let fd = self.fd
        return (try? sysCall("recv") { Glibc.recv(fd, base, buffer.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) }) ?? 0
    }

    /// Bytes received, 0 when nothing is there, nil at end of stream.
    @inline(__always)
    func tryReceive(_ base: UnsafeMutableRawPointer, _ count: Int) throws(SystemError) -> Int? {
        let fd = self.fd
        let received: Int
        do {
            received = try sysCall("recv") { Glibc.recv(fd, base, count, Int32(MSG_DONTWAIT)) }
        } catch {
            if error.errno == EAGAIN || error.errno == EWOULDBLOCK { return 0 }
            throw error
        }
        return received == 0 ? nil : received
    }

    func checkOpen(operation: String) throws(CCLError) {
        guard fd >= 0 else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, peer: peerLabel, "the connection was closed locally")
        }
    }

    /// A send/recv failure: `.peerDead` when the connection is gone, `.system` otherwise.
    func lost(_ error: SystemError, operation: String, progress: String) -> CCLError {
        let suffix = progress.isEmpty ? "" : " \(progress)"
        switch error.errno {
        case ECONNRESET, EPIPE, ENOTCONN, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNABORTED, ENETDOWN, EHOSTDOWN:
            let reason = strerror(error.errno).map { String(cString: $0) } ?? "errno \(error.errno)"
            return CCLError(
                .peerDead, operation: operation, rank: rank, peer: peerLabel, "connection lost (\(reason))\(suffix)", cause: error)
        default:
            var wrapped = CCLError.system(error, operation: operation, rank: rank, peer: peerLabel)
            wrapped.message += suffix
            return wrapped
        }
    }

    /// End of stream where bytes were still expected.
    func closedByPeer(operation: String, progress: String) -> CCLError {
        let suffix = progress.isEmpty ? "" : " \(progress)"
        return CCLError(.peerDead, operation: operation, rank: rank, peer: peerLabel, "the peer closed the connection\(suffix)")
    }
}
