import Glibc

/// This machine's network interfaces and their addresses (`getifaddrs`).
public enum NetworkInterfaces {
    /// One address of one interface.
    public struct Address: Sendable, Equatable {
        /// The interface's name ("eth0", "lo").
        public var interface: String
        /// The address in text ("10.0.0.2", "fe80::1").
        public var address: String
        /// Whether it is a loopback address.
        public var isLoopback: Bool
        /// Whether it is IPv6.
        public var isIPv6: Bool
    }

    /// Every IPv4 and IPv6 address of every interface that is up, in the kernel's order.
    public static func addresses() -> [Address] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var found: [Address] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let socket = entry.pointee.ifa_addr, entry.pointee.ifa_flags & UInt32(IFF_UP) != 0 else { continue }
            let family = Int32(socket.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(socket, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            found.append(
                Address(
                    interface: String(cString: entry.pointee.ifa_name), address: String(decoding: bytes, as: UTF8.self),
                    isLoopback: entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK) != 0, isIPv6: family == AF_INET6))
        }
        return found
    }

    /// Where other machines most likely reach this one when nothing was configured: the IPv4
    /// address of the interface of the default route (`/proc/net/route`), else the first IPv4
    /// address that is neither loopback nor link-local (169.254/16), else nil.
    public static func firstExternalIPv4() -> String? {
        let candidates = addresses().filter { !$0.isLoopback && !$0.isIPv6 && !$0.address.hasPrefix("169.254.") }
        if let route = defaultRouteInterface(), let match = candidates.first(where: { $0.interface == route }) {
            return match.address
        }
        return candidates.first?.address
    }

    /// The interface of the IPv4 default route, from `/proc/net/route` (destination 00000000).
    static func defaultRouteInterface() -> String? {
        guard let file = fopen("/proc/net/route", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(whereSeparator: { $0 == "\t" || $0 == " " || $0 == "\n" })
            if fields.count > 1, fields[1] == "00000000" { return String(fields[0]) }
        }
        return nil
    }
}
