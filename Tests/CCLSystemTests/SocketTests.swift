import CCLCore
import CCLSystem
import Foundation
import Testing

/// Runs `body` on its own thread (the peer side of a test); `join` waits for it.
final class PeerThread<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<Value, any Error>?

    init(_ body: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    func join() throws -> Value {
        done.wait()
        guard let result else { throw CCLError(.invalidArgument, operation: "join", "no result") }
        return try result.get()
    }
}

/// A connected pair on loopback: (the connecting side, the accepted side).
func connectedPair(host: String = "127.0.0.1") throws -> (TCPConnection, TCPConnection) {
    let listener = try TCPListener(host: host, port: 0)
    let client = try TCPConnection.connect(host: host, port: listener.port, timeout: .seconds(5))
    let server = try listener.accept(timeout: .seconds(5))
    return (client, server)
}

/// `count` deterministic bytes from `seed`.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

/// A fast 64-bit pattern for large buffers: words from splitmix64.
func largePattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        var state = seed
        for index in words.indices {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            words[index] = z ^ (z >> 31)
        }
        for index in (words.count * 8)..<count { raw[index] = UInt8(truncatingIfNeeded: index) }
    }
    return bytes
}

/// Order-sensitive checksum (FNV-1a over 64-bit words, then the tail bytes).
func checksum(_ bytes: [UInt8]) -> UInt64 {
    bytes.withUnsafeBytes { raw in
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        let wordCount = raw.count / 8
        for index in 0..<wordCount {
            hash = (hash ^ raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) &* 0x100_0000_01B3
        }
        for index in (wordCount * 8)..<raw.count { hash = (hash ^ UInt64(raw[index])) &* 0x100_0000_01B3 }
        return hash &+ UInt64(raw.count)
    }
}

func ipv6LoopbackAvailable() -> Bool { (try? TCPListener(host: "::1", port: 0)) != nil }

@Suite struct SocketConnectTests {
    @Test("connect before the listener exists is retried until it listens")
    func connectBeforeListen() throws {
        let port = try TCPListener(host: "127.0.0.1", port: 0).port  // free, then released
        let started = Date()
        let connector = PeerThread { () throws -> String in
            let connection = try TCPConnection.connect(host: "127.0.0.1", port: port, timeout: .seconds(10))
            return connection.localAddress.description
        }
        Thread.sleep(forTimeInterval: 0.3)
        let listener = try TCPListener(host: "127.0.0.1", port: port)
        let accepted = try listener.accept(timeout: .seconds(10))
        let clientAddress = try connector.join()
        #expect(accepted.peerDescription == clientAddress)
        #expect(Date().timeIntervalSince(started) >= 0.3)
    }

    @Test("connect gives up at its timeout, naming the target and the last error")
    func connectTimeout() throws {
        let port = try TCPListener(host: "127.0.0.1", port: 0).port
        let error = #expect(throws: CCLError.self) {
            _ = try TCPConnection.connect(host: "127.0.0.1", port: port, timeout: .milliseconds(200))
        }
        #expect(error?.code == .timeout)
        #expect(error?.peer == "127.0.0.1:\(port)")
        #expect(error?.description.contains("Connection refused") == true)
        #expect(error?.description.contains("timed out after 0.2 s") == true)
    }

    @Test("accept times out with a named error")
    func acceptTimeout() throws {
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let started = Date()
        let error = #expect(throws: CCLError.self) { _ = try listener.accept(timeout: .milliseconds(150)) }
        let waited = Date().timeIntervalSince(started)
        #expect(error?.code == .timeout)
        #expect(error?.operation == "accept on 127.0.0.1:\(listener.port)")
        #expect(error?.description.contains("timed out after 0.15 s (waited 1") == true)
        #expect(waited >= 0.15 && waited < 2)
    }

    @Test("a listener on 127.0.0.1 is bound to exactly that address")
    func bindsExactAddress() throws {
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        #expect(listener.localAddress.host == "127.0.0.1")
        #expect(listener.localAddress.family == AF_INET)
        #expect(listener.port > 0)
        // 127.0.0.2 is loopback too, but nobody listens there.
        let error = #expect(throws: CCLError.self) {
            _ = try TCPConnection.connect(host: "127.0.0.2", port: listener.port, timeout: .milliseconds(100))
        }
        #expect(error?.code == .timeout)
        #expect(error?.description.contains("Connection refused") == true)
        let wildcard = try TCPListener(host: "0.0.0.0", port: 0)
        #expect(wildcard.localAddress.host == "0.0.0.0")
    }

    @Test("the same port cannot be bound twice; the error names the address")
    func addressInUse() throws {
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let error = #expect(throws: CCLError.self) { _ = try TCPListener(host: "127.0.0.1", port: listener.port) }
        #expect(error?.operation == "listen on 127.0.0.1:\(listener.port)")
        #expect(error?.description.contains("Address already in use") == true)
    }

    @Test("IPv6 loopback ::1", .enabled(if: ipv6LoopbackAvailable(), "skipped: this host cannot bind ::1 (no IPv6 loopback)"))
    func ipv6() throws {
        let (client, server) = try connectedPair(host: "::1")
        #expect(client.peerDescription.hasPrefix("[::1]:"))
        #expect(server.peerAddress.family == AF_INET6)
        var value: UInt64 = 0x0123_4567_89AB_CDEF
        try withUnsafeBytes(of: &value) { try client.sendAll($0, timeout: .seconds(5)) }
        var received: UInt64 = 0
        try withUnsafeMutableBytes(of: &received) { try server.receiveAll(into: $0, timeout: .seconds(5)) }
        #expect(received == value)
        let listener = try TCPListener(host: "::1", port: 0)
        #expect(listener.localAddress.description == "[::1]:\(listener.port)")
        let bracketed = try TCPConnection.connect(host: "[::1]", port: listener.port, timeout: .seconds(5))
        #expect(bracketed.peerAddress.host == "::1")
    }

    @Test("names resolve: localhost reaches a 127.0.0.1 listener")
    func resolvesNames() throws {
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let client = try TCPConnection.connect(host: "localhost", port: listener.port, timeout: .seconds(5))
        #expect(client.peerDescription == "127.0.0.1:\(listener.port)")
        let addresses = try SocketAddressSpec(host: "localhost", port: 80).resolve(operation: "test")
        #expect(addresses.contains { $0.host == "127.0.0.1" })
        let bad = #expect(throws: CCLError.self) { _ = try SocketAddressSpec(host: "127.0.0.1", port: 70000).resolve(operation: "test") }
        #expect(bad?.code == .invalidArgument)
    }
}

