import Glibc

/// The process's limit on open files.
public enum OpenFileLimit {
    /// Raises the soft limit (often 1024) to the hard limit, as a server of many connections
    /// needs (the store: two per process of the job, each rank's own and its trace responder's).
    /// Best effort; returns the soft limit in force afterwards, nil when it cannot be read.
    @discardableResult
    public static func raiseToHardLimit() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }
}
