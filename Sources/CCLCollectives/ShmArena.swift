import Atomics
import CCLCore
import CCLStore
import CCLSystem

/// One rank's handle on its group's shared-memory arena (`ArenaLayout`): owns the mapping and
/// runs the arena's sync points, its waits and its failure reporting.
///
/// A sync point: the rank raises its `epoch` (sequentially consistent, so a sleeper that counted
/// itself before checking is always woken), then waits until every rank's epoch reaches its own.
/// Waiting spins, yields, then sleeps on the shared wake word (`AdaptiveWait`). After every sleep
/// slice it checks that the ranks it waits for are alive and have not given up.
///
/// Threading: one thread at a time (the communicator's contract).
final class ShmArena: @unchecked Sendable {
    private var segment: SharedMemorySegment
    let view: ArenaView
    let rank: Int
    /// Global ranks of the group, for messages.
    let globalRanks: [Int]
    let groupName: String
    let policy: WaitPolicy
    /// Sync points this rank has reached.
    private(set) var epoch: UInt64 = 0
    /// Set once a wait failed for a reason other than a mismatched call; later calls rethrow it.
    private(set) var broken: CCLError?
    /// The communicator's current collective (its sequence number, truncated, never 0): a rank
    /// that gives up publishes it as its abort word, so a late peer knows which call it gave up.
    var currentCall: UInt32 = 1

    var worldSize: Int { view.layout.worldSize }

    private init(segment: consuming SharedMemorySegment, layout: ArenaLayout, rank: Int, group: StatelessProcessGroup, policy: WaitPolicy) {
        let base = segment.base
        self.segment = segment
        view = ArenaView(base: base, layout: layout)
        self.rank = rank
        globalRanks = group.globalRanks ?? Array(0..<group.worldSize)
        groupName = group.name
        let oversubscribed = group.worldSize > CPUAffinity.onlineCPUs
        var policy = policy
        if oversubscribed { policy.spinNanoseconds = 0 }
        self.policy = policy
        inlineSpins = oversubscribed ? 0 : 64
    }