@Suite struct SocketTransferTests {
    @Test("sendAll/receiveAll deliver exact bytes", arguments: [0, 1, 8, 64 << 20])
    func roundTrip(size: Int) throws {
        let (client, server) = try connectedPair()
        let payload = size >= 1 << 20 ? largePattern(size, seed: 7) : pattern(size, seed: 7)
        let expected = checksum(payload)
        let sender = PeerThread {
            try payload.withUnsafeBytes { try client.sendAll($0, timeout: .seconds(30)) }
        }
        var received = [UInt8](repeating: 0, count: size)
        try received.withUnsafeMutableBytes { try server.receiveAll(into: $0, timeout: .seconds(30)) }
        try sender.join()
        #expect(checksum(received) == expected)
        #expect(received == payload)
    }

    @Test("64 MiB each way at once on one connection: exchange never deadlocks")
    func exchangeBothWays() throws {
        let size = 64 << 20
        let (a, b) = try connectedPair()
        let fromA = largePattern(size, seed: 1)
        let fromB = largePattern(size, seed: 2)
        let peer = PeerThread { () throws -> UInt64 in
            var into = [UInt8](repeating: 0, count: size)
            try fromB.withUnsafeBytes { out in
                try into.withUnsafeMutableBytes { into in
                    try TCPConnection.exchange(send: (b, out), receive: (b, into), timeout: .seconds(60))
                }
            }
            return checksum(into)
        }
        var into = [UInt8](repeating: 0, count: size)
        try fromA.withUnsafeBytes { out in
            try into.withUnsafeMutableBytes { into in
                try TCPConnection.exchange(send: (a, out), receive: (a, into), timeout: .seconds(60))
            }
        }
        #expect(checksum(into) == checksum(fromB))
        #expect(try peer.join() == checksum(fromA))
    }

    @Test("ring of 3: each sends 16 MiB to the next while receiving from the previous, on different connections")
    func ringStep() throws {
        let size = 16 << 20
        let ranks = 3
        // links[i] connects rank i (sending end) to rank i+1 (receiving end).
        var sendEnds: [TCPConnection] = []
        var receiveEnds: [TCPConnection] = []
        for _ in 0..<ranks {
            let (client, server) = try connectedPair()
            sendEnds.append(client)
            receiveEnds.append(server)
        }
        let payloads = (0..<ranks).map { largePattern(size, seed: UInt64($0) + 10) }
        let threads = (0..<ranks).map { rank in
            let next = sendEnds[rank]
            let previous = receiveEnds[(rank + ranks - 1) % ranks]
            let payload = payloads[rank]
            return PeerThread { () throws -> UInt64 in
                var into = [UInt8](repeating: 0, count: size)
                try payload.withUnsafeBytes { out in
                    try into.withUnsafeMutableBytes { into in
                        try TCPConnection.exchange(send: (next, out), receive: (previous, into), timeout: .seconds(60))
                    }
                }
                return checksum(into)
            }
        }
        for rank in 0..<ranks {
            #expect(try threads[rank].join() == checksum(payloads[(rank + ranks - 1) % ranks]))
        }
    }

