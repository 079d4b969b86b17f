import CCLSystem

/// Names of queue segments: `/ccl-q-<pid>-<starttime>-<random>`, so a later run can tell that a
/// segment's creator is dead and remove it (a killed writer cannot unlink its own).
enum SegmentNames {
    static let prefix = "ccl-q-"

    static func make(for writer: ProcessIdentity) -> String {
        let random = UInt64.random(in: 0...UInt64.max)
        return "/\(prefix)\(writer.pid)-\(writer.startTime)-\(String(random, radix: 16))"
    }

    /// The creator named in a segment's file name, or nil when the name is not ours.
    static func creator(ofFileName name: String) -> ProcessIdentity? {
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.dropFirst(prefix.count).split(separator: "-")
        guard parts.count == 3, let pid = Int32(parts[0]), let start = UInt64(parts[1]) else { return nil }
        return ProcessIdentity(pid: pid, startTime: start)
    }

    /// Unlinks segments whose creating process is gone. Returns the names removed.
    @discardableResult
    static func removeStale() -> [String] {
        SharedMemorySegment.removeSegments { name in
            guard let creator = creator(ofFileName: name) else { return false }
            return !creator.isAlive
        }
    }
}
