import Atomics
import CCLCore
import CCLSystem
import Logging

/// A same-node reader of the shared-memory ring (see `RingLayout` for the protocol).
///
/// Threading: one thread reads at a time; `detach` may come from any thread and ends a blocked
/// read with `.closed`. A message that fits one chunk is handed to the caller in place (zero
/// copies) once its chunk is published, and the chunk is released when the closure returns; a
/// longer message is copied once, or handed over in place (`forEachFragment`), chunk by chunk
/// and, inside a chunk, slice by slice as the writer announces them.
///
/// A read that fails part-way through a message (timeout, cancellation) drops the rest of that
/// message on the next call, so the stream stays aligned; the failed call's error says so.
final class RingReader: @unchecked Sendable {
    private let segment: SharedMemorySegment
    private let view: RingView
    let slot: Int
    let rank: Int
    private let writerRank: Int
    private let options: QueueOptions
    private let maxMessageBytes: Int
    private var cursor: UInt64 = 0
    private var assembly: UnsafeMutableRawBufferPointer?
    /// The message whose remaining chunks must be skipped before the next one: (length, next offset).
    private var discarding: (length: Int, offset: Int)?
    private let detached = ManagedAtomic<Bool>(false)

    init(handle: MessageQueueHandle, segmentName: String, slot: Int, rank: Int, options: QueueOptions) throws(CCLError) {
        let operation = "attach queue reader (rank \(rank))"
        let expected = try RingLayout.validated(
            readerCount: handle.localReaderRanks.count, chunkCount: handle.chunkCount, chunkBytes: handle.chunkBytes,
            operation: operation)
        do {
            segment = try SharedMemorySegment.attach(name: segmentName, minimumSize: expected.segmentSize)
        } catch {
            throw error.context(operation: operation + ": " + error.operation, rank: rank, peer: "writer rank \(handle.writerRank)")
        }
        view = RingView(base: segment.base, layout: expected)
        guard view.magic.load(ordering: .acquiring) == RingLayout.magic else {
            throw CCLError(.malformed, operation: operation, rank: rank, "segment \(segmentName) is not a swift-ccl queue ring")
        }
        let claimed = RingView.readClaimedSizes(segment.base)
        guard claimed.version == RingLayout.version, claimed.readers == expected.readerCount,
            claimed.chunks == expected.chunkCount, claimed.bytes == expected.chunkBytes,
            claimed.size == UInt64(expected.segmentSize)
        else {
            throw CCLError(
                .malformed, operation: operation, rank: rank,
                "segment \(segmentName) header (version \(claimed.version), \(claimed.readers) readers, "
                    + "\(claimed.chunks)×\(claimed.bytes) B) does not match the handle "
                    + "(\(expected.readerCount) readers, \(expected.chunkCount)×\(expected.chunkBytes) B)")
        }
        // Claim the slot, write the identity, then publish "attached": a writer never sees an
        // attached reader without its pid.
        guard
            view.readerState(slot).compareExchange(
                expected: SlotState.neverAttached, desired: SlotState.attaching, ordering: .acquiringAndReleasing
            ).exchanged
        else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: rank,
                "reader slot \(slot) of \(segmentName) is already taken: two processes attached as rank \(rank)")
        }
        view.setReaderIdentity(slot, ProcessIdentity.current())
        guard
            view.readerState(slot).compareExchange(
                expected: SlotState.attaching, desired: SlotState.attached, ordering: .sequentiallyConsistent
            ).exchanged
        else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "reader slot \(slot) changed while attaching")
        }
        self.slot = slot
        self.rank = rank
        self.writerRank = handle.writerRank
        self.options = options
        self.maxMessageBytes = max(0, min(handle.maxMessageBytes, options.maxMessageBytes))
        cursor = view.cursor(slot).load(ordering: .acquiring)
        wakeWriter()
    }

    deinit {
        detach()
        assembly?.deallocate()
    }

    /// Leaves the queue: the writer stops waiting for this reader, and a read blocked in another
    /// thread ends with `.closed`.
    func detach() {
        guard !detached.exchange(true, ordering: .sequentiallyConsistent) else { return }
        view.readerState(slot).store(SlotState.detached, ordering: .sequentiallyConsistent)
        wakeWriter()
        view.dataWord.wrappingIncrement(ordering: .sequentiallyConsistent)
        Futex.wake(view.dataWordAddress)
    }

    private var writerPeer: String { "writer rank \(writerRank) (\(view.writer))" }

    // MARK: waiting

    @inline(__always)
    private func wakeWriter() {
        if view.writerSleeping.load(ordering: .sequentiallyConsistent) != 0 {
            view.spaceWord.wrappingIncrement(ordering: .sequentiallyConsistent)
            Futex.wake(view.spaceWordAddress)
        }
    }

    @inline(__always)
    private func chunkAvailable() -> Bool { view.published.load(ordering: .acquiring) > cursor }

    /// Throws `.closed` when this reader was detached, or left behind by the writer as dead.
    private func checkAttached(_ operation: String) throws(CCLError) {
        guard view.readerState(slot).load(ordering: .acquiring) == SlotState.attached else {
            throw CCLError(
                .closed, operation: operation, rank: rank, peer: writerPeer,
                "this reader was closed or left behind by the writer; what it read last may be overwritten")
        }
    }

    /// Sleeps on `dataWord` at most `limit` ns, announcing itself so a publish wakes it.
    private func sleepOnData(limit: UInt64, ready: () -> Bool) {
        let expected = view.dataWord.load(ordering: .acquiring)
        view.readerSleeping(slot).store(1, ordering: .sequentiallyConsistent)
        view.readerSleepers.wrappingIncrement(ordering: .sequentiallyConsistent)
        // Sequentially consistent re-check, paired with the writer's publish and sleeper load.
        if view.published.load(ordering: .sequentiallyConsistent) <= cursor, !ready() {
            _ = Futex.wait(view.dataWordAddress, expected: expected, timeoutNanoseconds: limit)
        }
        if view.readerSleeping(slot).exchange(0, ordering: .sequentiallyConsistent) != 0 {
            view.readerSleepers.wrappingDecrement(ordering: .sequentiallyConsistent)
        }
    }

    private func checkWriterAlive(_ operation: String) throws(CCLError) {
        if !view.writer.isAlive {
            throw CCLError(
                .peerDead, operation: operation, rank: rank, peer: writerPeer, "the writer process died; no more messages will come")
        }
    }

    /// Bytes of chunk `cursor` the writer has filled so far while it fills it in slices, or -1
    /// when it is not doing so (its header is then not yet valid, unless the chunk is published).
    @inline(__always)
    private func filledSoFar() -> Int {
        guard view.fillTag.load(ordering: .acquiring) == cursor &+ 1 else { return -1 }
        return Int(truncatingIfNeeded: view.filled.load(ordering: .acquiring))
    }

    /// Waits until chunk `cursor` is published or, with `beyond`, until the writer filling it in
    /// slices has filled more than `beyond` bytes (-1: its header is valid); throws `.closed` once
    /// the writer closed and everything published was read.
    private func waitForChunk(budget: inout CallBudget, operation: String, beyond: Int? = nil) throws(CCLError) {
        // The fast path makes no closure (each would be an allocation per message).
        if chunkAvailable() { return }
        if let beyond, filledSoFar() > beyond { return }
        let partial = { [self] in beyond.map { filledSoFar() > $0 } ?? false }
        let timeout = budget.next()
        let ready = { [view] in
            self.chunkAvailable() || partial() || view.writerState.load(ordering: .acquiring) == SlotState.writerClosed
                || self.detached.load(ordering: .relaxed)
        }
        let wait = AdaptiveWait(policy: options.wait, timeout: timeout, stallIntervalNanoseconds: options.stallWarningNanoseconds)
        try wait.run(
            until: ready,
            sleep: { limit in sleepOnData(limit: limit, ready: ready) },
            check: { () throws(CCLError) in try checkWriterAlive(operation) },
            stalled: { waited in
                self.options.logger.info(
                    "queue reader rank \(self.rank): \(self.writerPeer) has sent nothing for \(describeDuration(waited))")
            },
            timedOut: { waited in
                CCLError(
                    .timeout, operation: operation, rank: rank, peer: writerPeer,
                    "waited \(describeDuration(waited)): the writer sent nothing")
            },
            cancelled: { CCLError(.cancelled, operation: operation, rank: rank, peer: writerPeer, "cancelled") })
        try checkAttached(operation)
        if !chunkAvailable() && !partial() {
            throw CCLError(.closed, operation: operation, rank: rank, peer: writerPeer, "the writer closed the queue")
        }
    }

    /// Returns once the writer saw every reader attach.
    func waitUntilReady(timeout: Timeout) throws(CCLError) {
        let operation = "waitUntilReady (queue reader)"
        let ready = { [view] in
            view.readyFlag.load(ordering: .acquiring) != 0 || view.writerState.load(ordering: .acquiring) == SlotState.writerClosed
        }
        let wait = AdaptiveWait(policy: options.wait, timeout: timeout, stallIntervalNanoseconds: 0)
        try wait.run(
            until: ready,
            sleep: { limit in sleepOnData(limit: limit, ready: ready) },
            check: { () throws(CCLError) in try checkWriterAlive(operation) },
            stalled: { _ in },
            timedOut: { waited in
                CCLError(
                    .timeout, operation: operation, rank: rank, peer: writerPeer,
                    "waited \(describeDuration(waited)); the writer has not called waitUntilReady or other readers never attached")
            },
            cancelled: { CCLError(.cancelled, operation: operation, rank: rank, "cancelled") })
    }

    // MARK: reading

    /// The validated header of chunk `cursor`.
    private func header(operation: String) throws(CCLError) -> (messageLength: Int, offset: Int, length: Int) {
        let raw = view.chunkHeader(sequence: cursor)
        let messageLength = raw.load(fromByteOffset: 0, as: UInt64.self)
        let offset = raw.load(fromByteOffset: 8, as: UInt64.self)
        let length = UInt64(raw.load(fromByteOffset: 16, as: UInt32.self))
        guard messageLength <= 1 << 62, length <= UInt64(view.layout.chunkBytes), offset <= messageLength,
            length <= messageLength - offset
        else {
            throw CCLError(
                .malformed, operation: operation, rank: rank, peer: writerPeer,
                "chunk \(cursor) header is corrupt (message \(messageLength) B, fragment \(length) B at \(offset))")
        }
        return (Int(messageLength), Int(offset), Int(length))
    }

    /// Releases chunk `cursor` to the writer.
    @inline(__always)
    private func advance() {
        cursor &+= 1
        view.cursor(slot).store(cursor, ordering: .sequentiallyConsistent)
        wakeWriter()
    }

    /// Skips what is left of a message an earlier call gave up on.
    private func finishDiscarding(budget: inout CallBudget, operation: String) throws(CCLError) {
        while let partial = discarding {
            try waitForChunk(budget: &budget, operation: operation)
            let part = try header(operation: operation)
            guard part.messageLength == partial.length, part.offset == partial.offset else {
                throw CCLError(
                    .malformed, operation: operation, rank: rank, peer: writerPeer,
                    "chunk \(cursor) does not continue the dropped message (\(part.offset) of \(part.messageLength) B)")
            }
            advance()
            let next = partial.offset + part.length
            discarding = next < partial.length ? (partial.length, next) : nil
        }
    }

    /// Waits for the next message and reports its length; the message's first chunk is then at
    /// the cursor. A message above the reader's limit is skipped and reported.
    func nextMessageLength(budget: inout CallBudget, operation: String) throws(CCLError) -> Int {
        if discarding != nil { try finishDiscarding(budget: &budget, operation: operation) }
        try waitForChunk(budget: &budget, operation: operation, beyond: -1)
        let first = try header(operation: operation)
        guard first.offset == 0 else {
            throw CCLError(
                .malformed, operation: operation, rank: rank, peer: writerPeer,
                "chunk \(cursor) continues a message (offset \(first.offset)) where a new message should start")
        }
        guard first.messageLength <= maxMessageBytes else {
            discarding = (first.messageLength, 0)
            throw CCLError(
                .tooLarge, operation: operation, rank: rank, peer: writerPeer,
                "message of \(first.messageLength) bytes exceeds this reader's limit of \(maxMessageBytes) bytes; it is skipped")
        }
        return first.messageLength
    }

    /// Hands the message whose first chunk is at the cursor to `body` in consecutive pieces, in
    /// place: each chunk whole once published, or slice by slice while the writer fills it (a
    /// piece is never more than one chunk). A chunk is released once it is published and `body`
    /// has had all of it. `timeout` bounds the whole message.
    func forEachFragment(
        length: Int, budget: inout CallBudget, operation: String, _ body: (UnsafeRawBufferPointer, Int) throws(CCLError) -> Void
    ) throws(CCLError) {
        var done = 0
        repeat {
            var consumed = 0
            do throws(CCLError) {
                if done > 0 { try waitForChunk(budget: &budget, operation: operation, beyond: -1) }
                let part = try header(operation: operation)
                guard part.offset == done, part.messageLength == length else {
                    throw CCLError(
                        .malformed, operation: operation, rank: rank, peer: writerPeer,
                        "chunk \(cursor) holds bytes from \(part.offset) of a \(part.messageLength) B message; "
                            + "expected offset \(done) of \(length) B")
                }
                let payload = UnsafeRawPointer(view.chunkPayload(sequence: cursor))
                while true {
                    let published = chunkAvailable()
                    let available = published ? part.length : min(part.length, filledSoFar())
                    if available > consumed {
                        try body(UnsafeRawBufferPointer(start: payload + consumed, count: available - consumed), done + consumed)
                        consumed = available
                    }
                    if published && consumed == part.length { break }
                    try waitForChunk(budget: &budget, operation: operation, beyond: consumed < part.length ? consumed : nil)
                }
                try checkAttached(operation)
                done += part.length
            } catch {
                guard done > 0 || consumed > 0, error.code != .malformed else { throw error }
                discarding = (length, done)
                var cut = error
                cut.message += "; the \(length)-byte message was cut off after \(done + consumed) bytes and is dropped"
                throw cut
            }
            advance()
        } while done < length
    }

    /// Copies the message whose first chunk is at the cursor into `destination` (exactly its
    /// length).
    func copyMessage(into destination: UnsafeMutableRawBufferPointer, budget: inout CallBudget, operation: String)
        throws(CCLError)
    {
        try forEachFragment(length: destination.count, budget: &budget, operation: operation) { fragment, offset in
            if let source = fragment.baseAddress, let target = destination.baseAddress {
                (target + offset).copyMemory(from: source, byteCount: fragment.count)
            }
        }
    }

    /// Hands the next message to `body` without copying when it fits one chunk; otherwise
    /// assembles it once into a reusable buffer owned by this reader.
    func withNextMessage<R>(
        timeout: Timeout, operation: String, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        var budget = CallBudget(timeout)
        let length = try nextMessageLength(budget: &budget, operation: operation)
        let first = try header(operation: operation)
        if first.length == length {
            // Handed over whole and in place: it must be all there.
            try waitForChunk(budget: &budget, operation: operation)
            defer { advance() }
            let result = try body(UnsafeRawBufferPointer(start: view.chunkPayload(sequence: cursor), count: length))
            try checkAttached(operation)
            return result
        }
        if (assembly?.count ?? 0) < length {
            assembly?.deallocate()
            assembly = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        }
        guard let buffer = assembly else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        try copyMessage(into: target, budget: &budget, operation: operation)
        return try body(UnsafeRawBufferPointer(target))
    }
}