    /// Collective over `group` (all ranks on this node): rank 0 creates the arena and passes its
    /// name through the group's store; the others attach; rank 0 unlinks the name once everyone
    /// has mapped it, so nothing is left in /dev/shm even if a rank is killed later.
    static func create(group: StatelessProcessGroup, slotBytes: Int, mailboxBytes: Int, policy: WaitPolicy) throws(CCLError) -> ShmArena {
        let operation = "create shared-memory communicator for group \(group.name)"
        let layout = try ArenaLayout.validated(
            worldSize: group.worldSize, slotBytes: slotBytes, mailboxBytes: mailboxBytes, operation: operation)
        let me = ProcessIdentity.current()
        if group.rank == 0 {
            SegmentNames.collectives.removeStale()
            let segment = try SharedMemorySegment.create(name: SegmentNames.collectives.make(for: me), size: layout.segmentSize)
            let name = segment.name
            let arena = ShmArena(segment: segment, layout: layout, rank: 0, group: group, policy: policy)
            arena.view.setIdentity(0, me)
            arena.view.writeHeader()
            _ = try group.broadcastObject(name, from: 0)
            try group.barrier()
            arena.unlinkName()
            return arena
        }
        let name = try group.broadcastObject(String?.none, from: 0)
        let segment = try SharedMemorySegment.attach(name: name, minimumSize: ArenaLayout.ranksOffset)
        let base = segment.base
        guard
            UnsafeAtomic<UInt64>(at: base.assumingMemoryBound(to: UInt64.AtomicRepresentation.self)).load(ordering: .acquiring)
                == ArenaLayout.magic
        else {
            throw CCLError(.malformed, operation: operation, rank: group.rank, "segment \(name) is not a collective arena")
        }
        let claimed = ArenaView.readClaimedSizes(base)
        guard claimed.version == ArenaLayout.version, claimed.world == layout.worldSize, claimed.slot == slotBytes,
            claimed.mailbox == mailboxBytes, claimed.size == UInt64(layout.segmentSize), segment.size >= layout.segmentSize
        else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: group.rank,
                "arena \(name) was made for \(claimed.world) ranks, slots of \(claimed.slot) B, mailboxes of \(claimed.mailbox) B "
                    + "(version \(claimed.version)); this rank expects \(layout.worldSize), \(slotBytes), \(mailboxBytes): "
                    + "every rank must use the same options")
        }
        let arena = ShmArena(segment: segment, layout: layout, rank: group.rank, group: group, policy: policy)
        arena.view.setIdentity(group.rank, me)
        arena.view.attached(group.rank).store(1, ordering: .releasing)
        try group.barrier()
        return arena
    }

    private func unlinkName() {
        segment.unlink()
    }

    /// "rank 3" in the group's global numbering.
    func name(of rank: Int) -> String { "rank \(globalRanks[rank])" }

    // MARK: Sync points

    /// Wakes sleepers after this rank published something (an epoch, a mailbox counter, a flag).
    /// The publication must be sequentially consistent, so no sleeper is missed.
    @inline(__always)
    func notify() {
        if view.sleepers.load(ordering: .sequentiallyConsistent) != 0 {
            view.wakeWord.wrappingIncrement(ordering: .sequentiallyConsistent)
            Futex.wake(view.wakeWordAddress)
        }
    }

    /// Reaches the next sync point.
    @inline(__always)
    func arrive() -> UInt64 {
        epoch &+= 1
        view.epoch(rank).store(epoch, ordering: .sequentiallyConsistent)
        notify()
        return epoch
    }

    /// Reaches the next sync point and waits for every rank to reach it.
    ///
    /// The fast path (everyone already there, or arriving within a short spin) reads the epochs
    /// in a plain loop: no closure, no allocation.
    func syncAll(_ what: @autoclosure () -> String, budget: inout CallBudget) throws(CCLError) {
        let target = arrive()
        firstPending = 0
        for _ in 0..<inlineSpins {
            if allArrived(target) { return }
            Futex.relax()
        }
        try wait(
            until: { self.allArrived(target) }, budget: &budget, what,
            waitingFor: { (0..<self.worldSize).filter { self.view.epoch($0).load(ordering: .acquiring) < target } })
    }

    /// Spins of the inline fast path before the adaptive wait (~1 µs); none when the node's
    /// ranks outnumber this process's CPUs (spinning would hold the core a peer needs).
    private let inlineSpins: Int
    /// Ranks below this one are known to have reached the current sync point.
    private var firstPending = 0

    @inline(__always)
    private func allArrived(_ target: UInt64) -> Bool {
        while firstPending < worldSize {
            if view.epoch(firstPending).load(ordering: .acquiring) < target { return false }
            firstPending += 1
        }
        return true
    }

    /// Waits until `ready()`; after each sleep slice checks that the ranks `waitingFor()` names
    /// are alive and have not aborted. On failure the arena is broken and the others are told.
    func wait(
        until ready: () -> Bool, budget: inout CallBudget, _ what: () -> String, waitingFor: () -> [Int]
    ) throws(CCLError) {
        if let broken { throw broken }
        let timeout = budget.next()
        let waiter = AdaptiveWait(policy: policy, timeout: timeout, stallIntervalNanoseconds: 0)
        do {
            try waiter.run(
                until: ready,
                sleep: { limit in
                    view.sleepers.wrappingIncrement(ordering: .sequentiallyConsistent)
                    let word = view.wakeWord.load(ordering: .sequentiallyConsistent)
                    if !ready() { _ = Futex.wait(view.wakeWordAddress, expected: word, timeoutNanoseconds: limit) }
                    view.sleepers.wrappingDecrement(ordering: .sequentiallyConsistent)
                },
                check: { () throws(CCLError) in try checkPeers(waitingFor(), what) },
                stalled: { _ in },
                timedOut: { waited in
                    CCLError(
                        .timeout, operation: what(), rank: globalRanks[rank],
                        "waited \(describeDuration(waited)) on group \(groupName); "
                            + CCLError.missingRanks(waitingFor().map { self.globalRanks[$0] }))
                },
                cancelled: { CCLError(.cancelled, operation: what(), rank: globalRanks[rank], "the task was cancelled") })
        } catch {
            fail(error)
            throw error
        }
    }

    /// Throws when one of `ranks` died or gave up.
    private func checkPeers(_ ranks: [Int], _ what: () -> String) throws(CCLError) {
        for peer in ranks {
            if view.aborted(peer).load(ordering: .acquiring) != 0 {
                throw CCLError(
                    .peerDead, operation: what(), rank: globalRanks[rank], peer: name(of: peer),
                    "\(name(of: peer)) gave up: \(view.reason(peer))")
            }
            let identity = view.identity(peer)
            if identity.pid != 0, !identity.isAlive {
                throw CCLError(
                    .peerDead, operation: what(), rank: globalRanks[rank], peer: name(of: peer),
                    "\(name(of: peer)) (\(identity)) died")
            }
        }
    }

    /// The first peer that gave up call `call` or an earlier one, with its reason (one atomic load
    /// per peer).
    func peerThatGaveUp(atOrBefore call: UInt32) -> (peer: Int, reason: String)? {
        for peer in 0..<worldSize where peer != rank {
            let word = view.aborted(peer).load(ordering: .acquiring)
            if word != 0, Int32(bitPattern: call &- word) >= 0 { return (peer, view.reason(peer)) }
        }
        return nil
    }

    /// Marks the arena broken by `error` and tells the other ranks why, so they stop waiting for
    /// this one at once instead of at their timeout.
    func fail(_ error: CCLError) {
        guard broken == nil else { return }
        broken = error
        view.setReason(rank, error.relayText)
        view.aborted(rank).store(currentCall, ordering: .sequentiallyConsistent)
        view.wakeWord.wrappingIncrement(ordering: .sequentiallyConsistent)
        Futex.wake(view.wakeWordAddress)
    }
}
