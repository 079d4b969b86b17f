import CCLCore
import CCLSystem
import CCLTestSupport
import Foundation
import NIOCore
import Testing

@testable import CCLStore

/// The same semantics checked on every store: in memory, over TCP, and through a prefix.
enum StoreKind: String, CaseIterable, Sendable {
    case memory, tcp, prefix
}

/// A store of `kind` and what keeps it alive (the server).
func makeStore(_ kind: StoreKind) throws -> (any Store, AnyObject?) {
    switch kind {
    case .memory: return (InMemoryStore(timeout: .seconds(5)), nil)
    case .prefix: return (PrefixStore("group7", InMemoryStore(timeout: .seconds(5))), nil)
    case .tcp:
        let server = try TCPStoreServer(token: "secret")
        return (try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "secret", timeout: .seconds(5)), server)
    }
}

@Suite struct StoreSemanticsTests {
    @Test("set, get, add, compareSet, check, delete, numKeys, keys", arguments: StoreKind.allCases)
    func basics(kind: StoreKind) throws {
        let (store, server) = try makeStore(kind)
        defer { withExtendedLifetime(server) {} }
        try store.set("a", [1, 2, 3])
        #expect(try store.get("a") == [1, 2, 3])
        try store.set("empty", [])
        #expect(try store.get("empty") == [])
        #expect(try store.add("count", 5) == 5)
        #expect(try store.add("count", -2) == 3)
        #expect(try store.get("count") == Array("3".utf8))
        #expect(throws: CCLError.self) { _ = try store.add("a", 1) }
        // compareSet, torch's rules.
        #expect(try store.compareSet("cs", expected: [], desired: [7]) == [7])
        #expect(try store.compareSet("cs", expected: [9], desired: [8]) == [7])
        #expect(try store.compareSet("cs", expected: [7], desired: [8]) == [8])
        #expect(try store.compareSet("absent", expected: [4], desired: [5]) == [4])
        #expect(try store.check(["a", "count"]))
        #expect(try !store.check(["a", "absent"]))
        #expect(try store.delete("a"))
        #expect(try !store.delete("a"))
        #expect(try store.numKeys() == 3)  // empty, count, cs
        try store.set("rank/1", "x")
        try store.set("rank/0", "x")
        #expect(try store.keys(prefix: "rank/") == ["rank/0", "rank/1"])
    }

    @Test("wait and get block until another thread sets the key", arguments: StoreKind.allCases)
    func waitsForSetter(kind: StoreKind) throws {
        let (store, server) = try makeStore(kind)
        defer { withExtendedLifetime(server) {} }
        // Over TCP the setter has its own client, as another process would.
        let other: any Store =
            if let server = server as? TCPStoreServer {
                try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "secret")
            } else { store }
        let setter = Thread {
            Thread.sleep(forTimeInterval: 0.1)
            try? other.set("late", [42])
        }
        setter.start()
        try store.wait(["late"], timeout: .seconds(5))
        #expect(try store.get("late", timeout: .seconds(1)) == [42])
    }

    @Test("a wait that times out names the missing keys", arguments: StoreKind.allCases)
    func waitTimeout(kind: StoreKind) throws {
        let (store, server) = try makeStore(kind)
        defer { withExtendedLifetime(server) {} }
        try store.set("rank/0", "here")
        let start = Date()
        let error = #expect(throws: CCLError.self) { try store.wait(["rank/0", "rank/1", "rank/2"], timeout: .milliseconds(200)) }
        #expect(error?.code == .timeout)
        // Keys as the store holds them (a prefix store's carry its prefix).
        #expect(error?.message.contains("rank/1, ") == true, "\(String(describing: error))")
        #expect(error?.message.contains("rank/2") == true)
        #expect(error?.message.contains("rank/0") == false)
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test("a prefix store sees only its own keys")
    func prefixIsolation() throws {
        let base = InMemoryStore()
        let a = PrefixStore("tp0", base)
        let b = PrefixStore("tp1", base)
        try a.set("x", [1])
        try b.set("x", [2])
        #expect(try a.get("x") == [1])
        #expect(try b.get("x") == [2])
        #expect(try a.numKeys() == 1)
        #expect(try a.keys(prefix: "") == ["x"])
        #expect(try base.keys(prefix: "") == ["tp0/x", "tp1/x"])
    }
}

