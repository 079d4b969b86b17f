import Atomics
import CCLCore
import CCLSystem
import Logging

/// The writer's side of the shared-memory ring: copies each message into consecutive chunks and
/// publishes them one by one (see `RingLayout` for the protocol).
///
/// Threading: one thread at a time. Ownership: owns the segment; the name is unlinked once every
/// reader attached (`waitUntilReady`), at `close`, or at deinit, so nothing is left in /dev/shm.
final class RingWriter {
    private var segment: SharedMemorySegment
    let view: RingView
    let readerRanks: [Int]
    let rank: Int
    private let options: QueueOptions
    /// Chunks published so far (the writer's copy of `published`).
    private var sequence: UInt64 = 0
    /// A lower bound of the slowest attached reader's cursor.
    private var cachedMinCursor: UInt64 = 0
    private var closed = false
    /// Set when a message was cut off part-way (timeout or cancellation between its chunks):
    /// readers hold half a message, so nothing more may be written.
    private var broken: CCLError?
    /// A reader found dead while waiting: left behind, reported after the message is written.
    private var deadReader: CCLError?

    /// Whether a wake-up is followed by a yield: only when the writer and its local readers fit
    /// on the CPUs. When they outnumber them, yielding hands the writer's core to a reader and
    /// slows the stream (measured: 3 readers on 2 cores, 1 MiB one-way 33 → 52–112 µs).
    private let yieldAfterWake: Bool

    var segmentName: String { segment.name }

    init(readerRanks: [Int], rank: Int, options: QueueOptions) throws(CCLError) {
        let operation = "create queue (writer rank \(rank))"
        let layout = try RingLayout.validated(
            readerCount: readerRanks.count, chunkCount: options.chunkCount, chunkBytes: options.chunkBytes,
            operation: operation)
        SegmentNames.queue.removeStale()
        let me = ProcessIdentity.current()
        do {
            segment = try SharedMemorySegment.create(name: SegmentNames.queue.make(for: me), size: layout.segmentSize)
        } catch {
            throw error.context(operation: operation + ": " + error.operation, rank: rank)
        }
        view = RingView(base: segment.base, layout: layout)
        self.readerRanks = readerRanks
        self.rank = rank
        self.options = options
        yieldAfterWake = readerRanks.count + 1 <= CPUAffinity.onlineCPUs
        view.writeHeader(writer: me)
        view.writerState.store(SlotState.writerOpen, ordering: .relaxed)
        view.magic.store(RingLayout.magic, ordering: .releasing)
    }

    deinit { close() }

    /// Marks the queue closed and wakes every sleeping reader; readers drain what was published,
    /// then get `.closed`.
    func close() {
        guard !closed else { return }
        closed = true
        view.writerState.store(SlotState.writerClosed, ordering: .sequentiallyConsistent)
        view.dataWord.wrappingIncrement(ordering: .sequentiallyConsistent)
        Futex.wake(view.dataWordAddress)
        segment.unlink()
    }

    private func describe(reader r: Int) -> String {
        let state = view.readerState(r).load(ordering: .acquiring)
        let name = "reader rank \(readerRanks[r])"
        if state == SlotState.neverAttached || state == SlotState.attaching { return "\(name) (never attached)" }
        return "\(name) (\(view.readerIdentity(r)))"
    }

    /// "; flight recorders: rank 2 is inside allReduce(sum) … since 12.0 s" for the readers of
    /// slots `slots`, when their recorders say something.
    private func activity(of slots: [Int]) -> String {
        options.readerActivity?(slots.map { readerRanks[$0] }).map { "; flight recorders: \($0)" } ?? ""
    }

    // MARK: readiness

