import CCLCore
import Glibc

/// Owner of one POSIX shared-memory mapping (`shm_open` + `mmap(MAP_SHARED)`).
///
/// - `create` makes a new segment with an exclusive name (`O_CREAT | O_EXCL`) and reserves every
///   page with `posix_fallocate`, so a full `/dev/shm` fails here, with the sizes in the error,
///   and never as SIGBUS on a later store.
/// - `attach` maps an existing segment by name and checks its size.
/// - The creator unlinks the name (`unlink()`, or at `deinit`); the mapping stays valid until the
///   owner goes away, in every process that mapped it.
///
/// Ownership: `~Copyable`, one owner unmaps exactly once. The base address is stable for the
/// owner's lifetime; pointers derived from it must not outlive the owner.
public struct SharedMemorySegment: ~Copyable {
    /// The POSIX name ("/ccl-…").
    public let name: String
    /// Bytes mapped.
    public let size: Int
    /// Where the segment is mapped in this process.
    public let base: UnsafeMutableRawPointer
    private var ownsName: Bool

    /// The directory POSIX shared memory lives in on Linux.
    public static let directory = "/dev/shm"

    /// Creates and maps a new segment of `size` bytes, all pages reserved.
    ///
    /// `name` must start with "/" and hold no other "/". Fails with `.resourceExhausted` when
    /// `/dev/shm` has less than `size` bytes free, naming both sizes and the fix.
    public static func create(name: String, size: Int) throws(CCLError) -> SharedMemorySegment {
        let operation = "create shared memory \(name)"
        guard size > 0 else {
            throw CCLError(.invalidArgument, operation: operation, "size must be positive, got \(size)")
        }
        try checkFreeSpace(size: size, operation: operation)
        let fd: Int32
        do {
            fd = try sysCall("shm_open") { shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600) }
        } catch {
            throw CCLError.system(error, operation: operation)
        }
        defer { closeDescriptor(fd) }
        do {
            _ = try sysCall("ftruncate") { ftruncate(fd, off_t(size)) }
            try sysCallReturningError("posix_fallocate") { posix_fallocate(fd, 0, off_t(size)) }
        } catch {
            removeName(name)
            if error.errno == ENOSPC {
                throw CCLError(
                    .resourceExhausted, operation: operation,
                    "\(Self.directory) has no room for \(size) bytes (\(describe(freeBytes()))); "
                        + "raise it (docker run --shm-size=…, or mount -o remount,size=… /dev/shm) "
                        + "or ask for a smaller segment (smaller queue chunks, or CCL_SHM_SLOT_BYTES for collectives)",
                    cause: error)
            }
            throw CCLError.system(error, operation: operation)
        }
        do {
            let base = try map(fd: fd, size: size)
            return SharedMemorySegment(name: name, size: size, base: base, ownsName: true)
        } catch {
            removeName(name)
            throw CCLError.system(error, operation: operation)
        }
    }

    /// Maps an existing segment. Fails when it does not exist, or when its size is below
    /// `minimumSize` (a truncated or foreign segment).
    public static func attach(name: String, minimumSize: Int) throws(CCLError) -> SharedMemorySegment {
        let operation = "attach shared memory \(name)"
        let fd: Int32
        do {
            fd = try sysCall("shm_open") { shm_open(name, O_RDWR | O_CLOEXEC, 0) }
        } catch {
            if error.errno == ENOENT {
                throw CCLError(
                    .peerDead, operation: operation,
                    "no such segment: its creator exited or unlinked it, or it is on another node",
                    cause: error)
            }
            throw CCLError.system(error, operation: operation)
        }
        defer { closeDescriptor(fd) }
        var info = stat()
        do {
            _ = try sysCall("fstat") { fstat(fd, &info) }
        } catch {
            throw CCLError.system(error, operation: operation)
        }
        let size = Int(info.st_size)
        guard size >= minimumSize, size > 0 else {
            throw CCLError(
                .malformed, operation: operation,
                "segment holds \(size) bytes, expected at least \(minimumSize)")
        }
        do {
            let base = try map(fd: fd, size: size)
            return SharedMemorySegment(name: name, size: size, base: base, ownsName: false)
        } catch {
            throw CCLError.system(error, operation: operation)
        }
    }

    private init(name: String, size: Int, base: UnsafeMutableRawPointer, ownsName: Bool) {
        self.name = name
        self.size = size
        self.base = base
        self.ownsName = ownsName
    }

    /// Removes the name from `/dev/shm` (creator only; later calls do nothing). Processes that
    /// already mapped the segment keep using it; no new process can attach.
    public mutating func unlink() {
        guard ownsName else { return }
        ownsName = false
        Self.removeName(name)
    }

    deinit {
        if ownsName { Self.removeName(name) }
        _ = try? sysCall("munmap") { munmap(base, size) }
    }

    /// Unlinks a name, best effort (it may already be gone): cleanup on a failure path.
    private static func removeName(_ name: String) { _ = try? sysCall("shm_unlink") { shm_unlink(name) } }

    private static func map(fd: Int32, size: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw SystemError(call: "mmap", errno: errno)
        }
        return address
    }

    /// Free bytes in /dev/shm, or nil when statvfs fails.
    public static func freeBytes() -> Int? {
        var info = statvfs()
        guard (try? sysCall("statvfs") { statvfs(directory, &info) }) != nil else { return nil }
        return Int(clamping: UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize)).partialValue)
    }

    private static func describe(_ free: Int?) -> String {
        guard let free else { return "free space unknown" }
        return "\(free) bytes free"
    }

    private static func checkFreeSpace(size: Int, operation: String) throws(CCLError) {
        guard let free = freeBytes(), size > free else { return }
        throw CCLError(
            .resourceExhausted, operation: operation,
            "needs \(size) bytes but \(directory) has only \(free) bytes free; raise it "
                + "(docker run --shm-size=…, or mount -o remount,size=… /dev/shm) or ask for a smaller segment (smaller queue chunks, or CCL_SHM_SLOT_BYTES for collectives)"
        )
    }
}

extension SharedMemorySegment {
    /// Unlinks every segment in /dev/shm whose file name `shouldRemove` accepts; returns their
    /// names. Used to clear segments left by killed runs.
    public static func removeSegments(where shouldRemove: (String) -> Bool) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var removed: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if shouldRemove(name), (try? sysCall("shm_unlink") { shm_unlink("/" + name) }) != nil { removed.append(name) }
        }
        return removed
    }
}
