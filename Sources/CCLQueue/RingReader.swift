import Atomics
import CCLCore
import CCLSystem
import Logging

/// A same-node reader of the shared-memory ring (see `RingLayout` for the protocol).
///
/// Threading: one thread at a time. A message that fits one chunk is handed to the caller in
/// place (zero copies) and the chunk is released when the closure returns; a longer message is
/// copied once, chunk by chunk as the writer publishes them, into the destination.
final class RingReader {
    private let segment: SharedMemorySegment
    private let view: RingView
    let slot: Int
    let rank: Int
    private let writerRank: Int
    private let options: QueueOptions
    private let maxMessageBytes: Int
    private var cursor: UInt64 = 0
    private var assembly: UnsafeMutableRawBufferPointer?
    private var detached = false

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
        guard
            view.readerState(slot).compareExchange(
                expected: SlotState.neverAttached, desired: SlotState.attached, ordering: .acquiringAndReleasing
            ).exchanged
        else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: rank,
                "reader slot \(slot) of \(segmentName) is already taken: two processes attached as rank \(rank)")
        }
        self.slot = slot
        self.rank = rank
        self.writerRank = handle.writerRank
        self.options = options
        self.maxMessageBytes = handle.maxMessageBytes
        view.setReaderIdentity(slot, ProcessIdentity.current())
        // Re-publish the state with release so the writer sees the identity with it.
        view.readerState(slot).store(SlotState.attached, ordering: .sequentiallyConsistent)
        cursor = view.cursor(slot).load(ordering: .acquiring)
        wakeWriter()
    }

    deinit {
        detach()
        assembly?.deallocate()
    }

    /// Leaves the queue: the writer stops waiting for this reader.
    func detach() {
        guard !detached else { return }
        detached = true
        view.readerState(slot).store(SlotState.detached, ordering: .sequentiallyConsistent)
        wakeWriter()
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

    /// Waits until chunk `cursor` is published; throws `.closed` once the writer closed and
    /// everything published was read.
    private func waitForChunk(timeout: Timeout, operation: String) throws(CCLError) {
        if chunkAvailable() { return }
        let ready = { [view] in
            self.chunkAvailable() || view.writerState.load(ordering: .acquiring) == SlotState.writerClosed
        }
        let wait = AdaptiveWait(policy: options.wait, timeout: timeout, stallIntervalNanoseconds: options.stallWarningNanoseconds)
        try wait.run(
            until: ready,
            sleep: { limit in
                let expected = view.dataWord.load(ordering: .acquiring)
                view.readerSleepers.wrappingIncrement(ordering: .sequentiallyConsistent)
                if !ready() {
                    _ = Futex.wait(view.dataWordAddress, expected: expected, timeoutNanoseconds: limit)
                }
                view.readerSleepers.wrappingDecrement(ordering: .relaxed)
            },
            check: { () throws(CCLError) in
                if !view.writer.isAlive {
                    throw CCLError(
                        .peerDead, operation: operation, rank: rank, peer: writerPeer,
                        "the writer process died; no more messages will come")
                }
            },
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
        if !chunkAvailable() {
            throw CCLError(.closed, operation: operation, rank: rank, peer: writerPeer, "the writer closed the queue")
        }
    }

    /// Returns once the writer saw every reader attach.
    func waitUntilReady(timeout: Timeout) throws(CCLError) {
        let operation = "waitUntilReady (queue reader)"
        let ready = { [view] in view.readyFlag.load(ordering: .acquiring) != 0 }
        let wait = AdaptiveWait(policy: options.wait, timeout: timeout, stallIntervalNanoseconds: 0)
        try wait.run(
            until: ready,
            sleep: { limit in
                let expected = view.dataWord.load(ordering: .acquiring)
                view.readerSleepers.wrappingIncrement(ordering: .sequentiallyConsistent)
                if !ready() { _ = Futex.wait(view.dataWordAddress, expected: expected, timeoutNanoseconds: limit) }
                view.readerSleepers.wrappingDecrement(ordering: .relaxed)
            },
            check: { () throws(CCLError) in
                if !view.writer.isAlive {
                    throw CCLError(.peerDead, operation: operation, rank: rank, peer: writerPeer, "the writer process died")
                }
            },
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
        guard messageLength <= UInt64(maxMessageBytes), length <= UInt64(view.layout.chunkBytes),
            offset <= messageLength, length <= messageLength - offset
        else {
            throw CCLError(
                .malformed, operation: operation, rank: rank, peer: writerPeer,
                "chunk \(cursor) header is corrupt (message \(messageLength) B, fragment \(length) B at \(offset); "
                    + "limit \(maxMessageBytes) B)")
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

    /// Waits for the next message and reports its length; the message's first chunk is then at
    /// the cursor.
    func nextMessageLength(timeout: Timeout, operation: String) throws(CCLError) -> Int {
        try waitForChunk(timeout: timeout, operation: operation)
        let first = try header(operation: operation)
        guard first.offset == 0 else {
            throw CCLError(
                .malformed, operation: operation, rank: rank, peer: writerPeer,
                "chunk \(cursor) continues a message (offset \(first.offset)) where a new message should start")
        }
        return first.messageLength
    }

    /// Copies the message whose first chunk is at the cursor into `destination` (exactly its
    /// length), releasing each chunk as soon as it is copied.
    func copyMessage(into destination: UnsafeMutableRawBufferPointer, timeout: Timeout, operation: String) throws(CCLError) {
        var copied = 0
        repeat {
            if copied > 0 { try waitForChunk(timeout: timeout, operation: operation) }
            let part = try header(operation: operation)
            guard part.offset == copied, part.messageLength == destination.count else {
                throw CCLError(
                    .malformed, operation: operation, rank: rank, peer: writerPeer,
                    "chunk \(cursor) holds bytes \(part.offset)..< of a \(part.messageLength) B message; expected offset \(copied) of \(destination.count) B"
                )
            }
            if part.length > 0, let target = destination.baseAddress {
                (target + copied).copyMemory(from: view.chunkPayload(sequence: cursor), byteCount: part.length)
            }
            copied += part.length
            advance()
        } while copied < destination.count
    }

    /// Hands the next message to `body` without copying when it fits one chunk; otherwise
    /// assembles it once into a reusable buffer owned by this reader.
    func withNextMessage<R>(
        timeout: Timeout, operation: String, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let length = try nextMessageLength(timeout: timeout, operation: operation)
        let first = try header(operation: operation)
        if first.length == length {
            defer { advance() }
            return try body(UnsafeRawBufferPointer(start: view.chunkPayload(sequence: cursor), count: length))
        }
        if (assembly?.count ?? 0) < length {
            assembly?.deallocate()
            assembly = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        }
        guard let buffer = assembly else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        try copyMessage(into: target, timeout: timeout, operation: operation)
        return try body(UnsafeRawBufferPointer(target))
    }
}