    /// Returns once every reader attached, then unlinks the segment name.
    func waitUntilReady(timeout: Timeout) throws(CCLError) {
        let wait = AdaptiveWait(policy: options.wait, timeout: timeout, stallIntervalNanoseconds: options.stallWarningNanoseconds)
        let pending = { [view] in
            (0..<view.layout.readerCount).filter {
                let state = view.readerState($0).load(ordering: .acquiring)
                return state == SlotState.neverAttached || state == SlotState.attaching
            }
        }
        try wait.run(
            until: { pending().isEmpty },
            sleep: { limit in self.sleepOnSpace(limit: limit, stillBlocked: { !pending().isEmpty }) },
            check: {},
            stalled: { waited in
                let names = pending().map { self.describe(reader: $0) }.joined(separator: ", ")
                self.options.logger.warning(
                    "queue writer rank \(self.rank) waited \(describeDuration(waited)) for readers to attach: \(names)")
            },
            timedOut: { waited in
                CCLError(
                    .timeout, operation: "waitUntilReady (queue writer)", rank: rank,
                    peer: pending().map { "reader rank \(self.readerRanks[$0])" }.joined(separator: ", "),
                    "waited \(describeDuration(waited)); these readers never attached to \(self.segment.name)")
            },
            cancelled: { CCLError(.cancelled, operation: "waitUntilReady (queue writer)", rank: rank, "cancelled") })
        view.readyFlag.store(1, ordering: .releasing)
        view.dataWord.wrappingIncrement(ordering: .sequentiallyConsistent)
        Futex.wake(view.dataWordAddress)
        segment.unlink()
    }

    // MARK: writing

    /// Writes one message made of `parts` (a gather list), streaming through as many chunks as
    /// it needs. Each byte is copied once, from the caller's memory into the ring. `timeout`
    /// bounds the whole call.
    ///
    /// Returns a `.readerLost` report when a reader was found dead on the way: the message went
    /// to the others and the dead reader is left behind. Throws when nothing was written (the
    /// queue is unchanged) or when the message was cut off part-way (the queue is then broken).
    func write(parts: [UnsafeRawBufferPointer], totalBytes: Int, budget: inout CallBudget, operation: String) throws(CCLError)
        -> CCLError?
    {
        guard !closed else {
            throw CCLError(.closed, operation: operation, rank: rank, "the queue was closed by this writer")
        }
        if let broken { throw broken }
        let chunkBytes = view.layout.chunkBytes
        var offset = 0
        var gather = GatherCursor(parts)
        repeat {
            do {
                try waitForSpace(budget: &budget, operation: operation)
            } catch {
                if offset > 0 {
                    var cut = error
                    cut.message += "; the message was cut off after \(offset) of \(totalBytes) bytes, so this queue accepts no more"
                    broken = cut
                    throw cut
                }
                throw error
            }
            let header = view.chunkHeader(sequence: sequence)
            let payload = view.chunkPayload(sequence: sequence)
            let length = min(chunkBytes, totalBytes - offset)
            header.storeBytes(of: UInt64(totalBytes), toByteOffset: 0, as: UInt64.self)
            header.storeBytes(of: UInt64(offset), toByteOffset: 8, as: UInt64.self)
            header.storeBytes(of: UInt32(length), toByteOffset: 16, as: UInt32.self)
            // A large chunk goes in slices, each announced, so streaming readers start early.
            let sliced = length > RingLayout.sliceBytes
            if sliced {
                view.filled.store(0, ordering: .relaxed)
                view.fillTag.store(sequence &+ 1, ordering: .releasing)
            }
            var filled = 0
            repeat {
                let end = sliced ? min(length, filled + RingLayout.sliceBytes) : length
                gather.take(end - filled) { piece in
                    if let source = piece.baseAddress { (payload + filled).copyMemory(from: source, byteCount: piece.count) }
                    filled += piece.count
                }
                if sliced { view.filled.store(UInt64(filled), ordering: .releasing) }
            } while filled < length
            offset += length
            publish()
        } while offset < totalBytes
        defer { deadReader = nil }
        return deadReader
    }

    /// Makes chunk `sequence` visible (release), then wakes readers only if one sleeps: the
    /// sequentially consistent store/load pair against the readers' `readerSleepers` increment
    /// and re-check means either the reader sees the chunk or the writer sees the sleeper.
    ///
    /// After waking a reader the writer yields once (`yieldAfterWake`): the kernel often queues
    /// the woken reader on the writer's own CPU, where it would otherwise wait until the writer
    /// blocks or is preempted (measured here: the ~30 µs the bench's writer ran on after the
    /// wake; a writer busy computing would hold it for up to a scheduler tick). Only sleeping
    /// readers cost this.
    @inline(__always)
    private func publish() {
        sequence &+= 1
        view.published.store(sequence, ordering: .sequentiallyConsistent)
        if view.readerSleepers.load(ordering: .sequentiallyConsistent) != 0 {
            view.dataWord.wrappingIncrement(ordering: .sequentiallyConsistent)
            if Futex.wake(view.dataWordAddress) > 0, yieldAfterWake { Futex.yield() }
        }
    }

