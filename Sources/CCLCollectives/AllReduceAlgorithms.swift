/// The all-reduce algorithms of every CPU transport and the pure choice among them, in one place.
///
/// "Slot" and "peer" name the two transport abstractions the algorithms run on, not one
/// transport each: slots (`SlotTransport`: one slot per rank that every rank reads, and sync
/// points) are the shared-memory arena and the in-process group; peers (`PeerTransport`: frames
/// exchanged between pairs) are the TCP mesh and the in-process group. Forced with `CCL_ALGO`
/// (`ShmOptions.allReduce`, `TCPOptions.allReduce`).

/// Which all-reduce a slot transport runs.
public enum SlotAllReduce: String, Sendable, CaseIterable {
    /// Each rank publishes its piece, each reduces all of them: one sync per piece.
    case oneShot = "oneshot"
    /// Each rank reduces 1/n of the piece, then everyone copies the reduced parts: two syncs per
    /// piece, 1/n of the arithmetic.
    case twoShot = "twoshot"

    /// The choice of a group that measured nothing (`ShmCostModel.typical`, slots of 256 KiB);
    /// a shared-memory communicator chooses by the costs it measured (`ShmCommunicator.costModel`).
    static func choose(bytes: Int, worldSize: Int) -> SlotAllReduce {
        ShmCostModel.typical.choose(bytes: bytes, worldSize: worldSize, slotBytes: ShmOptions().slotBytes)
    }
}

/// Which all-reduce the point-to-point path runs.
public enum PeerAllReduce: String, Sendable, CaseIterable {
    /// Reduce-scatter then all-gather around a ring: 2(n-1)/n of the data per rank, 2(n-1) steps.
    case ring
    /// log2(n) full exchanges with partners at distance 1, 2, 4, …: fewest steps (powers of two).
    case recursiveDoubling = "rd"
    /// Reduce-scatter by recursive halving, all-gather by recursive doubling (Rabenseifner's):
    /// the ring's data in 2·log2(n) steps (powers of two).
    case halvingDoubling = "rhd"

    /// Pure choice: on power-of-two groups recursive doubling for small calls, halving-doubling
    /// above that from 4 ranks (measured here on 4 and 8 ranks over TCP: ×0.4–0.9 the ring's
    /// time from 64 KiB to 16 MiB, BENCHMARKS.md); the ring otherwise (with 2 ranks the two are
    /// the same exchanges, and the ring can stream its frames).
    static func choose(bytes: Int, worldSize: Int) -> PeerAllReduce {
        guard worldSize & (worldSize - 1) == 0 else { return .ring }
        if bytes <= 32 << 10 { return .recursiveDoubling }
        return halvesAndDoubles(worldSize: worldSize) ? .halvingDoubling : .ring
    }

    /// Whether a group runs halving-doubling above the small sizes, and its reduce-scatter by
    /// recursive halving and all-gather by recursive doubling at every size: power-of-two groups
    /// of 4 ranks and more (with 2 the exchanges are the ring's).
    static func halvesAndDoubles(worldSize: Int) -> Bool {
        worldSize >= 4 && worldSize & (worldSize - 1) == 0
    }
}
