import Glibc

/// CLOCK_MONOTONIC in nanoseconds: shared by every process on the host, so a timestamp taken in
/// one process can be compared with one taken in another.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the same clock as `monotonicNanoseconds`, read from the
/// last timer tick (1–4 ms behind at most) for a fraction of the cost. For timestamps that only
/// need to say "how long ago" (the flight recorder).
@inline(__always)
public func coarseMonotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CPU time (user + system) this process has used, in nanoseconds (`getrusage(RUSAGE_SELF)`).
public func processCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Sleeps the calling thread for `nanoseconds` (`nanosleep`, resumed after a signal).
public func sleepNanoseconds(_ nanoseconds: UInt64) {
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1, errno == EINTR { request = remaining }
}
