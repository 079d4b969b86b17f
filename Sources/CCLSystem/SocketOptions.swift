import CCLCore
import Glibc

/// Options for the sockets a `TCPListener` accepts and `TCPConnection.connect` opens.
///
/// Every connection has TCP_NODELAY on, is non-blocking and close-on-exec; those are not options.
package struct TCPSocketOptions: Sendable, Equatable {
    /// SO_SNDBUF in bytes, or nil to leave the kernel's autotuning (`net.ipv4.tcp_wmem`). Setting
    /// it turns autotuning off for the socket; Linux doubles the value and caps it at
    /// `net.core.wmem_max`.
    package var sendBufferBytes: Int?
    /// SO_RCVBUF in bytes, or nil for autotuning (`net.ipv4.tcp_rmem`); capped at
    /// `net.core.rmem_max`. Set before connect/listen, so the window scale fits it.
    package var receiveBufferBytes: Int?
    /// How receives (and sends) wait before blocking in poll(2).
    package var spin: SocketSpinPolicy

    package init(sendBufferBytes: Int? = nil, receiveBufferBytes: Int? = nil, spin: SocketSpinPolicy = .init()) {
        self.sendBufferBytes = sendBufferBytes
        self.receiveBufferBytes = receiveBufferBytes
        self.spin = spin
    }
}

/// A new TCP socket for `family`, non-blocking and close-on-exec.
func openTCPSocket(family: Int32) throws(SystemError) -> Int32 {
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    return try sysCall("socket") { socket(family, type, Int32(IPPROTO_TCP)) }
}

func setSocketOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, call: String) throws(SystemError) {
    var value = value
    _ = try sysCall(call) { setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) }
}

func socketOption(_ fd: Int32, _ level: Int32, _ name: Int32, call: String) throws(SystemError) -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    _ = try sysCall(call) { getsockopt(fd, level, name, &value, &length) }
    return value
}

/// SO_SNDBUF/SO_RCVBUF where the options ask for them; call before connect or listen.
func applyBufferSizes(_ fd: Int32, _ options: TCPSocketOptions) throws(SystemError) {
    if let bytes = options.sendBufferBytes {
        try setSocketOption(fd, SOL_SOCKET, SO_SNDBUF, Int32(clamping: bytes), call: "setsockopt(SO_SNDBUF)")
    }
    if let bytes = options.receiveBufferBytes {
        try setSocketOption(fd, SOL_SOCKET, SO_RCVBUF, Int32(clamping: bytes), call: "setsockopt(SO_RCVBUF)")
    }
}

/// TCP_NODELAY on, and, for a descriptor from accept(2), non-blocking and close-on-exec.
func configureConnectedSocket(_ fd: Int32, fromAccept: Bool) throws(SystemError) {
    if fromAccept {
        let flags = try sysCall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        _ = try sysCall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        _ = try sysCall("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }
    try setSocketOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, call: "setsockopt(TCP_NODELAY)")
}
