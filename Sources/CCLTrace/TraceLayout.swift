import CCLCollectiveAPI

/// The layout of one communicator's flight-recorder segment in `/dev/shm`, shared by the writer
/// (`FlightRecorder`) and readers in other processes (`TraceReader`).
///
/// - Header (512 bytes): magic, version, capacity, the rank (global and in the group), the group's
///   size, pid, the number of calls recorded so far (`recorded`, written last by every call's
///   start), the group's name and round (ranks of one group instance share both), the backend,
///   up to 64 of the group's global ranks, and the job.
/// - Then `capacity` entries of 64 bytes, call n in entry (n − 1) mod capacity: the call's number,
///   operation, reduce op, dtype, root or peers, count, start and end times (CLOCK_MONOTONIC,
///   which every process on the host shares), its number among the collectives, and its state.
///
/// A reader may see an entry being rewritten; it takes an entry only when the call number it reads
/// before and after the fields agree.
package enum TraceLayout {
    package static let magic: UInt64 = 0x4343_4C54_5241_4345  // "CCLTRACE"
    package static let version: UInt32 = 2
    package static let headerBytes = 512
    package static let entryBytes = 64
    package static let nameBytes = 64
    package static let maxListedRanks = 64
    /// The largest group a reader accepts (swift-ccl's limit on world sizes).
    package static let maxGroupSize = 65_536

    // Header offsets.
    static let magicOffset = 0
    static let versionOffset = 8
    static let capacityOffset = 12
    static let rankOffset = 16
    static let groupRankOffset = 20
    static let worldSizeOffset = 24
    static let pidOffset = 28
    static let recordedOffset = 32
    static let groupOffset = 40
    static let roundOffset = groupOffset + nameBytes
    static let backendOffset = roundOffset + nameBytes
    static let ranksOffset = backendOffset + 32  // 64 × Int32: 256 bytes, ending at 456
    /// The job (`TraceExchange.jobKey`: its store's port), so that jobs sharing a node are told
    /// apart; 48 bytes, ending at 504.
    static let jobOffset = ranksOffset + 256
    package static let jobBytes = 48

    // Entry offsets (the words at 0, 40 and 56 are written atomically).
    static let numberOffset = 0
    static let kindOffset = 8
    static let reduceOffset = 9
    static let dtypeOffset = 10
    static let firstPeerOffset = 12
    static let secondPeerOffset = 16
    static let countOffset = 24
    static let startOffset = 32
    static let endOffset = 40
    /// The call's number among the communicator's collectives (0 for sends and receives, which
    /// only a pair of ranks shares).
    static let collectiveOffset = 48
    static let stateOffset = 56

    /// Bytes of a segment with `capacity` entries.
    package static func bytes(capacity: Int) -> Int { headerBytes + capacity * entryBytes }
}

/// Where a recorded call is.
package enum TraceState: UInt8, Sendable, CustomStringConvertible {
    /// The rank has entered the call.
    case started = 1
    /// The call returned (host backends: done).
    case completed = 2
    /// The call threw.
    case failed = 3
    /// A device backend put it on a stream.
    case enqueued = 4

    package var description: String {
        switch self {
        case .started: "started"
        case .completed: "completed"
        case .failed: "failed"
        case .enqueued: "enqueued"
        }
    }
}

/// A call as it travels through the segment: `CollectiveOp` flattened into a kind and two peers.
package enum TraceOp {
    /// The kind byte, the reduce op (0xff: none) and the two peers (-1: none) of `op`.
    package static func encode(_ op: CollectiveOp) -> (kind: UInt8, reduce: UInt8, first: Int32, second: Int32) {
        switch op {
        case .allReduce(let reduce): (0, reduce.rawValue, -1, -1)
        case .allGather: (1, 0xff, -1, -1)
        case .reduceScatter(let reduce): (2, reduce.rawValue, -1, -1)
        case .broadcast(let root): (3, 0xff, Int32(truncatingIfNeeded: root), -1)
        case .gather(let root): (4, 0xff, Int32(truncatingIfNeeded: root), -1)
        case .send(let peer): (5, 0xff, Int32(truncatingIfNeeded: peer), -1)
        case .recv(let peer): (6, 0xff, Int32(truncatingIfNeeded: peer), -1)
        case .sendRecv(let to, let from): (7, 0xff, Int32(truncatingIfNeeded: to), Int32(truncatingIfNeeded: from))
        case .barrier: (8, 0xff, -1, -1)
        }
    }

    /// Whether `kind` is a send, a receive or a sendRecv (numbered apart from the collectives).
    @inline(__always)
    package static func isPointToPoint(_ kind: UInt8) -> Bool { kind >= 5 && kind <= 7 }

    /// The operation the bytes stand for; nil for bytes no writer makes.
    package static func decode(kind: UInt8, reduce: UInt8, first: Int32, second: Int32) -> CollectiveOp? {
        let op = ReduceOp(rawValue: reduce)
        switch kind {
        case 0: return op.map { .allReduce($0) }
        case 1: return .allGather
        case 2: return op.map { .reduceScatter($0) }
        case 3: return .broadcast(root: Int(first))
        case 4: return .gather(root: Int(first))
        case 5: return .send(to: Int(first))
        case 6: return .recv(from: Int(first))
        case 7: return .sendRecv(to: Int(first), from: Int(second))
        case 8: return .barrier
        default: return nil
        }
    }
}
