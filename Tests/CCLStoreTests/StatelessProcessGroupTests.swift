import CCLCore
import Foundation
import Testing

@testable import CCLStore

/// Ranks as threads over one store (in memory and over TCP); the multi-process path is the
/// launcher's job (`ccl launch`) once it lands.
@Suite struct StatelessProcessGroupTests {
    struct Info: Codable, Equatable {
        var rank: Int
        var host: String
        var devices: [Int]
    }

    /// Runs `body` as `world` ranks on threads; returns each rank's result or error.
    func ranks<R: Sendable>(
        _ world: Int, store: @escaping @Sendable (Int) throws -> any Store, _ body: @escaping @Sendable (StatelessProcessGroup) throws -> R
    )
        -> [Result<R, any Error>]
    {
        let results = LockedResults<R>(count: world)
        let threads = (0..<world).map { r in
            Thread {
                results.set(
                    r, Result { try body(try StatelessProcessGroup(rank: r, worldSize: world, store: try store(r), timeout: .seconds(10))) }
                )
            }
        }
        for thread in threads { thread.start() }
        results.waitAll()
        return results.values
    }

    @Test("broadcast, all-gather, barrier and send/recv", arguments: [StoreKind.memory, .tcp])
    func collectives(kind: StoreKind) throws {
        let memory = InMemoryStore()
        let server = kind == .tcp ? try TCPStoreServer(token: "g") : nil
        let port = server?.port ?? 0
        let results = ranks(
            4, store: { _ in kind == .tcp ? try TCPStoreClient(host: "127.0.0.1", port: port, token: "g") as any Store : memory }
        ) { group in
            let config = try group.broadcastObject(group.rank == 0 ? ["model": "llama", "tp": "4"] : nil, from: 0)
            let infos = try group.allGatherObject(Info(rank: group.rank, host: "node\(group.rank / 2)", devices: [group.rank]))
            try group.barrier()
            let again = try group.allGatherObject(group.rank * 10)
            try group.sendObject("hello from \(group.rank)", to: (group.rank + 1) % 4)
            let message = try group.recvObject(String.self, from: (group.rank + 3) % 4)
            try group.barrier()
            return "\(config["model"] ?? "") \(infos.map(\.host).joined(separator: ",")) \(again) \(message)"
        }
        for (r, result) in results.enumerated() {
            #expect(try result.get() == "llama node0,node0,node1,node1 [0, 10, 20, 30] hello from \((r + 3) % 4)")
        }
        withExtendedLifetime(server) {}
    }

    @Test("a group made again under the same name does not see the old one's keys")
    func reusedName() throws {
        let store = InMemoryStore()
        let results = ranks(2, store: { _ in store }) { group in
            _ = try group.allGatherObject("first")
            let again = try StatelessProcessGroup(rank: group.rank, worldSize: 2, store: store, timeout: .seconds(5))
            return try again.allGatherObject("second \(group.rank)")
        }
        for result in results { #expect(try result.get() == ["second 0", "second 1"]) }
    }

    @Test("a sub-group names its members by global rank")
    func globalNames() throws {
        let store = InMemoryStore()
        let error = #expect(throws: CCLError.self) {
            _ = try StatelessProcessGroup(
                rank: 0, worldSize: 2, store: store, name: "tp2", timeout: .milliseconds(300), globalRanks: [4, 5])
        }
        #expect(error?.message.contains("rank 5 never joined") == true, "\(String(describing: error))")
        #expect(error?.peer == "rank 5")
        #expect(error?.rank == 4)
        #expect(store.numKeys() == 0, "a join that timed out leaves nothing behind: \(store.keys(prefix: ""))")
    }

    @Test("a barrier that times out names the ranks that never arrived")
    func barrierTimeout() throws {
        let store = InMemoryStore()
        let results = ranks(4, store: { _ in store }) { group in
            if group.rank == 1 || group.rank == 3 {
                Thread.sleep(forTimeInterval: 1.5)  // in the group, but never calling barrier
                return "absent"
            }
            do {
                try group.barrier(timeout: .milliseconds(300))
                return "passed"
            } catch {
                return "\(error)"
            }
        }
        let message = try results[0].get()
        #expect(message.contains("barrier on group world"), "\(message)")
        #expect(message.contains("ranks 1 and 3 never arrived"), "\(message)")
    }

    @Test("a call waiting for a rank that closed the group fails at once, naming it")
    func departedRank() throws {
        let store = InMemoryStore()
        let results = ranks(3, store: { _ in store }) { group in
            if group.rank == 2 {
                group.close()
                return "closed"
            }
            let start = Date()
            do {
                _ = try group.allGatherObject(group.rank, timeout: .seconds(30))
                return "passed"
            } catch {
                return
                    "\((error as? CCLError)?.code.name ?? "?") after \(Date().timeIntervalSince(start) < 5 ? "under 5 s" : "too long"): \(error)"
            }
        }
        for rank in 0..<2 {
            let message = try results[rank].get()
            #expect(message.hasPrefix("peerDead after under 5 s"), "\(message)")
            #expect(message.contains("rank 2 left the group"), "\(message)")
        }
    }

