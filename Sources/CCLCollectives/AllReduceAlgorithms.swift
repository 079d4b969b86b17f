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

    /// Pure choice: recursive doubling for small calls on power-of-two groups, ring otherwise.
    static func choose(bytes: Int, worldSize: Int) -> PeerAllReduce {
        worldSize & (worldSize - 1) == 0 && bytes <= 32 << 10 ? .recursiveDoubling : .ring
    }
}
