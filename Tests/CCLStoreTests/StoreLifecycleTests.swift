import CCLCore
import CCLSystem
import CCLTestSupport
import Foundation
import Testing

@testable import CCLStore

/// What keeps a long job's store honest: claims that die with their holder, listings of any
/// length, and a server whose memory returns after large requests.
@Suite struct StoreLifecycleTests {
    @Test("claim sets only an absent key and returns the holder's value otherwise", arguments: StoreKind.allCases)
    func claimSemantics(kind: StoreKind) throws {
        let (store, server) = try makeStore(kind)
        defer { withExtendedLifetime(server) {} }
        #expect(try store.claim("slot", [1]) == nil)
        #expect(try store.claim("slot", [2]) == [1])
        #expect(try store.get("slot") == [1])
        try store.set("plain", [9])
        #expect(try store.claim("plain", [3]) == [9])
        #expect(try store.delete("slot"))
        #expect(try store.claim("slot", [4]) == nil)
    }

    @Test("a TCP client's claims are deleted when it goes away; keys it set, or later overwritten claims, stay")
    func claimsDieWithTheClient() throws {
        let server = try TCPStoreServer(token: "t")
        let holder = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(5))
        let other = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(5))
        #expect(try holder.claim("member/0", Array("pid 1".utf8)) == nil)
        #expect(try holder.claim("member/1", Array("pid 1".utf8)) == nil)
        try holder.set("data", [1])
        #expect(try other.claim("member/0", [2]) == Array("pid 1".utf8))
        try other.set("member/1", [7])  // overwritten: no longer the holder's claim
        holder.close()
        // The server sees the close soon after; until then the claim stands.
        let deadline = Date().addingTimeInterval(5)
        while try other.check(["member/0"]), Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(try !other.check(["member/0"]))
        #expect(try other.get("member/1") == [7])
        #expect(try other.get("data") == [1])
        #expect(try other.claim("member/0", [2]) == nil)
        withExtendedLifetime(server) {}
    }

    @Test("keys returns every key however many there are: pages of 64 for 1,001 keys")
    func keysPaged() throws {
        let server = try TCPStoreServer(token: "t")
        try server.setKeysPerPage(64)
        let client = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(30))
        let count = 1001
        for index in 0..<count { try client.set(String(format: "k/%06d", index), []) }
        try client.set("other", [])
        let keys = try client.keys(prefix: "k/")
        #expect(keys.count == count)
        #expect(keys == (0..<count).map { String(format: "k/%06d", $0) })
        #expect(try client.numKeys() == count + 1)
        withExtendedLifetime(server) {}
    }

    @Test("a set costs one lookup per parked wait, not one per key waited for (20 waits of 65,536 keys)")
    func parkedWaitsStayCheap() throws {
        let server = try TCPStoreServer(token: "t")
        let keys = (0..<StoreWire.maxKeys).map { "never/\($0)" }
        let waiters = try (0..<20).map { _ in try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(30)) }
        let threads = waiters.map { client in Thread { _ = try? client.wait(keys, timeout: .seconds(20)) } }
        for thread in threads { thread.start() }
        let setter = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(30))
        // The waits are parked once a key they do not wait for is seen by all of them.
        Thread.sleep(forTimeInterval: 1)
        let before = try server.wakeLookups()
        for index in 0..<100 { try setter.set("other/\(index)", [1]) }
        let lookups = try server.wakeLookups() - before
        #expect(lookups <= 100 * 20, "\(lookups) lookups for 100 sets with 20 parked waits")
        for waiter in waiters { waiter.close() }
        withExtendedLifetime(server) {}
    }

    @Test("a parked wait wakes only when all its keys are there at once (a key set, deleted, set again)")
    func parkedWaitRechecks() throws {
        let server = try TCPStoreServer(token: "t")
        let waiter = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(30))
        let setter = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "t", timeout: .seconds(30))
        let done = LockedResults<Bool>(count: 1)
        Thread {
            done.set(
                0,
                Result {
                    try waiter.wait(["a", "b"], timeout: .seconds(20)); return try setter.check(["a", "b"])
                })
        }.start()
        Thread.sleep(forTimeInterval: 0.3)
        try setter.set("a", [1])
        #expect(try setter.delete("a"))
        try setter.set("b", [1])
        Thread.sleep(forTimeInterval: 0.3)
        #expect(done.values.isEmpty, "woke with a missing")
        try setter.set("a", [2])
        done.waitAll()
        #expect(try done.values.first?.get() == true)
        withExtendedLifetime(server) {}
    }

    @Test("malformed claim and keys frames lose only their own connection; boundary values are refused or served")
    func hostileNewOps() throws {
        let server = try TCPStoreServer(token: "tok", stallTimeout: .milliseconds(300))
        let good = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "tok")
        try good.set("k", [1])
        let hello = Handshake(token: Array("tok".utf8)).encode(magic: StoreWire.helloMagic)
        func frame(_ body: [UInt8]) -> [UInt8] { le(UInt32(body.count)) + body }
        let key = { (text: String) in le(UInt32(text.utf8.count)) + Array(text.utf8) }
        let bad: [(String, [UInt8])] = [
            ("keys: after-flag 2", frame([StoreWire.Op.keys.rawValue] + key("") + [2])),
            ("keys: after-flag 1 without the key", frame([StoreWire.Op.keys.rawValue] + key("") + [1])),
            ("keys: after key of 2^32-1 bytes", frame([StoreWire.Op.keys.rawValue] + key("") + [1] + le(UInt32.max))),
            ("keys: no flag at all", frame([StoreWire.Op.keys.rawValue] + key(""))),
            ("claim: no value", frame([StoreWire.Op.claim.rawValue] + key("c"))),
            (
                "claim: key over 4,096 bytes",
                frame([StoreWire.Op.claim.rawValue] + key(String(repeating: "x", count: 4097)) + le(UInt32(0)))
            ),
            ("claim: value longer than its frame", frame([StoreWire.Op.claim.rawValue] + key("c") + le(UInt32(1 << 20)))),
            ("claim: trailing bytes", frame([StoreWire.Op.claim.rawValue] + key("c") + le(UInt32(0)) + [7])),
        ]
        for (what, bytes) in bad {
            let socket = try RawSocket.connect(port: server.port)
            _ = socket.send(hello + bytes)
            #expect(socket.peerClosed(), "\(what)")
        }
        // Boundaries through the client: an empty key and value, a key of exactly 4,096 bytes,
        // one byte more refused before it is sent.
        #expect(try good.claim("", []) == nil)
        let longest = String(repeating: "y", count: StoreWire.maxKeyBytes)
        #expect(try good.claim(longest, [1]) == nil)
        #expect(try good.keys(prefix: longest) == [longest])
        let error = #expect(throws: CCLError.self) { _ = try good.claim(longest + "y", []) }
        #expect(error?.code == .tooLarge)
        #expect(error?.operation.contains("store claim") == true)
        #expect(try good.get("k") == [1])
        withExtendedLifetime(server) {}
    }
}

private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
