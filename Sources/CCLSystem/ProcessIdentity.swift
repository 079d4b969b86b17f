import Glibc

/// A process as other processes can check it: pid plus the kernel's start time, so a recycled pid
/// is not mistaken for the original process, plus its pid namespace, so a process in another
/// container (sharing /dev/shm but not pids) is not judged by a pid that means something else here.
///
/// The start time is field 22 of `/proc/<pid>/stat` (clock ticks since boot); the namespace is the
/// inode of `/proc/self/ns/pid` (0 when unknown).
public struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    /// The process id.
    public let pid: Int32
    /// The kernel's start time of the process (clock ticks since boot).
    public let startTime: UInt64
    /// The inode of its pid namespace (0 when unknown).
    public let namespace: UInt64

    /// An identity as recorded (read back from shared memory, say).
    public init(pid: Int32, startTime: UInt64, namespace: UInt64 = ProcessIdentity.currentNamespace) {
        self.pid = pid
        self.startTime = startTime
        self.namespace = namespace
    }

    /// This process.
    public static func current() -> ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTime: startTime(of: pid) ?? 0)
    }

    /// The inode of this process's pid namespace, 0 when /proc does not say.
    public static let currentNamespace: UInt64 = {
        var info = stat()
        return stat("/proc/self/ns/pid", &info) == 0 ? UInt64(info.st_ino) : 0
    }()

    /// Whether this process can check the other's liveness (same pid namespace).
    public var isCheckable: Bool { namespace == 0 || namespace == Self.currentNamespace }

    /// True while the process exists, has the recorded start time, and is not a zombie. A process
    /// in another pid namespace cannot be checked from here and counts as alive.
    public var isAlive: Bool {
        guard isCheckable else { return true }
        guard pid > 0 else { return false }
        guard let stat = Self.readStat(pid) else { return false }
        if stat.state == UInt8(ascii: "Z") || stat.state == UInt8(ascii: "X") { return false }
        return startTime == 0 || stat.startTime == startTime
    }

    /// Whether process `pid` (of this pid namespace) is stopped: by SIGSTOP or SIGTSTP (state
    /// T), or by a debugger (t). Alive, but running nothing.
    public static func isStopped(_ pid: Int32) -> Bool {
        guard pid > 0, let state = readStat(pid)?.state else { return false }
        return state == UInt8(ascii: "T") || state == UInt8(ascii: "t")
    }

    /// "pid 812".
    public var description: String { "pid \(pid)" }

    static func startTime(of pid: Int32) -> UInt64? { readStat(pid)?.startTime }

    /// Parses state (field 3) and starttime (field 22) of /proc/<pid>/stat. The command name
    /// (field 2) may hold spaces and parentheses, so parsing starts after the last ')'.
    static func readStat(_ pid: Int32) -> (state: UInt8, startTime: UInt64)? {
        let path = "/proc/\(pid)/stat"
        guard let fd = try? sysCall("open", { open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
        defer { closeDescriptor(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        guard let count = try? buffer.withUnsafeMutableBytes({ raw in try sysCall("read") { read(fd, raw.baseAddress, raw.count) } }),
            count > 0
        else { return nil }
        let bytes = buffer[0..<count]
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19, let state = fields[0].first else { return nil }
        var value: UInt64 = 0
        for digit in fields[19] {
            guard digit >= 48, digit <= 57 else { return nil }
            value = value &* 10 &+ UInt64(digit - 48)
        }
        return (state, value)
    }
}
