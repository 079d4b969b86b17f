import Atomics
import CCLCollectiveAPI
import CCLCore
import CCLSystem
import Foundation

/// One recorded call, as a reader sees it.
package struct TraceEntry: Sendable, Equatable {
    /// The call's number in its communicator (every call).
    package var number: UInt64
    /// Its number among the communicator's collectives (0 for sends and receives).
    package var collective: UInt64
    package var call: CollectiveCall
    package var state: TraceState
    /// CLOCK_MONOTONIC at the start and, once over, at the end.
    package var start: UInt64
    package var end: UInt64?
}

/// What one communicator's flight recorder held when it was read.
package struct TraceSnapshot: Sendable {
    package var segment: String
    package var pid: Int32
    package var group: String
    package var round: String
    /// The global rank, and the rank in the group.
    package var rank: Int
    package var groupRank: Int
    package var worldSize: Int
    /// Every member's global rank (the first 64).
    package var globalRanks: [Int]
    package var backend: String
    /// Oldest first.
    package var entries: [TraceEntry]
    /// The host the recorder lives on, when it came from another process's report ("" when read
    /// from this node's shared memory).
    package var host: String = ""
    /// The job the recorder belongs to (`TraceExchange.jobKey`; "" when not known).
    package var job: String = ""
    /// Whether the rank's process was stopped (SIGSTOP, a debugger) when read; known only for
    /// recorders read on this node.
    package var stopped = false
}

/// Reads flight-recorder segments (`TraceLayout`) of this node, while their ranks run or hang.
package enum TraceReader {
    /// Every flight recorder on this node whose process is alive (only process `pid`'s, when
    /// given), read now.
    package static func local(pid: Int32? = nil) -> [TraceSnapshot] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: SharedMemorySegment.directory)) ?? []
        return names.sorted().compactMap { name in
            guard let creator = SegmentNames.trace.creator(ofFileName: name), pid == nil || creator.pid == pid,
                !creator.isCheckable || creator.isAlive
            else { return nil }
            var snapshot = try? read("/" + name)
            snapshot?.stopped = creator.isCheckable && ProcessIdentity.isStopped(creator.pid)
            return snapshot
        }
    }

    /// The recorder in segment `name` ("/ccl-t-…").
    ///
    /// - Throws: `CCLError` when it cannot be mapped or is not a flight recorder of this version.
    package static func read(_ name: String) throws(CCLError) -> TraceSnapshot {
        let segment = try SharedMemorySegment.attach(name: name, minimumSize: TraceLayout.headerBytes)
        let base = segment.base
        let magic = atomic(base + TraceLayout.magicOffset).load(ordering: .acquiring)
        let version = base.load(fromByteOffset: TraceLayout.versionOffset, as: UInt32.self)
        let capacity = Int(base.load(fromByteOffset: TraceLayout.capacityOffset, as: UInt32.self))
        guard magic == TraceLayout.magic, version == TraceLayout.version, (1...FlightRecorder.maximumCapacity).contains(capacity),
            segment.size >= TraceLayout.bytes(capacity: capacity)
        else {
            throw CCLError(.malformed, operation: "read flight recorder \(name)", "not a flight recorder of version \(TraceLayout.version)")
        }
        let worldSize = Int(base.load(fromByteOffset: TraceLayout.worldSizeOffset, as: Int32.self))
        let groupRank = Int(base.load(fromByteOffset: TraceLayout.groupRankOffset, as: Int32.self))
        // Another process wrote these: a group of 1…65,536 ranks and a rank inside it, or nothing.
        guard (1...TraceLayout.maxGroupSize).contains(worldSize), (0..<worldSize).contains(groupRank) else {
            throw CCLError(
                .malformed, operation: "read flight recorder \(name)",
                "group size \(worldSize) and group rank \(groupRank) are not a rank of a group of 1…\(TraceLayout.maxGroupSize)")
        }
        let listed = max(0, min(worldSize, TraceLayout.maxListedRanks))
        var snapshot = TraceSnapshot(
            segment: name, pid: base.load(fromByteOffset: TraceLayout.pidOffset, as: Int32.self),
            group: text(base + TraceLayout.groupOffset, TraceLayout.nameBytes),
            round: text(base + TraceLayout.roundOffset, TraceLayout.nameBytes),
            rank: Int(base.load(fromByteOffset: TraceLayout.rankOffset, as: Int32.self)),
            groupRank: groupRank, worldSize: worldSize,
            globalRanks: (0..<listed).map { Int(base.load(fromByteOffset: TraceLayout.ranksOffset + 4 * $0, as: Int32.self)) },
            backend: text(base + TraceLayout.backendOffset, 32), entries: [])
        snapshot.job = text(base + TraceLayout.jobOffset, TraceLayout.jobBytes)
        let recorded = atomic(base + TraceLayout.recordedOffset).load(ordering: .acquiring)
        let first = recorded > UInt64(capacity) ? recorded - UInt64(capacity) + 1 : 1
        if recorded >= first {
            for number in first...recorded {
                let entry = base + TraceLayout.headerBytes + Int((number - 1) % UInt64(capacity)) * TraceLayout.entryBytes
                if let read = self.entry(entry, number: number) { snapshot.entries.append(read) }
            }
        }
        return snapshot
    }

    /// Entry `number` at `entry`, or nil while it is being rewritten (or was already).
    private static func entry(_ entry: UnsafeMutableRawPointer, number: UInt64) -> TraceEntry? {
        let guardWord = atomic(entry + TraceLayout.numberOffset)
        guard guardWord.load(ordering: .acquiring) == number else { return nil }
        let kind = entry.load(fromByteOffset: TraceLayout.kindOffset, as: UInt8.self)
        let reduce = entry.load(fromByteOffset: TraceLayout.reduceOffset, as: UInt8.self)
        let dtype = DType(rawValue: entry.load(fromByteOffset: TraceLayout.dtypeOffset, as: UInt8.self))
        let first = entry.load(fromByteOffset: TraceLayout.firstPeerOffset, as: Int32.self)
        let second = entry.load(fromByteOffset: TraceLayout.secondPeerOffset, as: Int32.self)
        let count = entry.load(fromByteOffset: TraceLayout.countOffset, as: Int64.self)
        let collective = entry.load(fromByteOffset: TraceLayout.collectiveOffset, as: UInt64.self)
        let start = entry.load(fromByteOffset: TraceLayout.startOffset, as: UInt64.self)
        let state = TraceState(rawValue: UInt8(truncatingIfNeeded: atomic(entry + TraceLayout.stateOffset).load(ordering: .acquiring)))
        let end = atomic(entry + TraceLayout.endOffset).load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        guard guardWord.load(ordering: .relaxed) == number, let dtype, let state, collective <= number, count >= 0,
            let op = TraceOp.decode(kind: kind, reduce: reduce, first: first, second: second)
        else { return nil }
        return TraceEntry(
            number: number, collective: collective, call: CollectiveCall(op, dtype: dtype, count: Int(count)), state: state, start: start,
            end: state == .started || end == 0 ? nil : end)
    }

    private static func atomic(_ pointer: UnsafeMutableRawPointer) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: pointer.assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
    }

    private static func text(_ pointer: UnsafeMutableRawPointer, _ limit: Int) -> String {
        let bytes = UnsafeRawBufferPointer(start: pointer, count: limit)
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
