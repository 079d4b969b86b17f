/// Names of our shared-memory segments: `/<prefix><pidns>-<pid>-<starttime>-<random>`, so a later
/// run in the same pid namespace can tell that a segment's creator is dead and remove it (a killed
/// creator cannot unlink its own). Segments of other namespaces (containers sharing /dev/shm) are
/// left alone.
package struct SegmentNames: Sendable {
    /// Broadcast-queue rings.
    package static let queue = SegmentNames(prefix: "ccl-q-")
    /// Shared-memory collective arenas.
    package static let collectives = SegmentNames(prefix: "ccl-c-")
    /// Flight recorders (one per communicator), read by `ccl trace --local`.
    package static let trace = SegmentNames(prefix: "ccl-t-")

    package let prefix: String

    package func make(for creator: ProcessIdentity) -> String {
        let random = UInt64.random(in: 0...UInt64.max)
        return "/\(prefix)\(creator.namespace)-\(creator.pid)-\(creator.startTime)-\(String(random, radix: 16))"
    }

    /// The creator named in a segment's file name, or nil when the name is not of this kind.
    package func creator(ofFileName name: String) -> ProcessIdentity? {
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.dropFirst(prefix.count).split(separator: "-")
        guard parts.count == 4, let namespace = UInt64(parts[0]), let pid = Int32(parts[1]), let start = UInt64(parts[2])
        else { return nil }
        return ProcessIdentity(pid: pid, startTime: start, namespace: namespace)
    }

    /// Unlinks segments of this kind whose creating process is gone. Returns the names removed.
    @discardableResult
    package func removeStale() -> [String] {
        SharedMemorySegment.removeSegments { name in
            guard let creator = creator(ofFileName: name), creator.isCheckable else { return false }
            return !creator.isAlive
        }
    }
}
