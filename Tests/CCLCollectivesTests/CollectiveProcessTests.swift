import CCL
import CCLTestSupport
import Foundation
import Testing

/// Runs `world` worker processes in `collectives` mode that meet through a TCP store here.
func runCollectiveWorkers(
    world: Int, _ arguments: [String: String], nodes: [String]? = nil, environment: [String: String] = [:],
    perRank: (Int) -> [String: String] = { _ in [:] }
) throws -> [Worker] {
    let server = try TCPStoreServer(token: "coll")
    let workers = try (0..<world).map { rank in
        var words = arguments.merging(["port": "\(server.port)", "token": "coll", "rank": "\(rank)", "world": "\(world)"]) { _, new in new }
        if let nodes { words["node"] = nodes[rank] }
        words.merge(perRank(rank)) { _, new in new }
        return try Worker("collectives", words, environment: environment)
    }
    // The server must outlive the rendezvous: wait for every worker's line after its choice of
    // a backend (the communicator is made, or it failed).
    for worker in workers {
        while let line = worker.readLine(), line.hasPrefix("CHOOSING") {}
    }
    withExtendedLifetime(server) {}
    return workers
}

/// Starts `world` ranks looping over the calls `arguments` name, stops rank 1 with SIGSTOP
/// `after` seconds in, and returns every other rank's error line with the seconds it came after
/// the stop; rank 1 is continued, and every rank killed, before it returns.
func stopRankOneMidJob(world: Int, _ arguments: [String: String], nodes: [String]? = nil, after: Double = 0.5) throws -> [(
    rank: Int, line: String, waited: Double
)] {
    let workers = try runCollectiveWorkers(world: world, arguments.merging(["repeat": "100000"]) { _, new in new }, nodes: nodes)
    defer { for worker in workers { worker.sigkill() } }
    for worker in workers { try worker.expect("LOOPING") }
    Thread.sleep(forTimeInterval: after)
    kill(workers[1].pid, SIGSTOP)
    defer { kill(workers[1].pid, SIGCONT) }
    let stopped = Date()
    return try workers.enumerated().filter { $0.offset != 1 }.map { rank, worker in
        let line = try worker.expect("ERROR")
        return (rank, line, Date().timeIntervalSince(stopped))
    }
}

/// Every collective, every dtype and reduce op, against the integer reference, in real processes.
@Suite(.serialized) struct CollectiveProcessTests {
    static let counts = "0,1,7,1023,1048579"

