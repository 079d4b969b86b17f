import CCLCore
import CCLShims
import Glibc

/// Becoming another program while staying tied to the parent: what `ccl launch` runs each rank
/// through, so that the ranks die with the launcher even when it is SIGKILLed (nothing of the
/// launcher runs then to stop them).
public enum ProcessReplacement {
    /// Asks the kernel to SIGKILL this process when `parent` (the thread that started it) ends
    /// (`PR_SET_PDEATHSIG`, kept across `execve`); if `parent` already ended, this process kills
    /// itself at once.
    public static func dieWithParent(_ parent: Int32) throws(CCLError) {
        do {
            _ = try sysCall("prctl(PR_SET_PDEATHSIG)") { ccl_set_parent_death_signal(SIGKILL) }
        } catch {
            throw CCLError.system(error, operation: "tie a rank to its launcher")
        }
        // The launcher may have died before the call above: then our parent is another process.
        if getppid() != parent { _ = try? sysCall("kill") { kill(getpid(), SIGKILL) } }
    }

    /// Replaces this process with `path` run with `arguments` (argv[0] first) and the current
    /// environment (`execv`). Returns only by throwing.
    public static func exec(_ path: String, arguments: [String]) throws(CCLError) -> Never {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let code = execv(path, &argv) == -1 ? errno : 0
        throw CCLError.system(SystemError(call: "execv", errno: code), operation: "start \(path)")
    }
}
