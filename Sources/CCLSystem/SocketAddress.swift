import CCLCore
import Glibc

/// A host and port as a user wrote them, before resolution.
///
/// `host` is a numeric address ("10.0.0.2", "::1", "[::1]") or a name ("localhost", "node7");
/// an empty host means "every local address" when binding.
package struct SocketAddressSpec: Sendable, Hashable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// "10.0.0.2:4567", "[::1]:4567".
    package var description: String { SocketAddress.format(host: host, port: port) }

    /// Every TCP address `host` resolves to, in getaddrinfo's order (IPv4 and IPv6).
    ///
    /// Numeric hosts resolve without DNS. `passive` asks for addresses to bind to. Fails with
    /// `.invalidArgument` for a port outside 0...65535 or a name that does not resolve.
    package func resolve(passive: Bool = false, operation: String) throws(CCLError) -> [SocketAddress] {
        guard (0...65535).contains(port) else {
            throw CCLError(.invalidArgument, operation: operation, "port \(port) is outside 0...65535")
        }
        var name = host
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let status: Int32 =
            name.isEmpty
            ? getaddrinfo(nil, String(port), &hints, &list)
            : getaddrinfo(name, String(port), &hints, &list)
        guard status == 0 else {
            let reason = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            if status == EAI_SYSTEM {
                throw CCLError.system(SystemError(call: "getaddrinfo", errno: errno), operation: operation)
            }
            let code: CCLError.Code = status == EAI_AGAIN ? .system : .invalidArgument
            throw CCLError(code, operation: operation, "cannot resolve host \"\(host)\": \(reason)")
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry = list
        while let info = entry?.pointee {
            if let address = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 {
                var storage = sockaddr_storage()
                let length = min(Int(info.ai_addrlen), MemoryLayout<sockaddr_storage>.size)
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: length)) }
                let resolved = SocketAddress(storage: storage, length: socklen_t(length))
                if !addresses.contains(where: { $0.description == resolved.description }) { addresses.append(resolved) }
            }
            entry = info.ai_next
        }
        guard !addresses.isEmpty else {
            throw CCLError(.invalidArgument, operation: operation, "host \"\(host)\" has no IPv4 or IPv6 address")
        }
        return addresses
    }
}

/// One resolved IPv4 or IPv6 socket address (a `sockaddr_storage`), with its numeric form.
package struct SocketAddress: Sendable, CustomStringConvertible {
    var storage: sockaddr_storage
    var length: socklen_t
    /// The numeric host, "10.0.0.2" or "::1".
    package let host: String
    package let port: Int

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
        var hostBuffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serviceBuffer = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let status = withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                getnameinfo(
                    address, length, &hostBuffer, socklen_t(hostBuffer.count), &serviceBuffer,
                    socklen_t(serviceBuffer.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        if status == 0 {
            host = String(decoding: hostBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            port = Int(String(decoding: serviceBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) ?? 0
        } else {
            host = "?"
            port = 0
        }
    }

    /// `AF_INET` or `AF_INET6`.
    package var family: Int32 { Int32(storage.ss_family) }

    /// "10.0.0.2:4567", "[::1]:4567".
    package var description: String { Self.format(host: host, port: port) }

    static func format(host: String, port: Int) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// The address `fd` is bound to (`getsockname`).
    static func local(of fd: Int32) throws(SystemError) -> SocketAddress {
        try query("getsockname") { getsockname(fd, $0, $1) }
    }

    /// The address `fd` is connected to (`getpeername`).
    static func peer(of fd: Int32) throws(SystemError) -> SocketAddress {
        try query("getpeername") { getpeername(fd, $0, $1) }
    }

    private static func query(
        _ call: String, _ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try sysCall(call) {
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, &length) }
            }
        }
        return SocketAddress(storage: storage, length: length)
    }
}
