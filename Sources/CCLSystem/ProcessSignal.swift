import Glibc

/// Signals to other processes and this process's dispositions, through one place.
public enum ProcessSignal {
    /// Sends `signal` to the process group `pid` leads when it leads one (what it started gets it
    /// too), else to `pid` alone. `getpgid(2)`, `kill(2)`; best effort: a process that already
    /// exited (ESRCH) is not an error.
    public static func send(_ signal: Int32, toGroupOf pid: Int32) {
        if (try? sysCall("getpgid") { getpgid(pid) }) == pid, (try? sysCall("kill") { kill(-pid, signal) }) != nil { return }
        _ = try? sysCall("kill") { kill(pid, signal) }
    }

    /// Ignores `signal` in this process (`signal(2)` with `SIG_IGN`), so a dispatch source can
    /// handle it instead of the default action.
    public static func ignore(_ signal: Int32) { _ = Glibc.signal(signal, SIG_IGN) }
}
