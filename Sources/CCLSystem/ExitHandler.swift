import Glibc

/// Runs code when the process exits normally (`exit`, returning from `main`): `atexit`.
public enum ExitHandler {
    /// Registers `handler` to run at normal exit, after the handlers registered later (C's order).
    /// It must not capture anything (a C function); it runs on the exiting thread.
    ///
    /// - Returns: false when the C library refused (too many handlers).
    @discardableResult
    public static func register(_ handler: @convention(c) () -> Void) -> Bool {
        atexit(handler) == 0
    }
}
