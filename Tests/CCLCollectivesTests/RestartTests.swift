import CCL
import CCLTestSupport
import Foundation
import Testing

/// Ranks that die and are started again, as real processes over a real TCP store: the group
/// meets again in a new round, nothing of the dead rank's round is read, and the store is left
/// empty when the job ends.
@Suite(.serialized) struct RestartTests {
    static let token = "restart"

    func rank(_ rank: Int, _ server: TCPStoreServer, _ transport: String, _ extra: [String: String] = [:]) throws -> Worker {
        try Worker(
            "restart",
            ["port": "\(server.port)", "token": Self.token, "rank": "\(rank)", "world": "2", "transport": transport, "timeout": "20"]
                .merging(extra) { $1 })
    }

    /// Waits (up to 10 s) until the store holds no key: every group closed and cleaned up.
    func expectEmpty(_ server: TCPStoreServer) throws {
        let client = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: Self.token)
        let deadline = Date().addingTimeInterval(10)
        while try client.numKeys() > 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try client.keys(prefix: "") == [])
    }

    @Test(
        "a rank killed while its group forms; both ranks started again meet in a new round (collectives and the queue)",
        arguments: ["shm", "tcp"])
    func killedBeforeForming(transport: String) throws {
        let server = try TCPStoreServer(token: Self.token)
        let doomed = try rank(1, server, transport)
        Thread.sleep(forTimeInterval: 1.0)  // joined, waiting for rank 0
        doomed.sigkill()
        _ = doomed.exitStatus()
        let workers = try [rank(0, server, transport, ["queue": "20"]), rank(1, server, transport, ["queue": "20"])]
        var rounds: [String] = []
        for worker in workers {
            let formed = try worker.expect("FORMED ")
            rounds.append(try worker.expect("DONE ").dropFirst(5).description)
            #expect(formed.dropFirst(7).description == rounds.last, "\(worker.lines)")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
        #expect(rounds[0] == rounds[1])
        try expectEmpty(server)
    }

    @Test(
        "a rank killed inside a collective: the survivor fails naming it, makes the group again, and meets the restarted rank",
        arguments: ["shm", "tcp"])
    func killedInsideACollective(transport: String) throws {
        let server = try TCPStoreServer(token: Self.token)
        let survivor = try rank(0, server, transport, ["rejoin": "1", "iterations": "30"])
        let doomed = try rank(1, server, transport, ["die": "10", "iterations": "30"])
        let first = try survivor.expect("FORMED ")
        _ = doomed.exitStatus()
        let lost = try survivor.expect("LOST ")
        #expect(lost.contains("rank 1"), "\(lost)")
        let restarted = try rank(1, server, transport, ["iterations": "30"])
        let second = try survivor.expect("FORMED ")
        #expect(second != first, "a new round: \(survivor.lines)")
        #expect(try restarted.expect("FORMED ") == second)
        #expect(try survivor.expect("DONE ") == "DONE " + second.dropFirst(7))
        #expect(try restarted.expect("DONE ") == "DONE " + second.dropFirst(7))
        #expect(survivor.exitStatus() == 0, "\(survivor.lines)")
        #expect(restarted.exitStatus() == 0, "\(restarted.lines)")
        try expectEmpty(server)
    }

    @Test("two live processes with the same rank: both fail at once, naming both; a formed group turns a late one away")
    func duplicateRank() throws {
        let server = try TCPStoreServer(token: Self.token)
        let first = try rank(1, server, "shm")
        Thread.sleep(forTimeInterval: 0.5)
        let start = Date()
        let second = try rank(1, server, "shm")
        for worker in [second, first] {
            let error = try worker.expect("ERROR")
            #expect(error.contains("pid \(first.pid)") && error.contains("pid \(second.pid)"), "\(error)")
            #expect(worker.exitStatus() != 0)
        }
        #expect(Date().timeIntervalSince(start) < 5)
        try expectEmpty(server)
        // Once the group has formed, a late duplicate is turned away and the job goes on.
        let workers = try [rank(0, server, "shm", ["iterations": "100"]), rank(1, server, "shm", ["iterations": "100"])]
        for worker in workers { try worker.expect("FORMED ") }
        let late = try rank(1, server, "shm")
        #expect(try late.expect("ERROR").contains("rank 1 of group world is held by pid \(workers[1].pid)"))
        for worker in workers {
            try worker.expect("DONE ")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
        try expectEmpty(server)
    }
}
