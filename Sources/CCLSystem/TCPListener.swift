import CCLCore
import Glibc

/// A listening TCP socket bound to exactly the address asked for.
///
/// Owns its descriptor and closes it in `deinit` (or `close()`). Non-blocking: `accept` waits in
/// poll(2) up to its timeout. Connections it accepts inherit the listener's buffer sizes and get
/// its spin policy.
///
/// Threading: `@unchecked Sendable` so it can be handed to another thread; use it from one
/// thread at a time, and do not call `close()` while another thread is in `accept`.
package final class TCPListener: @unchecked Sendable {
    package private(set) var fd: Int32
    /// The address actually bound (the real port when 0 was asked for).
    package let localAddress: SocketAddress
    package let options: TCPSocketOptions

    /// Binds `host:port` and listens.
    ///
    /// `host` is one address ("127.0.0.1", "::1", "10.0.0.2"), a name (the first of its addresses
    /// that binds is used), "0.0.0.0" or "::" for every address (on Linux "::" also accepts IPv4
    /// unless `net.ipv6.bindv6only` is set), or "" for the first wildcard getaddrinfo offers.
    /// Port 0 picks a free ephemeral port; read it from `port`. SO_REUSEADDR is on, so a port
    /// left in TIME_WAIT by an earlier run can be bound again.
    package init(host: String, port: Int, backlog: Int32 = 128, options: TCPSocketOptions = .init()) throws(CCLError) {
        let spec = SocketAddressSpec(host: host, port: port)
        let operation = "listen on \(spec)"
        try PortNumber.check(port, in: PortNumber.listenable, operation: operation)
        let candidates = try spec.resolve(passive: true, operation: operation)
        var failure = SystemError(call: "bind", errno: EADDRNOTAVAIL)
        var bound: (fd: Int32, address: SocketAddress)?
        for candidate in candidates where bound == nil {
            do {
                bound = try Self.bind(candidate, backlog: backlog, options: options)
            } catch {
                failure = error
            }
        }
        guard let bound else { throw CCLError.system(failure, operation: operation) }
        fd = bound.fd
        localAddress = bound.address
        self.options = options
    }

    private static func bind(
        _ address: SocketAddress, backlog: Int32, options: TCPSocketOptions
    ) throws(SystemError) -> (Int32, SocketAddress) {
        let fd = try openTCPSocket(family: address.family)
        do {
            try setSocketOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, call: "setsockopt(SO_REUSEADDR)")
            try applyBufferSizes(fd, options)
            _ = try sysCall("bind") { address.withSockaddr { Glibc.bind(fd, $0, $1) } }
            _ = try sysCall("listen") { Glibc.listen(fd, backlog) }
            return (fd, try SocketAddress.local(of: fd))
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    deinit { close() }

    /// The bound port.
    package var port: Int { localAddress.port }

    /// Closes the socket; later `accept` calls fail. Idempotent.
    package func close() {
        if fd >= 0 {
            closeDescriptor(fd)
            fd = -1
        }
    }

    /// Waits up to `timeout` for the next connection.
    ///
    /// Fails with `.timeout` when none arrives, naming the listening address and the wait.
    package func accept(timeout: Timeout, operation: String? = nil) throws(CCLError) -> TCPConnection {
        let operation = operation ?? "accept on \(localAddress)"
        guard fd >= 0 else {
            throw CCLError(.invalidArgument, operation: operation, "the listener is closed")
        }
        let deadline = SocketDeadline(timeout)
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let listener = fd
            let accepted = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener, $0, &length) }
            }
            if accepted >= 0 {
                let peer = SocketAddress(storage: storage, length: length)
                do {
                    try configureConnectedSocket(accepted, fromAccept: true)
                    let local = try SocketAddress.local(of: accepted)
                    return TCPConnection(fd: accepted, peer: peer, local: local, spin: options.spin)
                } catch {
                    closeDescriptor(accepted)
                    throw CCLError.system(error, operation: operation, peer: peer.description)
                }
            }
            let code = errno
            switch code {
            case EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                continue  // a connection that died in the queue: take the next one (accept(2), Linux notes)
            case EAGAIN:
                let ready: Bool
                do {
                    ready = try pollSockets(pollfd(fd: listener, events: Int16(POLLIN), revents: 0), deadline: deadline)
                } catch {
                    throw CCLError.system(error, operation: operation)
                }
                if !ready {
                    throw CCLError(
                        .timeout, operation: operation,
                        "\(deadline.timedOutText(at: monotonicNanoseconds())): no peer connected")
                }
            default:
                throw CCLError.system(SystemError(call: "accept", errno: code), operation: operation)
            }
        }
    }
}
