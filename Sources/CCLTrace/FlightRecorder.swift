import Atomics
import CCLCollectiveAPI
import CCLCore
import CCLSystem

/// One communicator's flight recorder: its last `capacity` calls in a shared-memory segment
/// (`TraceLayout`), so that another process on the node (`ccl trace --local`) can read what the
/// rank was doing while it is stuck.
///
/// Per call: two reads of the coarse monotonic clock (the last timer tick: times are good to a
/// few milliseconds, which is what "how long ago" needs) and a few stores into the segment; no
/// allocation, no lock, no system call. The segment is unlinked when the recorder goes away (the communicator does);
/// segments of processes that died are removed by the next recorder made on the node.
///
/// Threading: `begin`/`end` from the communicator's one calling thread at a time.
package final class FlightRecorder: @unchecked Sendable {
    /// The environment variable with the capacity (0 turns recording off).
    package static let variable = "CCL_TRACE_BUFFER"
    package static let defaultCapacity = 2048
    package static let maximumCapacity = 1 << 20

    /// The group and round this recorder belongs to (readers match ranks by both).
    package let group: String
    package let round: String
    private var segment: SharedMemorySegment
    private let entries: UnsafeMutableRawPointer
    private let capacity: UInt64
    private let recorded: UnsafeAtomic<UInt64>
    private var calls: UInt64 = 0
    private var collectives: UInt64 = 0
    /// The next entry's index: `calls mod capacity`, kept without a division per call.
    private var slot = 0
    /// Enqueued (device) calls up to this number have been marked completed.
    private var completedThrough: UInt64 = 0

    /// The capacity `environment` asks for: `CCL_TRACE_BUFFER`, else 2048.
    ///
    /// - Throws: `.invalidArgument` naming the variable when it is not a count in 0…1,048,576.
    package static func capacity(in environment: [String: String]) throws(CCLError) -> Int {
        guard let text = environment[variable], !text.isEmpty else { return defaultCapacity }
        guard let value = Int(text), (0...maximumCapacity).contains(value) else {
            throw CCLError(
                .invalidArgument, operation: "read environment",
                "\(variable)=\(text) is not a number of calls in 0…\(maximumCapacity) (0 turns the flight recorder off)")
        }
        return value
    }

    /// A recorder for one communicator of group `group` (round `round`) of job `job`: `rank` is
    /// the global rank, `globalRanks` every member's.
    ///
    /// - Throws: `CCLError` when the segment cannot be made (a full `/dev/shm`, naming the sizes).
    package init(
        group: String, round: String, rank: Int, groupRank: Int, globalRanks: [Int], backend: String, capacity: Int, job: String = ""
    ) throws(CCLError) {
        self.group = group
        self.round = round
        SegmentNames.trace.removeStale()
        let segment = try SharedMemorySegment.create(
            name: SegmentNames.trace.make(for: .current()), size: TraceLayout.bytes(capacity: capacity))
        let base = segment.base
        base.initializeMemory(as: UInt8.self, repeating: 0, count: TraceLayout.headerBytes)
        base.storeBytes(of: UInt32(TraceLayout.version), toByteOffset: TraceLayout.versionOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(capacity), toByteOffset: TraceLayout.capacityOffset, as: UInt32.self)
        base.storeBytes(of: Int32(truncatingIfNeeded: rank), toByteOffset: TraceLayout.rankOffset, as: Int32.self)
        base.storeBytes(of: Int32(truncatingIfNeeded: groupRank), toByteOffset: TraceLayout.groupRankOffset, as: Int32.self)
        base.storeBytes(of: Int32(truncatingIfNeeded: globalRanks.count), toByteOffset: TraceLayout.worldSizeOffset, as: Int32.self)
        base.storeBytes(of: ProcessIdentity.current().pid, toByteOffset: TraceLayout.pidOffset, as: Int32.self)
        Self.write(group, at: base + TraceLayout.groupOffset, limit: TraceLayout.nameBytes)
        Self.write(round, at: base + TraceLayout.roundOffset, limit: TraceLayout.nameBytes)
        Self.write(backend, at: base + TraceLayout.backendOffset, limit: 32)
        Self.write(job, at: base + TraceLayout.jobOffset, limit: TraceLayout.jobBytes)
        for (index, member) in globalRanks.prefix(TraceLayout.maxListedRanks).enumerated() {
            base.storeBytes(of: Int32(truncatingIfNeeded: member), toByteOffset: TraceLayout.ranksOffset + 4 * index, as: Int32.self)
        }
        // The magic last: a reader takes the header only once it is complete.
        UnsafeAtomic<UInt64>(at: (base + TraceLayout.magicOffset).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
            .store(TraceLayout.magic, ordering: .releasing)
        entries = base + TraceLayout.headerBytes
        recorded = UnsafeAtomic(at: (base + TraceLayout.recordedOffset).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
        self.capacity = UInt64(capacity)
        self.segment = segment
    }

    /// The segment's name (for messages and tests).
    package var name: String { segment.name }

    private static func write(_ text: String, at pointer: UnsafeMutableRawPointer, limit: Int) {
        for (index, byte) in text.utf8.prefix(limit - 1).enumerated() { pointer.storeBytes(of: byte, toByteOffset: index, as: UInt8.self) }
    }

    @inline(__always)
    private func word(_ entry: UnsafeMutableRawPointer, _ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (entry + offset).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
    }

    /// Records that `call` starts; returns its entry for `end`.
    @inline(__always)
    package func begin(_ call: CollectiveCall) -> UnsafeMutableRawPointer {
        calls &+= 1
        let (kind, reduce, first, second) = TraceOp.encode(call.op)
        let isCollective = !TraceOp.isPointToPoint(kind)
        if isCollective { collectives &+= 1 }
        let entry = entries + slot &* TraceLayout.entryBytes
        slot = slot + 1 == Int(capacity) ? 0 : slot + 1
        let number = word(entry, TraceLayout.numberOffset)
        number.store(0, ordering: .relaxed)  // readers skip the entry while it changes
        atomicMemoryFence(ordering: .releasing)
        entry.storeBytes(of: kind, toByteOffset: TraceLayout.kindOffset, as: UInt8.self)
        entry.storeBytes(of: reduce, toByteOffset: TraceLayout.reduceOffset, as: UInt8.self)
        entry.storeBytes(of: call.dtype.rawValue, toByteOffset: TraceLayout.dtypeOffset, as: UInt8.self)
        entry.storeBytes(of: first, toByteOffset: TraceLayout.firstPeerOffset, as: Int32.self)
        entry.storeBytes(of: second, toByteOffset: TraceLayout.secondPeerOffset, as: Int32.self)
        entry.storeBytes(of: Int64(call.count), toByteOffset: TraceLayout.countOffset, as: Int64.self)
        entry.storeBytes(of: isCollective ? collectives : 0, toByteOffset: TraceLayout.collectiveOffset, as: UInt64.self)
        entry.storeBytes(of: coarseMonotonicNanoseconds(), toByteOffset: TraceLayout.startOffset, as: UInt64.self)
        // The end time is left as it was: readers ignore it while the state says started.
        word(entry, TraceLayout.stateOffset).store(UInt64(TraceState.started.rawValue), ordering: .relaxed)
        number.store(calls, ordering: .releasing)
        recorded.store(calls, ordering: .releasing)
        return entry
    }

    /// How many calls were recorded (the last one's number).
    package var callCount: UInt64 { calls }
    /// How many of them were collectives (the last collective's number).
    package var collectiveCount: UInt64 { collectives }

    /// Marks the calls up to `number` still enqueued on a device stream as completed, now: a
    /// stream marker placed after them was reached.
    package func complete(through number: UInt64) {
        guard number > completedThrough, number <= calls else { return }
        let now = coarseMonotonicNanoseconds()
        let first = max(completedThrough + 1, number > capacity ? number - capacity + 1 : 1)
        for n in first...number {
            let entry = entries + Int((n - 1) % capacity) * TraceLayout.entryBytes
            guard word(entry, TraceLayout.numberOffset).load(ordering: .relaxed) == n,
                word(entry, TraceLayout.stateOffset).load(ordering: .relaxed) == UInt64(TraceState.enqueued.rawValue)
            else { continue }
            word(entry, TraceLayout.endOffset).store(now, ordering: .relaxed)
            word(entry, TraceLayout.stateOffset).store(UInt64(TraceState.completed.rawValue), ordering: .releasing)
        }
        completedThrough = number
    }

    /// Records how the call of `entry` ended.
    @inline(__always)
    package func end(_ entry: UnsafeMutableRawPointer, _ state: TraceState) {
        word(entry, TraceLayout.endOffset).store(coarseMonotonicNanoseconds(), ordering: .relaxed)
        word(entry, TraceLayout.stateOffset).store(UInt64(state.rawValue), ordering: .releasing)
    }
}
