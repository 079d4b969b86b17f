import CCLSystem

/// Names of queue segments: `/ccl-q-<pidns>-<pid>-<starttime>-<random>`, so a later run in the same
/// pid namespace can tell that a segment's creator is dead and remove it (a killed writer cannot
/// unlink its own). Segments of other namespaces (containers sharing /dev/shm) are left alone.
enum SegmentNames {
    static let prefix = "ccl-q-"

    static func make(for writer: ProcessIdentity) -> String {
        let random = UInt64.random(in: 0...UInt64.max)
        return "/\(prefix)\(writer.namespace)-\(writer.pid)-\(writer.startTime)-\(String(random, radix: 16))"
    }

    /// The creator named in a segment's file name, or nil when the name is not ours.
    static func creator(ofFileName name: String) -> ProcessIdentity? {
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.dropFirst(prefix.count).split(separator: "-")
        guard parts.count == 4, let namespace = UInt64(parts[0]), let pid = Int32(parts[1]), let start = UInt64(parts[2])
        else { return nil }
        return ProcessIdentity(pid: pid, startTime: start, namespace: namespace)
    }

    /// Unlinks segments whose creating process is gone. Returns the names removed.
    @discardableResult
    static func removeStale() -> [String] {
        SharedMemorySegment.removeSegments { name in
            guard let creator = creator(ofFileName: name), creator.isCheckable else { return false }
            return !creator.isAlive
        }
    }
}