    @Test("shared memory: every op × dtype × count", arguments: [1, 2, 3, 4])
    func sharedMemory(world: Int) throws {
        let workers = try runCollectiveWorkers(world: world, ["transport": "shm", "counts": Self.counts])
        for worker in workers {
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test("shared memory stays usable after a mismatched call", arguments: ["count", "kind", "barrier"])
    func recoverAfterMismatch(what: String) throws {
        let workers = try runCollectiveWorkers(
            world: 3, ["transport": "shm", "mismatch": "2", "what": what, "recover": "1", "timeout": "20"])
        for worker in workers {
            let line = try worker.expect("MISMATCH")
            #expect(line.contains("ranks disagree") && line.contains("rank 2 called"), "\(line)")
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test("TCP: every op × dtype × count", arguments: [1, 2, 3, 4])
    func tcp(world: Int) throws {
        let workers = try runCollectiveWorkers(world: world, ["transport": "tcp", "counts": Self.counts])
        for worker in workers {
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test(
        "hierarchical: two node identities on loopback, grouped and interleaved",
        arguments: [["A", "A", "B", "B"], ["A", "B", "A", "B"], ["A", "A", "A", "B"]])
    func hierarchical(nodes: [String]) throws {
        let workers = try runCollectiveWorkers(world: nodes.count, ["counts": Self.counts], nodes: nodes)
        for worker in workers {
            #expect(worker.lines.contains { $0.hasPrefix("TRANSPORT hierarchical") }, "\(worker.lines)")
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test("shared memory with small slots: every call pipelined in many pieces", arguments: [2, 3])
    func smallSlots(world: Int) throws {
        let workers = try runCollectiveWorkers(
            world: world, ["transport": "shm", "counts": "1023,70001", "dtypes": "float32,bfloat16,int8", "slot": "4096"])
        for worker in workers {
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test(
        "a mismatched call fails on every rank, naming what each rank called",
        arguments: ["shm", "tcp", "auto"], ["count", "op", "dtype", "root", "kind", "barrier"])
    func mismatch(transport: String, what: String) throws {
        let nodes = transport == "auto" ? ["A", "A", "B"] : nil
        let workers = try runCollectiveWorkers(
            world: 3, ["transport": transport, "mismatch": "1", "what": what, "timeout": "20"], nodes: nodes)
        for worker in workers {
            let line = try worker.expect("ERROR")
            #expect(line.contains("ranks disagree"), "\(line)")
            #expect(line.contains("rank 1 called"), "\(line)")
            #expect(worker.exitStatus() == 1)
        }
    }

    @Test("a rank that never calls makes the others time out naming it", arguments: ["shm", "tcp"])
    func stalledRank(transport: String) throws {
        let workers = try runCollectiveWorkers(
            world: 3, ["transport": transport, "counts": "7", "dtypes": "float32", "stall": "1", "timeout": "2"])
        try workers[1].expect("STALLING")
        for worker in [workers[0], workers[2]] {
            let line = try worker.expect("ERROR")
            #expect((line.contains("timeout") || line.contains("timed out")) && line.contains("rank 1"), "\(line)")
            // The flight recorders on this node say what rank 1 did (nothing yet) and who waits.
            #expect(
                line.contains(
                    "flight recorders on this node: allReduce(sum) float32 × 7 #1 on group world [0 1 2]: rank 1 never entered it (it has recorded no collective)"
                ), "\(line)")
        }
        workers[1].sigkill()
    }

    @Test(
        "a rank stopped with SIGSTOP mid-job (alive, so liveness checks pass) is named by the others within the timeout plus 2 s",
        arguments: ["shm", "tcp", "hierarchical"])
    func stoppedRank(transport: String) throws {
        // Hierarchical: two nodes of two ranks (shared memory inside each, TCP between).
        let hierarchical = transport == "hierarchical"
        let answers = try stopRankOneMidJob(
            world: hierarchical ? 4 : 3,
            ["transport": hierarchical ? "auto" : transport, "counts": "7,1023", "dtypes": "float32", "timeout": "3"],
            nodes: hierarchical ? ["a", "a", "b", "b"] : nil, after: 0.3)
        for (rank, line, waited) in answers {
            #expect(waited < 3 + 2, "rank \(rank) answered after \(waited) s")
            #expect(line.contains("rank 1"), "rank \(rank): \(line)")
            // Its recorder says it is stopped (or that it never entered the call the others wait in).
            #expect(
                line.contains("rank 1 is stopped (SIGSTOP or a debugger") || line.contains("rank 1 never entered it"),
                "rank \(rank): \(line)")
        }
    }

    @Test("a stalled rank that wakes fails the call its peers gave up on, saying so", arguments: ["shm", "tcp"])
    func lateRank(transport: String) throws {
        let workers = try runCollectiveWorkers(
            world: 2, ["transport": transport, "counts": "7", "dtypes": "float32", "stall": "1", "timeout": "2", "linger": "12"])
        try workers[1].expect("STALLING")
        let early = try workers[0].expect("ERROR")
        #expect(early.contains("timeout") && early.contains("rank 1"), "\(early)")
        // The peer's data for call #1 is there (in the late rank's socket, or in shared memory):
        // the call must still fail.
        let late = try workers[1].expect("ERROR")
        #expect(late.contains("#1 on group world") && late.contains("rank 0 gave up"), "\(late)")
        for worker in workers { worker.sigkill() }
    }

    @Test(
        "TCP with the send thread (large frames go out on a thread of their own while the caller receives), the ring's frames streamed or not, received on a thread of their own or not: every op × dtype × count",
        arguments: [(2, "1", "0"), (3, "1", "0"), (3, "0", "0"), (2, "1", "1"), (3, "1", "1")])
    func tcpSendThread(world: Int, stream: String, receiveThread: String) throws {
        let workers = try runCollectiveWorkers(
            world: world, ["transport": "tcp", "counts": Self.counts, "sendthread": "1", "stream": stream, "receivethread": receiveThread])
        for worker in workers {
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test(
        "TCP with several connections per peer (large payloads striped), with and without the send thread: every op × dtype × count",
        arguments: [(3, 3, "1"), (4, 2, "1"), (3, 2, "0")])
    func tcpStriped(world: Int, connections: Int, sendThread: String) throws {
        let workers = try runCollectiveWorkers(
            world: world, ["transport": "tcp", "counts": Self.counts, "connections": "\(connections)", "sendthread": sendThread])
        for worker in workers {
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test("TCP with several connections per peer: a rank killed before or during a call, or stopped, is named by the others in time")
    func stripedFailures() throws {
        let killed = try runCollectiveWorkers(
            world: 4, ["transport": "tcp", "counts": "16777216", "dtypes": "float32", "killself": "2", "timeout": "10", "connections": "3"])
        try killed[2].expect("KILLING")
        for rank in [0, 1, 3] {
            let line = try killed[rank].expect("ERROR")
            #expect(line.contains("peerDead") && line.contains("peer rank 2"), "rank \(rank): \(line)")
        }
        // Killed mid-call, around a ring of 5: ranks 0 and 2 see rank 1 die; rank 2 tells rank 3,
        // which reads the notice where a header belongs, having just sent its own header to
        // rank 4; it must pad each stripe of that frame (not the whole payload on the first
        // connection), so that rank 4 reads the notice too and names rank 1.
        let midCall = try runCollectiveWorkers(
            world: 5,
            [
                "transport": "tcp", "counts": "4194304", "dtypes": "float32", "repeat": "100000", "timeout": "10", "connections": "2",
                "algo": "ring",
            ])
        defer { for worker in midCall { worker.sigkill() } }
        for worker in midCall { try worker.expect("LOOPING") }
        Thread.sleep(forTimeInterval: 0.5)
        midCall[1].sigkill()
        for rank in [0, 2, 3, 4] {
            let line = try midCall[rank].expect("ERROR")
            #expect(line.contains("(rank \(rank), peer rank 1"), "rank \(rank): \(line)")
        }
        let answers = try stopRankOneMidJob(
            world: 3, ["transport": "tcp", "counts": "4194304", "dtypes": "float32", "timeout": "3", "connections": "2"])
        for (rank, line, waited) in answers {
            #expect(waited < 3 + 3, "rank \(rank) answered after \(waited) s")
            #expect(line.contains("rank 1"), "rank \(rank): \(line)")
        }
    }

    @Test("TCP: a connection count set in code outside 1…16 is refused when the mesh is made, naming it", arguments: ["0", "-1", "17"])
    func connectionCountOutOfRange(connections: String) throws {
        let workers = try runCollectiveWorkers(world: 2, ["transport": "tcp", "timeout": "3", "connections": connections])
        for (rank, worker) in workers.enumerated() {
            let line = try worker.expect("ERROR")
            #expect(line.contains("\(connections) connections per peer: from 1 to 16"), "rank \(rank): \(line)")
        }
    }

    @Test("TCP: ranks that disagree on the connections per peer fail naming CCL_TCP_CONNECTIONS")
    func connectionCountMismatch() throws {
        let workers = try runCollectiveWorkers(world: 2, ["transport": "tcp", "timeout": "3"]) { rank in
            ["connections": rank == 1 ? "2" : "1"]
        }
        for (rank, worker) in workers.enumerated() {
            let line = try worker.expect("ERROR")
            #expect(line.contains("CCL_TCP_CONNECTIONS"), "rank \(rank): \(line)")
        }
    }

    @Test(
        "TCP with streamed frames (16 MiB calls on the send thread, received on the caller's thread or another): a rank stopped mid-stream is named by the others in time",
        arguments: ["0", "1"])
    func stoppedRankMidStream(receiveThread: String) throws {
        let answers = try stopRankOneMidJob(
            world: 3,
            [
                "transport": "tcp", "counts": "4194304", "dtypes": "float32", "timeout": "3", "sendthread": "1", "stream": "1",
                "receivethread": receiveThread,
            ])
        for (rank, line, waited) in answers {
            #expect(waited < 3 + 3, "rank \(rank) answered after \(waited) s")
            #expect(line.contains("rank 1"), "rank \(rank): \(line)")
        }
    }

    @Test(
        "TCP: with 4 ranks and 64 MiB, every survivor of a killed rank names it, not a rank that only gave up (halving-doubling with and without the send thread, the streamed ring, received on the caller's thread or another)",
        arguments: [("0", "rhd"), ("1", "rhd"), ("1", "ring"), ("2", "ring")])
    func killedRankNamedByEverySurvivor(sendThread: String, algorithm: String) throws {
        let workers = try runCollectiveWorkers(
            world: 4,
            [
                "transport": "tcp", "counts": "16777216", "dtypes": "float32", "killself": "2", "timeout": "10",
                "sendthread": sendThread == "0" ? "0" : "1", "stream": sendThread == "0" ? "0" : "1",
                "receivethread": sendThread == "2" ? "1" : "0", "algo": algorithm,
            ])
        try workers[2].expect("KILLING")
        for rank in [0, 1, 3] {
            let line = try workers[rank].expect("ERROR")
            #expect(line.contains("peerDead") && line.contains("peer rank 2"), "rank \(rank): \(line)")
        }
    }

    @Test("a rank killed mid-collective makes the others fail naming it", arguments: ["shm", "tcp"])
    func killedRank(transport: String) throws {
        let start = Date()
        let workers = try runCollectiveWorkers(
            world: 3, ["transport": transport, "counts": "7,1023", "dtypes": "float32", "killself": "2", "timeout": "10"])
        try workers[2].expect("KILLING")
        for worker in workers.prefix(2) {
            let line = try worker.expect("ERROR")
            #expect(line.contains("peerDead") && line.contains("rank 2"), "\(line)")
        }
        #expect(Date().timeIntervalSince(start) < 20, "the others must fail within twice the timeout")
    }
}