    @Test("keys are cleaned up as ranks move on")
    func cleanup() throws {
        let store = InMemoryStore()
        _ = ranks(3, store: { _ in store }) { group in
            for i in 0..<20 {
                _ = try group.broadcastObject(group.rank == 0 ? i : nil, from: 0)
                _ = try group.allGatherObject(i)
                try group.barrier()
            }
        }
        // Every group has gone (closed as its last reference went): nothing remains.
        #expect(store.numKeys() == 0, "\(store.keys(prefix: ""))")
    }
}

/// Results written by rank threads, read once all are in.
final class LockedResults<R: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var slots: [Result<R, any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Result<R, any Error>) {
        condition.lock()
        slots[index] = value
        condition.broadcast()
        condition.unlock()
    }

    func waitAll() {
        condition.lock()
        while slots.contains(where: { $0 == nil }) { condition.wait() }
        condition.unlock()
    }

    var values: [Result<R, any Error>] { slots.compactMap { $0 } }
}

@Suite struct GroupLifetimeTests {
    @Test("300 group lifetimes of 2 ranks against one TCP store leave its key count where it started")
    func manyLifetimes() throws {
        let server = try TCPStoreServer(token: "life")
        let observer = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "life")
        try observer.set("unrelated", [1])
        let before = try observer.numKeys()
        let results = LockedResults<Int>(count: 2)
        let threads = (0..<2).map { rank in
            Thread {
                results.set(
                    rank,
                    Result {
                        let store = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "life", timeout: .seconds(10))
                        for lifetime in 0..<300 {
                            let group = try StatelessProcessGroup(rank: rank, worldSize: 2, store: store, timeout: .seconds(10))
                            guard try group.allGatherObject(lifetime * 10 + rank) == [lifetime * 10, lifetime * 10 + 1] else {
                                throw CCLError(.malformed, operation: "lifetime \(lifetime)", "saw another lifetime's data")
                            }
                            _ = try group.broadcastObject(rank == 0 ? "config \(lifetime)" : nil, from: 0)
                            try group.barrier()
                            group.close()
                        }
                        return 300
                    })
            }
        }
        for thread in threads { thread.start() }
        results.waitAll()
        for result in results.values { #expect(try result.get() == 300) }
        // The last rank out deletes the round; give its requests a moment to land.
        let deadline = Date().addingTimeInterval(5)
        while try observer.numKeys() != before, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let left = try observer.keys(prefix: "")
        #expect(left.count == before, "\(left)")
        withExtendedLifetime(server) {}
    }
}

@Suite struct GroupRestartTests {
    @Test("a survivor's call names the rank that went away and the process that took its place; making the group again meets it")
    func survivorNamesSuccessor() throws {
        let server = try TCPStoreServer(token: "rs")
        let port = server.port
        @Sendable func client() throws -> TCPStoreClient {
            try TCPStoreClient(host: "127.0.0.1", port: port, token: "rs", timeout: .seconds(10))
        }
        let survivorStore = try client()
        let doomedStore = try client()
        let formed = LockedResults<StatelessProcessGroup>(count: 2)
        for (rank, store) in [(0, survivorStore), (1, doomedStore)] {
            Thread { formed.set(rank, Result { try StatelessProcessGroup(rank: rank, worldSize: 2, store: store, timeout: .seconds(10)) }) }
                .start()
        }
        formed.waitAll()
        let survivor = try formed.values[0].get()
        doomedStore.close()  // the process holding rank 1 is gone: the server drops its claim
        let successor = LockedResults<[String]>(count: 1)
        Thread {
            successor.set(
                0,
                Result {
                    let group = try StatelessProcessGroup(rank: 1, worldSize: 2, store: try client(), timeout: .seconds(10))
                    return try group.allGatherObject("new \(group.rank)")
                })
        }.start()
        Thread.sleep(forTimeInterval: 0.5)  // the successor is waiting in its new round
        let error = #expect(throws: CCLError.self) { _ = try survivor.allGatherObject("old 0", timeout: .seconds(10)) }
        #expect(error?.code == .peerDead)
        #expect(error?.message.contains("rank 1 left the group before this call") == true, "\(String(describing: error))")
        #expect(error?.message.contains("rank 1 is now pid \(getpid()) on") == true, "\(String(describing: error))")
        survivor.close()
        let again = try StatelessProcessGroup(rank: 0, worldSize: 2, store: survivorStore, timeout: .seconds(10))
        #expect(try again.allGatherObject("new \(again.rank)") == ["new 0", "new 1"])
        successor.waitAll()
        #expect(try successor.values.first?.get() == ["new 0", "new 1"])
        withExtendedLifetime(server) {}
    }
}