    /// The slowest cursor among readers that have not detached (UInt64.max when none is left).
    private func slowestCursor() -> UInt64 {
        var slowest = UInt64.max
        for r in 0..<view.layout.readerCount {
            if view.readerState(r).load(ordering: .sequentiallyConsistent) == SlotState.detached { continue }
            slowest = min(slowest, view.cursor(r).load(ordering: .sequentiallyConsistent))
        }
        return slowest
    }

    @inline(__always)
    private func hasSpace() -> Bool {
        let count = UInt64(view.layout.chunkCount)
        if sequence &- cachedMinCursor < count { return true }
        let slowest = slowestCursor()
        if slowest == .max {
            cachedMinCursor = sequence
            return true
        }
        cachedMinCursor = slowest
        return sequence &- slowest < count
    }

    /// Readers still holding the chunk the writer needs next.
    private func laggingReaders() -> [Int] {
        let needed = sequence &+ 1 &- UInt64(view.layout.chunkCount)
        return (0..<view.layout.readerCount).filter { r in
            view.readerState(r).load(ordering: .acquiring) != SlotState.detached
                && view.cursor(r).load(ordering: .acquiring) < needed
        }
    }

    private func waitForSpace(budget: inout CallBudget, operation: String) throws(CCLError) {
        if hasSpace() { return }
        let timeout = budget.next()
        let wait = AdaptiveWait(
            policy: options.wait, timeout: timeout,
            stallIntervalNanoseconds: options.stallWarningNanoseconds)
        try wait.run(
            until: hasSpace,
            sleep: { limit in self.sleepOnSpace(limit: limit, stillBlocked: { !self.hasSpace() }) },
            check: { () throws(CCLError) in
                for r in laggingReaders() where view.readerState(r).load(ordering: .acquiring) == SlotState.attached {
                    guard !view.readerIdentity(r).isAlive else { continue }
                    let peer = describe(reader: r)
                    options.logger.error("queue writer rank \(rank): \(peer) died; going on without it")
                    // Left behind: the message goes to the others, then enqueue reports the death once.
                    deadReader = CCLError(
                        .readerLost, operation: operation, rank: rank, peer: peer,
                        "reader process died before reading message chunk \(sequence &- UInt64(view.layout.chunkCount)); "
                            + "this message went to the other readers, and later ones will too")
                    view.readerState(r).store(SlotState.detached, ordering: .sequentiallyConsistent)
                    if view.readerSleeping(r).exchange(0, ordering: .sequentiallyConsistent) != 0 {
                        view.readerSleepers.wrappingDecrement(ordering: .sequentiallyConsistent)
                    }
                }
            },
            stalled: { waited in
                let lagging = self.laggingReaders()
                let names = lagging.map { self.describe(reader: $0) }.joined(separator: ", ")
                self.options.logger.warning(
                    "No free chunk in queue \(self.segment.name) for \(describeDuration(waited)): writer rank \(self.rank) waits for \(names)\(self.activity(of: lagging))"
                )
            },
            timedOut: { waited in
                let lagging = self.laggingReaders()
                return CCLError(
                    .timeout, operation: operation, rank: rank, peer: lagging.map { self.describe(reader: $0) }.joined(separator: ", "),
                    "no free chunk after \(describeDuration(waited)): these readers have not read the oldest message\(self.activity(of: lagging))"
                )
            },
            cancelled: { CCLError(.cancelled, operation: operation, rank: rank, "cancelled while waiting for a free chunk") })
    }

    /// Sleeps on `spaceWord` until a reader advances (or attaches), at most `limit` ns.
    private func sleepOnSpace(limit: UInt64, stillBlocked: () -> Bool) {
        let expected = view.spaceWord.load(ordering: .acquiring)
        view.writerSleeping.store(1, ordering: .sequentiallyConsistent)
        if stillBlocked() {
            _ = Futex.wait(view.spaceWordAddress, expected: expected, timeoutNanoseconds: limit)
        }
        view.writerSleeping.store(0, ordering: .relaxed)
    }
}
