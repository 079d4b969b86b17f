import CCLCore
import CCLSystem
import CCLTestSupport
import Foundation
import Logging
import Testing

@testable import CCLQueue

/// Timeouts, cancellation, stall warnings, hostile peers and resource limits. Writer and reader
/// share this process here (each maps the segment itself), which keeps the clock checks tight.
@Suite(.serialized)
struct QueueFailureTests {
    static func options(chunk: Int = 256, chunks: Int = 2, timeout: Timeout = .seconds(5)) -> QueueOptions {
        var options = QueueOptions()
        options.chunkBytes = chunk
        options.chunkCount = chunks
        options.timeout = timeout
        options.token = "t0ken"
        return options
    }

    @Test("a reader's timeout says the writer is silent and names it")
    func readerTimeout() throws {
        let writer = try MessageQueueWriter(localReaders: [1], rank: 7, options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        let start = monotonicNanoseconds()
        let error = #expect(throws: CCLError.self) { _ = try reader.dequeue(timeout: .milliseconds(300)) }
        let waited = monotonicNanoseconds() - start
        #expect(error?.code == .timeout)
        #expect(error?.description.contains("writer rank 7") == true)
        #expect(error?.description.contains("sent nothing") == true)
        #expect(error?.rank == 1)
        #expect(waited >= 300_000_000 && waited < 3_000_000_000)
    }

    @Test("a writer's timeout names the readers that have not read")
    func writerTimeout() throws {
        let writer = try MessageQueueWriter(localReaders: [1, 2], options: Self.options())
        let fast = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        let slow = try MessageQueueReader(handle: writer.handle, rank: 2, options: Self.options())
        try writer.enqueue([1])
        try writer.enqueue([2])
        _ = try fast.dequeue()
        _ = try fast.dequeue()
        let error = #expect(throws: CCLError.self) { try writer.enqueue([3], timeout: .milliseconds(200)) }
        #expect(error?.code == .timeout)
        #expect(error?.peer?.contains("reader rank 2") == true)
        #expect(error?.peer?.contains("reader rank 1") == false)
        // Once the slow reader catches up, writing goes on.
        let first = try slow.dequeue()
        #expect(first == [1], "\(first)")
        try writer.enqueue([3], timeout: .seconds(1))
    }

    @Test("a message cut off by a timeout between its chunks stops the writer instead of corrupting the stream")
    func cutOffMessage() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        // Two 256-byte chunks fit; the third waits for a reader that does not read.
        let error = #expect(throws: CCLError.self) { try writer.enqueue([UInt8](repeating: 1, count: 2000), timeout: .milliseconds(100)) }
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("cut off after 512 of 2000 bytes") == true)
        let after = #expect(throws: CCLError.self) { try writer.enqueue([2], timeout: .milliseconds(100)) }
        #expect(after?.message.contains("accepts no more") == true)
        withExtendedLifetime(reader) {}
    }

    @Test("a reader that times out inside a message drops its rest and stays aligned with the stream")
    func readerCutOff() throws {
        let options = Self.options(chunk: 256, chunks: 4)
        let writer = try MessageQueueWriter(localReaders: [1, 2], options: options)
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: options)
        let holdUp = try MessageQueueReader(handle: writer.handle, rank: 2, options: options)
        let big = [UInt8](repeating: 7, count: 2000)  // 8 chunks; the ring holds 4
        let sender = Thread {
            try? writer.enqueue(big, timeout: .seconds(10))
            try? writer.enqueue([1, 2, 3], timeout: .seconds(10))
        }
        sender.start()
        // Reader 1 gets 4 chunks, then the writer waits for reader 2, so chunk 5 never comes.
        var received = 0
        let error = #expect(throws: CCLError.self) {
            try reader.dequeueFragments(timeout: .milliseconds(300)) { piece, _, _ in received += piece.count }
        }
        #expect(received == 1024)
        #expect(error?.code == .timeout)
        #expect(error?.message.contains("cut off after 1024 bytes") == true)
        #expect(try holdUp.dequeue(timeout: .seconds(5)) == big)
        // The rest of `big` is skipped; the next message arrives whole.
        #expect(try reader.dequeue(timeout: .seconds(5)) == [1, 2, 3])
        #expect(try holdUp.dequeue(timeout: .seconds(5)) == [1, 2, 3])
    }

    @Test("a reader skips a message above its own limit, says so, and reads the next")
    func readerLimit() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options(chunk: 256, chunks: 8))
        var small = Self.options(chunk: 256, chunks: 8)
        small.maxMessageBytes = 100
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: small)
        try writer.enqueue([UInt8](repeating: 1, count: 1000))
        try writer.enqueue([5])
        let error = #expect(throws: CCLError.self) { _ = try reader.dequeue() }
        #expect(error?.code == .tooLarge)
        #expect(try reader.dequeue() == [5])
    }

    @Test("closing a reader from another thread ends its blocked dequeue with .closed")
    func closeFromAnotherThread() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        let closer = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            reader.close()
        }
        closer.start()
        let start = monotonicNanoseconds()
        let error = #expect(throws: CCLError.self) { _ = try reader.dequeue(timeout: .seconds(10)) }
        #expect(error?.code == .closed)
        #expect(monotonicNanoseconds() - start < 2_000_000_000)
    }

    @Test("dequeueFragments hands a multi-chunk message over in place, in order")
    func fragments() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options(chunk: 256, chunks: 8))
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options(chunk: 256, chunks: 8))
        let message = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try writer.enqueue(message)
        var assembled: [UInt8] = []
        var offsets: [Int] = []
        try reader.dequeueFragments { piece, offset, length in
            #expect(length == 1000)
            offsets.append(offset)
            assembled += piece
        }
        #expect(assembled == message)
        #expect(offsets == [0, 256, 512, 768])
    }

    @Test("remote readers require a token; timeouts saturate instead of trapping")
    func configurationErrors() throws {
        var options = Self.options()
        options.token = ""
        let error = #expect(throws: CCLError.self) { _ = try MessageQueueWriter(localReaders: [], remoteReaders: [1], options: options) }
        #expect(error?.description.contains("CCL_TOKEN") == true)
        #expect(Timeout.seconds(.infinity) == .indefinite)
        #expect(Timeout.seconds(-1) == .nanoseconds(0))
        #expect(Timeout.milliseconds(Int.max) == .indefinite)
        #expect(Timeout.seconds(.nan) == .nanoseconds(0))
    }

    @Test("waitUntilReady times out naming readers that never attached")
    func readinessTimeout() throws {
        let writer = try MessageQueueWriter(localReaders: [1, 2, 3], options: Self.options())
        _ = try MessageQueueReader(handle: writer.handle, rank: 2, options: Self.options())
        let error = #expect(throws: CCLError.self) { try writer.waitUntilReady(timeout: .milliseconds(200)) }
        #expect(error?.code == .timeout)
        #expect(error?.peer == "reader rank 1, reader rank 3")
    }

    @Test("cancelling the task of an indefinite dequeue ends it promptly")
    func cancellation() async throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        let task = Task.detached { () -> CCLError? in
            do {
                _ = try reader.dequeue(timeout: .indefinite)
                return nil
            } catch {
                return error as? CCLError
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        let start = monotonicNanoseconds()
        task.cancel()
        let error = await task.value
        #expect(error?.code == .cancelled)
        #expect(monotonicNanoseconds() - start < 1_000_000_000)
        withExtendedLifetime(writer) {}
    }

    @Test("a stalled writer logs a warning naming the lagging reader and for how long")
    func stallWarning() throws {
        let sink = CapturedLogs()
        var options = Self.options()
        options.stallWarningNanoseconds = 100_000_000
        options.logger = Logger(label: "test") { _ in sink }
        let writer = try MessageQueueWriter(localReaders: [4], options: options)
        let idle = try MessageQueueReader(handle: writer.handle, rank: 4, options: options)
        defer { withExtendedLifetime(idle) {} }
        try writer.enqueue([1])
        try writer.enqueue([2])
        #expect(throws: CCLError.self) { try writer.enqueue([3], timeout: .milliseconds(450)) }
        let warnings = sink.messages.filter { $0.contains("reader rank 4") }
        #expect(warnings.count >= 2, "\(sink.messages)")
        #expect(warnings.first?.contains("ms") == true)
    }

    @Test("a reader that leaves no longer holds the writer up")
    func readerDetach() throws {
        let writer = try MessageQueueWriter(localReaders: [1, 2], options: Self.options())
        let stays = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        let leaves = try MessageQueueReader(handle: writer.handle, rank: 2, options: Self.options())
        leaves.close()
        for i in 0..<10 {
            try writer.enqueue([UInt8(i)], timeout: .seconds(1))
            #expect(try stays.dequeue() == [UInt8(i)])
        }
    }

    @Test("limits: a message over maxMessageBytes, a taken slot, a handle that does not match")
    func limits() throws {
        var options = Self.options()
        options.maxMessageBytes = 1000
        let writer = try MessageQueueWriter(localReaders: [1], options: options)
        let error = #expect(throws: CCLError.self) { try writer.enqueue([UInt8](repeating: 0, count: 1001)) }
        #expect(error?.code == .tooLarge)
        _ = try MessageQueueReader(handle: writer.handle, rank: 1, options: options)
        let twice = #expect(throws: CCLError.self) { _ = try MessageQueueReader(handle: writer.handle, rank: 1, options: options) }
        #expect(twice?.description.contains("already taken") == true)
        var wrong = writer.handle
        wrong.chunkCount = 3
        #expect(throws: CCLError.self) { _ = try MessageQueueReader(handle: wrong, rank: 1, options: options) }
        let stranger = #expect(throws: CCLError.self) { _ = try MessageQueueReader(handle: writer.handle, rank: 9, options: options) }
        #expect(stranger?.code == .invalidArgument)
    }

    @Test("a ring larger than free /dev/shm fails at creation, saying how much and how to fix it")
    func sharedMemoryTooSmall() throws {
        let free = try #require(SharedMemorySegment.freeBytes())
        var options = Self.options(chunk: 1 << 30)
        options.chunkCount = free / (1 << 30) + 2
        let error = #expect(throws: CCLError.self) { _ = try MessageQueueWriter(localReaders: [1], options: options) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.description.contains("/dev/shm") == true)
        #expect(error?.description.contains("shm-size") == true)
    }

    @Test("segments are unlinked once readers attached, and stale ones of dead writers are removed")
    func cleanup() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let name = try #require(writer.handle.segmentName)
        #expect(FileManager.default.fileExists(atPath: "/dev/shm" + name))
        _ = try MessageQueueReader(handle: writer.handle, rank: 1, options: Self.options())
        try writer.waitUntilReady(timeout: .seconds(1))
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + name))

        // A segment named after a process that has exited.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let stale = "/\(SegmentNames.queue.prefix)\(ProcessIdentity.currentNamespace)-\(gone.processIdentifier)-1-dead"
        var segment = try SharedMemorySegment.create(name: stale, size: 4096)
        let removed = SegmentNames.queue.removeStale()
        #expect(removed.contains(String(stale.dropFirst())))
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + stale))
        segment.unlink()
        // A live process's segment stays.
        let live = try MessageQueueWriter(localReaders: [1], options: Self.options())
        SegmentNames.queue.removeStale()
        #expect(FileManager.default.fileExists(atPath: "/dev/shm" + (live.handle.segmentName ?? "")))
    }

    @Test("garbage, oversized hellos and silence on the writer's port close only that connection")
    func garbageToWriter() throws {
        let writer = try MessageQueueWriter(localReaders: [], remoteReaders: [5], options: Self.options())
        let port = try #require(writer.handle.remotePort)
        let garbage = try RawSocket.connect(port: port)
        garbage.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(garbage.peerClosed())
        let oversized = try RawSocket.connect(port: port)
        var big = littleEndian(RemoteWire.helloMagic)
        big += littleEndian(UInt32(5))
        big += littleEndian(UInt32(1 << 30))
        big += littleEndian(UInt32(0))
        oversized.send(big)
        #expect(oversized.peerClosed())
        let trailing = try RawSocket.connect(port: port)
        let hello = Handshake(rank: 6, token: Array("t0ken".utf8)).encode(magic: RemoteWire.helloMagic)
        trailing.send(hello + [1, 2])
        #expect(trailing.peerClosed())
        let silent = try RawSocket.connect(port: port)
        // The writer still serves a real reader.
        let reader = try MessageQueueReader(handle: writer.handle, rank: 5, options: Self.options())
        try writer.waitUntilReady(timeout: .seconds(5))
        try writer.enqueue([9, 9, 9])
        let received = try reader.dequeue()
        #expect(received == [9, 9, 9], "\(received)")
        // A reader that sends bytes after its hello is dropped; the writer reports it once.
        withExtendedLifetime(silent) {}
    }

    @Test("malformed and oversized frames from a fake writer fail the remote reader cleanly", arguments: 0..<4)
    func hostileWriter(variant: Int) throws {
        let (listener, port) = try RawSocket.listen()
        let handle = MessageQueueHandle(
            writerRank: 0, segmentName: nil, chunkBytes: 256, chunkCount: 2, localReaderRanks: [], remoteReaderRanks: [3],
            remoteHost: "127.0.0.1", remotePort: port, maxMessageBytes: 1 << 20)
        let fake = Thread {
            guard let peer = listener.accept() else { return }
            _ = peer.receive(Handshake.headerBytes + 5)
            peer.send(Handshake.ack(magic: RemoteWire.ackMagic, status: 0))
            func frame(kind: UInt32, length: UInt32, message: UInt64, offset: UInt64) -> [UInt8] {
                var bytes = littleEndian(kind)
                bytes += littleEndian(length)
                bytes += littleEndian(message)
                bytes += littleEndian(offset)
                return bytes
            }
            switch variant {
            case 0: peer.send(frame(kind: 1, length: 1 << 30, message: 1 << 30, offset: 0))  // oversized frame
            case 1: peer.send(frame(kind: 77, length: 0, message: 0, offset: 0))  // unknown kind
            case 2: peer.send(frame(kind: 1, length: 10, message: 5, offset: 0) + [UInt8](repeating: 1, count: 10))  // overrun
            default: peer.send(frame(kind: 1, length: 100, message: 100, offset: 0) + [1, 2, 3])  // half a frame, then gone
            }
            Thread.sleep(forTimeInterval: 0.3)
        }
        fake.start()
        let reader = try MessageQueueReader(handle: handle, rank: 3, options: Self.options())
        let error = #expect(throws: CCLError.self) { _ = try reader.dequeue(timeout: .seconds(5)) }
        let expected: [CCLError.Code] = [.tooLarge, .malformed, .malformed, .peerDead]
        #expect(error?.code == expected[variant], "\(String(describing: error))")
        #expect(error?.description.contains("writer rank 0 at 127.0.0.1") == true)
    }
}

/// A swift-log handler that keeps messages for assertions.
final class CapturedLogs: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var messages: [String] { lock.withLock { stored } }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { lock.withLock { stored.append("\(event.message)") } }
}
