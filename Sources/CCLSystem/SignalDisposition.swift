import Glibc

/// Signal state that child processes inherit through exec: an ignored disposition and a blocked
/// mask both pass on, so a launcher started as a background job (SIGINT ignored) or from a
/// thread that blocks signals would start ranks that cannot be interrupted.
public enum SignalDisposition {
    /// Sets `signals` back to their default action and unblocks them on the calling thread,
    /// so processes spawned from it afterwards start with the defaults.
    public static func restoreDefaults(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals {
            signal(number, SIG_DFL)
            sigaddset(&set, number)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
