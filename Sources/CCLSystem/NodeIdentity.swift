import Glibc

/// Which machine (node) this process runs on, as a string equal for processes that share a
/// machine and different across machines.
///
/// `CCL_NODE_ID` wins when set (tests that make "nodes" out of network namespaces of one machine
/// set it). Otherwise it is the kernel's boot id (`/proc/sys/kernel/random/boot_id`, unique per
/// boot of a machine) plus the network-namespace inode, so two containers or namespaces with
/// their own network stack count as different nodes and reach each other over TCP. Falls back
/// to the host name when /proc is unavailable.
public enum NodeIdentity {
    /// This process's node identity: `CCL_NODE_ID` from `environment` when set and not empty,
    /// else the boot id and the network-namespace inode (the host name when /proc is missing).
    public static func current(environment: [String: String]) -> String {
        if let explicit = environment["CCL_NODE_ID"], !explicit.isEmpty { return explicit }
        return derived()
    }

    static func derived() -> String {
        var info = stat()
        let network = stat("/proc/self/ns/net", &info) == 0 ? "\(info.st_ino)" : "?"
        if let boot = readFirstLine("/proc/sys/kernel/random/boot_id") { return "\(boot)/net:\(network)" }
        return "host:\(hostName())/net:\(network)"
    }

    /// This machine's host name (`gethostname`), "unknown" when it cannot be read.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readFirstLine(_ path: String) -> String? {
        guard let fd = try? sysCall("open", { open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
        defer { closeDescriptor(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        guard let count = try? buffer.withUnsafeMutableBytes({ raw in try sysCall("read") { read(fd, raw.baseAddress, raw.count) } }),
            count > 0
        else { return nil }
        let line = buffer[0..<count].prefix { $0 != 10 }
        return line.isEmpty ? nil : String(decoding: line, as: UTF8.self)
    }
}