    @Test("the peer closing mid-receive fails with peerDead, naming the peer and the missing bytes")
    func peerClosesMidReceive() throws {
        let (client, server) = try connectedPair()
        server.peerName = "rank 1"
        let closer = PeerThread {
            let bytes = pattern(100, seed: 3)
            try bytes.withUnsafeBytes { try client.sendAll($0, timeout: .seconds(5)) }
            Thread.sleep(forTimeInterval: 0.05)
            client.close()
        }
        var buffer = [UInt8](repeating: 0, count: 1000)
        let error = #expect(throws: CCLError.self) {
            try buffer.withUnsafeMutableBytes { try server.receiveAll(into: $0, timeout: .seconds(5), operation: "all-reduce step 2") }
        }
        try closer.join()
        #expect(error?.code == .peerDead)
        #expect(error?.operation == "all-reduce step 2")
        #expect(error?.peer == "rank 1 at \(server.peerDescription)")
        #expect(error?.description.contains("after receiving 100 of 1000 bytes (900 bytes missing)") == true)
    }

    @Test("sending to a closed peer fails with peerDead, never SIGPIPE")
    func sendToClosedPeer() throws {
        let (client, server) = try connectedPair()
        server.close()
        let payload = largePattern(8 << 20, seed: 4)
        let error = #expect(throws: CCLError.self) {
            try payload.withUnsafeBytes { try client.sendAll($0, timeout: .seconds(5)) }
        }
        #expect(error?.code == .peerDead)
        #expect(error?.peer == client.peerDescription)
    }

    @Test("a receive timeout names the peer, the timeout and what arrived")
    func receiveTimeout() throws {
        let (client, server) = try connectedPair()
        let one: [UInt8] = [42]
        try one.withUnsafeBytes { try client.sendAll($0, timeout: .seconds(5)) }
        var buffer = [UInt8](repeating: 0, count: 8)
        let started = Date()
        let error = #expect(throws: CCLError.self) {
            try buffer.withUnsafeMutableBytes { try server.receiveAll(into: $0, timeout: .milliseconds(200)) }
        }
        let waited = Date().timeIntervalSince(started)
        #expect(error?.code == .timeout)
        #expect(error?.peer == server.peerDescription)
        #expect(error?.description.contains("timed out after 0.2 s (waited 2") == true)
        #expect(error?.description.contains("received 1 of 8 bytes") == true)
        #expect(waited >= 0.2 && waited < 2)
        #expect(buffer[0] == 42)
    }

    @Test("an exchange timeout names both peers")
    func exchangeTimeoutNamesBoth() throws {
        let (a, b) = try connectedPair()  // b never reads
        let (d, c) = try connectedPair()  // d never writes
        defer { withExtendedLifetime((b, d)) {} }
        a.peerName = "rank 1"
        c.peerName = "rank 2"
        let big = largePattern(32 << 20, seed: 5)  // more than the socket buffers hold
        var into = [UInt8](repeating: 0, count: 8)
        let error = #expect(throws: CCLError.self) {
            try big.withUnsafeBytes { out in
                try into.withUnsafeMutableBytes { into in
                    try TCPConnection.exchange(send: (a, out), receive: (c, into), timeout: .milliseconds(100), operation: "ring step")
                }
            }
        }
        #expect(error?.code == .timeout)
        #expect(error?.peer?.contains("rank 1 at") == true)
        #expect(error?.peer?.contains("(sending) and rank 2 at") == true)
        #expect(error?.description.contains("received 0 of 8 bytes") == true)
    }

    @Test("non-blocking primitives return 0 instead of waiting")
    func nonBlocking() throws {
        let (client, server) = try connectedPair()
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try buffer.withUnsafeMutableBytes { try server.receiveSome(into: $0) } == 0)
        let chunk = [UInt8](repeating: 7, count: 1 << 20)
        var total = 0
        while true {
            let sent = try chunk.withUnsafeBytes { try client.sendSome($0) }
            if sent == 0 { break }
            total += sent
        }
        #expect(total > 0)
        #expect(try buffer.withUnsafeMutableBytes { try server.receiveSome(into: $0) } == 16)
        #expect(client.fd >= 0)
        client.close()
        #expect(client.fd == -1)
        let closed = #expect(throws: CCLError.self) { _ = try chunk.withUnsafeBytes { try client.sendSome($0) } }
        #expect(closed?.code == .invalidArgument)
    }
}

extension SocketConnectTests {
    @Test("a connect the listener never answers (full backlog) times out as 'did not answer'")
    func fullBacklog() throws {
        let listener = try TCPListener(host: "127.0.0.1", port: 0, backlog: 0)
        var held: [TCPConnection] = []
        var failure: CCLError?
        for _ in 0..<8 {
            do {
                held.append(try TCPConnection.connect(host: "127.0.0.1", port: listener.port, timeout: .milliseconds(300)))
            } catch {
                failure = error
                break
            }
        }
        #expect(held.count >= 1)
        #expect(failure?.code == .timeout)
        #expect(failure?.description.contains("the peer did not answer") == true)
    }
}
