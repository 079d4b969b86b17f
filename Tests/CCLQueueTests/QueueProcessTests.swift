import CCL
import CCLTestSupport
import Foundation
import Testing

/// The broadcast queue across real processes: the test process writes, `CCLTestWorker`
/// processes read (or the other way round), through real shared memory and real sockets.
@Suite(.serialized)
struct QueueProcessTests {
    static func options(chunk: Int = 4096, chunks: Int = 4, token: String = "") -> QueueOptions {
        var options = QueueOptions()
        options.chunkBytes = chunk
        options.chunkCount = chunks
        options.timeout = .seconds(30)
        options.token = token
        return options
    }

    /// Writes `count` messages to readers started as processes and checks each verified every one.
    func broadcast(
        local: Int, remote: Int = 0, count: Int, messages: TestMessages, arguments: [String: String],
        options: QueueOptions
    ) throws {
        let localRanks = (0..<local).map { $0 + 1 }
        let remoteRanks = (0..<remote).map { 100 + $0 }
        let writer = try MessageQueueWriter(localReaders: localRanks, remoteReaders: remoteRanks, options: options)
        let readers = try (localRanks + remoteRanks).map { rank in
            var args = arguments
            args["handle"] = json(writer.handle)
            args["rank"] = "\(rank)"
            args["count"] = "\(count)"
            args["token"] = options.token
            return try Worker("read", args)
        }
        try writer.waitUntilReady()
        for reader in readers { try reader.expect("READY") }
        for i in 0..<count { try writer.enqueue(messages.message(i)) }
        writer.close()
        for reader in readers {
            try reader.expect("DONE \(count)")
            try reader.expect("CLOSED")
            #expect(reader.exitStatus() == 0)
        }
    }

    @Test("10^4 messages of random sizes, many wraparounds, every byte verified", arguments: [1, 2, 4])
    func orderingAndIntegrity(readers: Int) throws {
        let seed = UInt64.random(in: 1...1_000_000)
        print("seed \(seed)")
        let messages = TestMessages(seed: seed, maxRandomLength: 3 * 4096)
        try broadcast(
            local: readers, count: 10_000, messages: messages,
            arguments: ["seed": "\(seed)", "max": "\(3 * 4096)"], options: Self.options())
    }

    @Test("edge sizes: 0, 1, chunk-1, chunk, chunk+1, 64 MiB")
    func edgeSizes() throws {
        let lengths = [0, 1, 4095, 4096, 4097, 64 << 20, 0, 1]
        let messages = TestMessages(seed: 7, lengths: lengths)
        try broadcast(
            local: 2, count: lengths.count, messages: messages,
            arguments: ["seed": "7", "lengths": lengths.map(String.init).joined(separator: ",")],
            options: Self.options(chunk: 4096, chunks: 4))
    }