@Suite(.serialized) struct TCPStoreTests {
    @Test("16 concurrent clients count to 1600 exactly")
    func concurrentClients() async throws {
        let server = try TCPStoreServer(token: "t")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let client = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t")
                    for _ in 0..<100 { _ = try client.add("n", 1) }
                }
            }
            try await group.waitForAll()
        }
        let check = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t")
        #expect(try check.add("n", 0) == 1600)
    }

    @Test("a client with the wrong token is refused")
    func wrongToken() throws {
        let server = try TCPStoreServer(token: "right")
        let error = #expect(throws: CCLError.self) { _ = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "wrong") }
        #expect(error?.code == .unauthenticated)
        #expect(throws: CCLError.self) { _ = try TCPStoreServer(token: "") }
    }

    @Test("garbage, oversized frames and a half frame then silence lose only their own connection")
    func hostileClients() throws {
        let server = try TCPStoreServer(token: "tok", stallTimeout: .milliseconds(300))
        let good = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "tok")
        try good.set("k", [1])

        let garbage = try RawSocket.connect(port: server.port)
        garbage.send(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        #expect(garbage.peerClosed())

        let hello = Handshake(token: Array("tok".utf8)).encode(magic: StoreWire.helloMagic)
        let oversized = try RawSocket.connect(port: server.port)
        oversized.send(hello + littleEndian(UInt32(1 << 30)) + [1])
        #expect(oversized.peerClosed())

        let unknownOp = try RawSocket.connect(port: server.port)
        unknownOp.send(hello + littleEndian(UInt32(1)) + [99])
        #expect(unknownOp.peerClosed())

        let overrun = try RawSocket.connect(port: server.port)
        overrun.send(hello + littleEndian(UInt32(5)) + [1] + littleEndian(UInt32(4000)))  // key longer than its frame
        #expect(overrun.peerClosed())

        let half = try RawSocket.connect(port: server.port)
        half.send(hello + littleEndian(UInt32(100)) + [1, 2, 3])  // then silence
        let start = Date()
        #expect(half.peerClosed())
        #expect(Date().timeIntervalSince(start) < 3)

        let silent = try RawSocket.connect(port: server.port)  // never says hello
        #expect(silent.peerClosed())

        // The good client was served throughout.
        #expect(try good.get("k") == [1])
        try good.set("k", [2])
        #expect(try good.get("k") == [2])
    }

    @Test("a client whose server vanished gets an error, not a hang")
    func serverGone() throws {
        let server = try TCPStoreServer(token: "t")
        let client = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t")
        let waiter = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            server.close()
        }
        let start = Date()
        waiter.start()
        let error = #expect(throws: CCLError.self) { try client.wait(["never"], timeout: .seconds(30)) }
        #expect(error?.code == .peerDead)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(throws: CCLError.self) { try client.set("x", [1]) }
    }

    @Test("no server at all: connecting gives up at its timeout, naming the address")
    func noServer() throws {
        let port = try { () throws -> Int in try RawSocket.listen().1 }()  // bound, then closed: nobody listens
        let start = Date()
        let error = #expect(throws: CCLError.self) {
            _ = try TCPStoreClient(host: "127.0.0.1", port: port, token: "t", timeout: .milliseconds(300))
        }
        #expect(error?.code == .peerDead)
        #expect(error?.description.contains("127.0.0.1:\(port)") == true)
        #expect(Date().timeIntervalSince(start) < 3)
    }
}
