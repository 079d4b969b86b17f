import CCLCore
import CCLSystem
import Foundation
import Testing

@testable import CCLQueue

/// Streaming inside one chunk: a reader that takes pieces (or copies) starts on the slices the
/// writer has announced before the chunk is published. The test plays the writer's part on the
/// real ring (header, `fillTag`, `filled`, `published`), so it can stop between slices.
@Suite(.serialized)
struct RingSliceTests {
    static let chunk = 256 << 10
    static let slice = RingLayout.sliceBytes

    static func options(timeout: Timeout = .seconds(10)) -> QueueOptions {
        var options = QueueOptions()
        options.chunkBytes = chunk
        options.chunkCount = 2
        options.timeout = timeout
        return options
    }

    /// Writes chunk `sequence`'s header and starts its slices, as `RingWriter.write` does.
    static func begin(_ view: RingView, sequence: UInt64, length: Int, offset: Int = 0, messageLength: Int) {
        let header = view.chunkHeader(sequence: sequence)
        header.storeBytes(of: UInt64(messageLength), toByteOffset: 0, as: UInt64.self)
        header.storeBytes(of: UInt64(offset), toByteOffset: 8, as: UInt64.self)
        header.storeBytes(of: UInt32(length), toByteOffset: 16, as: UInt32.self)
        view.filled.store(0, ordering: .relaxed)
        view.fillTag.store(sequence + 1, ordering: .releasing)
    }

    static func fill(_ view: RingView, sequence: UInt64, from message: [UInt8], _ range: Range<Int>) {
        message.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            (view.chunkPayload(sequence: sequence) + range.lowerBound).copyMemory(from: base + range.lowerBound, byteCount: range.count)
        }
        view.filled.store(UInt64(range.upperBound), ordering: .releasing)
    }

    static func publish(_ view: RingView, through sequence: UInt64) {
        view.published.store(sequence + 1, ordering: .sequentiallyConsistent)
        view.dataWord.wrappingIncrement(ordering: .sequentiallyConsistent)
        Futex.wake(view.dataWordAddress)
    }

    /// Waits (at most 5 s) until `condition` holds.
    static func eventually(_ condition: () -> Bool) -> Bool {
        let start = monotonicNanoseconds()
        while !condition() {
            if monotonicNanoseconds() - start > 5_000_000_000 { return false }
            usleep(1000)
        }
        return true
    }

    @Test("dequeueFragments hands over the first slice of an unpublished chunk, then the rest once the writer goes on")
    func piecesBeforePublication() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        try writer.waitUntilReady()
        let view = try #require(writer.ring?.view)
        let length = 200 << 10
        let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let pieces = Pieces()
        let reading = Thread {
            do {
                try reader.dequeueFragments { piece, offset, total in
                    pieces.append(offset: offset, bytes: Array(piece), total: total, published: view.published.load(ordering: .acquiring))
                }
            } catch {
                pieces.fail("\(error)")
            }
        }
        Self.begin(view, sequence: 0, length: length, messageLength: length)
        Self.fill(view, sequence: 0, from: message, 0..<Self.slice)
        reading.start()
        #expect(Self.eventually { pieces.count >= 1 }, "the reader took nothing of the announced slice")
        Self.fill(view, sequence: 0, from: message, Self.slice..<length)
        Self.publish(view, through: 0)
        #expect(Self.eventually { pieces.assembled.count == length || pieces.failure != nil })
        #expect(pieces.failure == nil, "\(pieces.failure ?? "")")
        #expect(pieces.assembled == message)
        let first = pieces.first
        #expect(first?.offset == 0 && first?.count == Self.slice && first?.published == 0, "\(String(describing: first))")
        #expect(pieces.totals.allSatisfy { $0 == length })
        // The chunk was released only after its publication: the writer has room for two again.
        #expect(Self.eventually { view.cursor(0).load(ordering: .acquiring) == 1 })
    }

    @Test("a reader that times out inside a chunk drops the rest of that message and reads the next one")
    func timeoutInsideChunk() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        try writer.waitUntilReady()
        let view = try #require(writer.ring?.view)
        let length = 200 << 10
        let message = [UInt8](repeating: 7, count: length)
        Self.begin(view, sequence: 0, length: length, messageLength: length)
        Self.fill(view, sequence: 0, from: message, 0..<Self.slice)
        let error = #expect(throws: CCLError.self) { _ = try reader.dequeue(timeout: .milliseconds(200)) }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("cut off after \(Self.slice) bytes and is dropped") == true, "\(error?.message ?? "")")
        // The writer finishes that message and sends a short one in the next chunk.
        Self.fill(view, sequence: 0, from: message, Self.slice..<length)
        Self.publish(view, through: 0)
        let next: [UInt8] = [1, 2, 3]
        Self.begin(view, sequence: 1, length: next.count, messageLength: next.count)
        Self.fill(view, sequence: 1, from: next, 0..<next.count)
        Self.publish(view, through: 1)
        #expect(try reader.dequeue(timeout: .seconds(5)) == next)
    }

    @Test("a message read whole in place waits for its chunk's publication, not its first slice")
    func inPlaceWaitsForPublication() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        try writer.waitUntilReady()
        let view = try #require(writer.ring?.view)
        let length = 100 << 10
        let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        Self.begin(view, sequence: 0, length: length, messageLength: length)
        Self.fill(view, sequence: 0, from: message, 0..<Self.slice)
        let seen = Pieces()
        let reading = Thread {
            do {
                try reader.dequeue { bytes in
                    seen.append(offset: 0, bytes: Array(bytes), total: bytes.count, published: view.published.load(ordering: .acquiring))
                }
            } catch {
                seen.fail("\(error)")
            }
        }
        reading.start()
        usleep(100_000)
        #expect(seen.count == 0, "the whole message was handed over before the writer finished it")
        Self.fill(view, sequence: 0, from: message, Self.slice..<length)
        Self.publish(view, through: 0)
        #expect(Self.eventually { seen.count == 1 || seen.failure != nil })
        #expect(seen.assembled == message && seen.first?.published == 1)
    }
}

/// What a reader thread received.
private final class Pieces: @unchecked Sendable {
    struct Piece {
        var offset: Int
        var count: Int
        var published: UInt64
    }
    private let lock = NSLock()
    private var pieces: [Piece] = []
    private var bytes: [UInt8] = []
    private var lengths: [Int] = []
    private var error: String?

    func append(offset: Int, bytes piece: [UInt8], total: Int, published: UInt64) {
        lock.withLock {
            pieces.append(Piece(offset: offset, count: piece.count, published: published))
            bytes += piece
            lengths.append(total)
        }
    }
    func fail(_ message: String) { lock.withLock { error = message } }
    var count: Int { lock.withLock { pieces.count } }
    var first: Piece? { lock.withLock { pieces.first } }
    var assembled: [UInt8] { lock.withLock { bytes } }
    var totals: [Int] { lock.withLock { lengths } }
    var failure: String? { lock.withLock { error } }
}
