import CCLCore

/// What a shared-memory all-reduce costs on this node, and the algorithm that costs least.
///
/// The inputs are measured when a communicator is made (`ShmCommunicator.costModel`: every rank
/// times sync points, a copy of a peer's slot and a reduction of two slots, and all take the
/// median of what the ranks measured, so every rank picks the same algorithm) or configured with
/// `CCL_SHM_COST`. Per piece of `p` bytes (at most one slot) on `n` ranks, `f` ranks per CPU:
///
/// ```
/// one-shot  sync + f·p/copy + f·n·p/reduce          every rank reduces every rank's piece
/// two-shot  2·sync + 2·f·p/copy + f·p/reduce        each rank reduces 1/n, then copies the rest
/// ```
///
/// One-shot wins when the sync point costs more than reducing the other ranks' data again, so for
/// two ranks and small pieces; two-shot as soon as `n` or `p` grows (on the 16-core host of the
/// H200 machine, 64 KiB on 16 ranks took 194 µs one-shot, where the data crossing per rank is
/// 1 MiB).
public struct ShmCostModel: Sendable, Equatable, CustomStringConvertible {
    /// One sync point of the whole group (every rank arrives and sees the others arrive), in ns.
    public var syncNanoseconds: Double
    /// Bytes per nanosecond (GB/s) one rank copies out of a peer's slot.
    public var copyBytesPerNanosecond: Double
    /// Source bytes per nanosecond (GB/s) one rank reduces (float32 sum of two slots).
    public var reduceBytesPerNanosecond: Double
    /// Ranks of the group per CPU of the node (at least 1): when ranks outnumber CPUs, each one's
    /// copies take that many times longer.
    public var ranksPerCPU: Double

    /// A model from its inputs; non-finite or non-positive rates are raised to a small positive value.
    public init(syncNanoseconds: Double, copyBytesPerNanosecond: Double, reduceBytesPerNanosecond: Double, ranksPerCPU: Double = 1) {
        self.syncNanoseconds = syncNanoseconds.isFinite ? max(0, syncNanoseconds) : 0
        self.copyBytesPerNanosecond = Self.positive(copyBytesPerNanosecond)
        self.reduceBytesPerNanosecond = Self.positive(reduceBytesPerNanosecond)
        self.ranksPerCPU = ranksPerCPU.isFinite ? max(1, ranksPerCPU) : 1
    }

    private static func positive(_ rate: Double) -> Double { rate.isFinite && rate > 0.001 ? rate : 0.001 }

    /// Inputs of a typical server core (a sync of 1 µs, copies at 20 GB/s, reductions at 10):
    /// the choice of groups that measure nothing (the in-process group of the tests).
    public static let typical = ShmCostModel(syncNanoseconds: 1_000, copyBytesPerNanosecond: 20, reduceBytesPerNanosecond: 10)

    /// Estimated nanoseconds of one piece of `pieceBytes` on `worldSize` ranks.
    public func nanoseconds(_ algorithm: SlotAllReduce, pieceBytes: Int, worldSize: Int) -> Double {
        let piece = Double(pieceBytes)
        let copy = ranksPerCPU * piece / copyBytesPerNanosecond
        let reduce = ranksPerCPU * piece / reduceBytesPerNanosecond
        switch algorithm {
        case .oneShot: return syncNanoseconds + copy + Double(worldSize) * reduce
        case .twoShot: return 2 * syncNanoseconds + 2 * copy + reduce
        }
    }

    /// The cheaper algorithm for a call of `bytes` on `worldSize` ranks through slots of
    /// `slotBytes` (larger calls are pipelined in pieces of one slot); one-shot on a tie.
    public func choose(bytes: Int, worldSize: Int, slotBytes: Int) -> SlotAllReduce {
        guard worldSize > 1 else { return .oneShot }
        let piece = max(0, min(bytes, slotBytes))
        let twoShot = nanoseconds(.twoShot, pieceBytes: piece, worldSize: worldSize)
        return twoShot < nanoseconds(.oneShot, pieceBytes: piece, worldSize: worldSize) ? .twoShot : .oneShot
    }

    /// The smallest call (in bytes, to 64) for which two-shot wins on `worldSize` ranks, or nil when
    /// one-shot wins up to a full slot: communicators compare a call's size with it (`ccl bench`
    /// prints it).
    public func twoShotFrom(worldSize: Int, slotBytes: Int) -> Int? {
        var low = 0, high = slotBytes
        guard choose(bytes: high, worldSize: worldSize, slotBytes: slotBytes) == .twoShot else { return nil }
        // The difference is linear in the piece size, so the choice flips at most once.
        while high - low > 64 {
            let middle = (low + high) / 2
            if choose(bytes: middle, worldSize: worldSize, slotBytes: slotBytes) == .twoShot { high = middle } else { low = middle }
        }
        return high
    }

    /// "sync 0.42 µs, copy 28.1 GB/s, reduce 14.0 GB/s, 1.0 ranks/CPU".
    public var description: String {
        "sync \(Self.fixed(syncNanoseconds / 1_000)) µs, copy \(Self.fixed(copyBytesPerNanosecond)) GB/s, "
            + "reduce \(Self.fixed(reduceBytesPerNanosecond)) GB/s, \(Self.fixed(ranksPerCPU)) ranks/CPU"
    }

    private static func fixed(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }

    /// `CCL_SHM_COST="SYNC_NS,COPY_GBPS,REDUCE_GBPS"` (for example "800,20,10"): the inputs to use
    /// instead of measuring them; nil when unset. The error names the variable and the value.
    static func parse(_ value: String) throws(CCLError) -> ShmCostModel {
        let fields = value.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingSpaces) }
        guard fields.count == 3, let sync = fields[0], let copy = fields[1], let reduce = fields[2],
            sync.isFinite, (0...1e9).contains(sync), copy.isFinite, copy > 0, copy <= 1e4, reduce.isFinite, reduce > 0, reduce <= 1e4
        else {
            throw CollectiveOptions.invalid(
                "CCL_SHM_COST", value, "SYNC_NS,COPY_GBPS,REDUCE_GBPS (sync 0...1e9 ns, rates above 0 and at most 10000 GB/s)")
        }
        return ShmCostModel(syncNanoseconds: sync, copyBytesPerNanosecond: copy, reduceBytesPerNanosecond: reduce)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
