import CCLCore
import Glibc

extension TCPConnection {
    /// Ends this side's sending: the peer reads end of stream after what was already sent;
    /// receiving goes on. `shutdown(SHUT_WR)`.
    package func shutdownSending() {
        if fd >= 0 { _ = try? sysCall("shutdown") { Glibc.shutdown(fd, Int32(SHUT_WR)) } }
    }

    /// Reads and discards whatever arrives on `connections` until every peer has closed (or
    /// failed) or `nanoseconds` have passed.
    ///
    /// Closing a socket with unread data makes the kernel send a reset, and a reset can destroy
    /// frames the peer has not read yet (an abort notice among them). A failing rank sends its
    /// notices, shuts down sending, drains, and only then lets its sockets close.
    package static func drain(_ connections: [TCPConnection], for nanoseconds: UInt64) {
        var open = connections.filter { $0.fd >= 0 }
        let deadline = monotonicNanoseconds() &+ nanoseconds
        var sink = [UInt8](repeating: 0, count: 64 << 10)
        while !open.isEmpty {
            let now = monotonicNanoseconds()
            guard now < deadline else { return }
            var descriptors = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let wait = Int32(clamping: (deadline - now) / 1_000_000 + 1)
            guard (try? sysCall("poll") { poll(&descriptors, nfds_t(descriptors.count), wait) }) != nil else { return }
            var stillOpen: [TCPConnection] = []
            for (index, connection) in open.enumerated() {
                guard descriptors[index].revents != 0 else {
                    stillOpen.append(connection)
                    continue
                }
                let received = sink.withUnsafeMutableBytes { raw in
                    Result { () throws(SystemError) in
                        try sysCall("recv") { Glibc.recv(connection.fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT)) }
                    }
                }
                switch received {
                case .success(let count): if count > 0 { stillOpen.append(connection) }
                case .failure(let error): if error.errno == EAGAIN { stillOpen.append(connection) }
                }
            }
            open = stillOpen
        }
    }
}