    @Test("typed Codable messages")
    func typedMessages() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options())
        let reader = try Worker("read", ["handle": json(writer.handle), "rank": "1", "count": "500", "typed": "1"])
        try writer.waitUntilReady()
        for i in 0..<500 { try writer.enqueue(encoding: TestRecord.make(i)) }
        writer.close()
        try reader.expect("DONE 500")
        try reader.expect("CLOSED")
    }

    @Test("remote readers over loopback TCP, alone and mixed with local readers", arguments: [(0, 2), (2, 1)])
    func remoteReaders(local: Int, remote: Int) throws {
        // Lengths cross the 1 MiB frame size and the 4 KiB ring chunk.
        let lengths = [0, 1, 100, 4097, 70_000, (2 << 20) + 5, 3]
        let messages = TestMessages(seed: 11, lengths: lengths)
        try broadcast(
            local: local, remote: remote, count: 70, messages: messages,
            arguments: ["seed": "11", "lengths": lengths.map(String.init).joined(separator: ",")],
            options: Self.options(token: "secret-\(UInt32.random(in: 0...UInt32.max))"))
    }

    @Test("a reader that attaches after the writer started sending receives everything")
    func lateReader() throws {
        let writer = try MessageQueueWriter(localReaders: [1], options: Self.options(chunks: 8))
        let messages = TestMessages(seed: 3, lengths: [100, 5000])
        // Fill part of the ring before the reader process exists.
        for i in 0..<4 { try writer.enqueue(messages.message(i)) }
        let reader = try Worker("read", ["handle": json(writer.handle), "rank": "1", "count": "50", "seed": "3", "lengths": "100,5000"])
        try writer.waitUntilReady()
        for i in 4..<50 { try writer.enqueue(messages.message(i)) }
        writer.close()
        try reader.expect("DONE 50")
    }

    @Test("SIGKILL of a reader: enqueue reports it within 1 s, and the other readers get every message")
    func readerKilled() throws {
        let writer = try MessageQueueWriter(localReaders: [1, 2], options: Self.options(chunk: 64, chunks: 4))
        let messages = TestMessages(seed: 5, lengths: [64])
        let total = 3000
        let steady = try Worker("read", ["handle": json(writer.handle), "rank": "1", "count": "\(total)", "seed": "5", "lengths": "64"])
        let victim = try Worker(
            "read", ["handle": json(writer.handle), "rank": "2", "count": "\(total)", "seed": "5", "lengths": "64", "stallAfter": "20"])
        try writer.waitUntilReady()
        for i in 0..<20 { try writer.enqueue(messages.message(i)) }
        try victim.expect("STALLED")
        victim.sigkill()
        _ = victim.exitStatus()
        let killed = Date()
        var reported: [CCLError] = []
        for i in 20..<total {
            do {
                try writer.enqueue(messages.message(i), timeout: .seconds(10))
            } catch {
                if reported.isEmpty {
                    #expect(Date().timeIntervalSince(killed) < 1.0, "noticed after \(Date().timeIntervalSince(killed)) s")
                }
                reported.append(error)
            }
        }
        #expect(reported.count == 1)
        #expect(reported.first?.code == .readerLost)
        #expect(reported.first?.description.contains("reader rank 2") == true)
        writer.close()
        try steady.expect("DONE \(total)")
        try steady.expect("CLOSED")
    }

    @Test("SIGKILL of the writer: a waiting reader fails naming it within 1 s")
    func writerKilled() throws {
        let writer = try Worker("write", ["local": "1", "count": "100", "pauseAfter": "10", "seed": "9", "lengths": "10"])
        let handle = try writer.handle()
        let reader = try MessageQueueReader(handle: handle, rank: 1, options: Self.options())
        try reader.waitUntilReady()
        let messages = TestMessages(seed: 9, lengths: [10])
        for i in 0..<10 {
            let ok = try reader.dequeue { messages.matches($0, index: i) }
            #expect(ok)
        }
        try writer.expect("PAUSED")
        writer.sigkill()
        _ = writer.exitStatus()
        let killed = Date()
        let error = #expect(throws: CCLError.self) { _ = try reader.dequeue(timeout: .seconds(10)) }
        #expect(error?.code == .peerDead)
        #expect(error?.description.contains("writer") == true)
        #expect(Date().timeIntervalSince(killed) < 1.0)
    }

    @Test("a remote reader that stops reading holds the writer back with bounded memory, then is dropped, named")
    func remoteBackPressure() throws {
        var options = Self.options(token: "bp")
        options.remoteBufferBytes = 1 << 20
        let writer = try MessageQueueWriter(localReaders: [], remoteReaders: [100], options: options)
        let reader = try Worker(
            "read",
            [
                "handle": json(writer.handle), "rank": "100", "count": "100000", "token": "bp", "seed": "4", "lengths": "65536",
                "stallAfter": "10", "rbuf": "\(1 << 20)",
            ])
        try writer.waitUntilReady()
        let messages = TestMessages(seed: 4, lengths: [65536])
        var sent = 0
        var caught: CCLError?
        // 64 KiB messages: the socket buffers and both 1 MiB queues hold a few hundred at most.
        while sent < 5000 {
            do {
                try writer.enqueue(messages.message(sent), timeout: .milliseconds(500))
                sent += 1
            } catch {
                caught = error
                break
            }
        }
        try reader.expect("STALLED 10")
        #expect(sent < 1000, "sent \(sent) × 64 KiB to a reader that stopped")
        // Dropped after the timeout, reported once; the queue goes on without it.
        #expect(caught?.code == .readerLost)
        #expect(caught?.peer?.contains("remote reader rank 100") == true)
        try writer.enqueue(messages.message(0), timeout: .milliseconds(500))
    }

    @Test("a remote reader with the wrong token is refused; the writer and other readers carry on")
    func wrongToken() throws {
        let options = Self.options(token: "right")
        let writer = try MessageQueueWriter(localReaders: [1], remoteReaders: [100], options: options)
        let intruder = try Worker("read", ["handle": json(writer.handle), "rank": "100", "count": "1", "token": "wrong"])
        let failure = try intruder.expect("ERROR")
        #expect(failure.contains("unauthenticated"))
        let messages = TestMessages(seed: 2, lengths: [33])
        let good = try Worker(
            "read", ["handle": json(writer.handle), "rank": "100", "count": "20", "token": "right", "seed": "2", "lengths": "33"])
        let local = try Worker("read", ["handle": json(writer.handle), "rank": "1", "count": "20", "seed": "2", "lengths": "33"])
        try writer.waitUntilReady()
        for i in 0..<20 { try writer.enqueue(messages.message(i)) }
        writer.close()
        try good.expect("DONE 20")
        try local.expect("DONE 20")
    }
}
