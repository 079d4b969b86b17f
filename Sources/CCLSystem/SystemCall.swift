import CCLCore
import Glibc

/// A failed system call: which call, and the errno it left.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The C function, e.g. `"shm_open"`.
    public let call: String
    /// The errno the call left.
    public let errno: Int32

    /// A failure of `call` with `errno`.
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// "shm_open failed: errno 28 (No space left on device)".
    public var description: String {
        let text = strerror(errno).map { String(cString: $0) } ?? "unknown error"
        return "\(call) failed: errno \(errno) (\(text))"
    }
}

/// Runs a C call that reports failure as -1 and errno, the way `NIOPosix/System.swift` does:
/// errno is read at once, EINTR is retried, and the error names the call.
///
///     let fd = try sysCall("shm_open") { shm_open(name, O_CREAT | O_RDWR, 0o600) }
@inline(__always)
public func sysCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call: name, errno: code)
    }
}

/// Like `sysCall`, for functions that return the error number instead of setting errno
/// (`posix_fallocate`, `pthread_*`).
@inline(__always)
public func sysCallReturningError(_ name: String, _ body: () -> Int32) throws(SystemError) {
    while true {
        let code = body()
        if code == 0 { return }
        if code == EINTR { continue }
        throw SystemError(call: name, errno: code)
    }
}

/// `close(2)`, the one way descriptors are closed. Never retried: on Linux the descriptor is
/// released even when EINTR is reported, and a retry could close a descriptor another thread
/// just opened. EBADF means it was closed twice: a bug, so it traps. Other errors (EIO on a
/// socket) are ignored: the descriptor is gone either way.
public func closeDescriptor(_ fd: Int32) {
    guard Glibc.close(fd) == -1 else { return }
    let code = Glibc.errno
    precondition(code != EBADF, "close(\(fd)): EBADF, a descriptor closed twice")
}

extension CCLError {
    /// Wraps a syscall failure with the operation and, for resource errors, the right code.
    public static func system(_ error: SystemError, operation: String, rank: Int? = nil, peer: String? = nil)
        -> CCLError
    {
        let code: CCLError.Code =
            switch error.errno {
            case ENOSPC, ENOMEM, EMFILE, ENFILE: .resourceExhausted
            case ETIMEDOUT: .timeout
            default: .system
            }
        return CCLError(code, operation: operation, rank: rank, peer: peer, error.description, cause: error)
    }
}
