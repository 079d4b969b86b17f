import CCL
import CCLCollectiveAPI
import CCLTestSupport
import Foundation
import Testing

@testable import CCLTrace

/// `ccl trace --local` against a real job kept hung on purpose: two shared-memory ranks, rank 1
/// asleep before its first call while rank 0 waits inside it.
@Suite struct TraceCommandTests {
    @Test("ccl trace --local: the verdict names the rank that never entered the call the other waits in")
    func local() throws {
        let server = try TCPStoreServer(token: "trace")
        let workers = try (0..<2).map { rank in
            try Worker(
                "collectives",
                [
                    "port": "\(server.port)", "token": "trace", "rank": "\(rank)", "world": "2", "transport": "shm", "counts": "7",
                    "dtypes": "float32", "stall": "1", "timeout": "60",
                ])
        }
        defer { for worker in workers { worker.sigkill() } }
        try workers[1].expect("STALLING")
        try workers[0].expect("TRANSPORT")
        let pids = workers.map { "\"pid\":\($0.pid)" }
        // Rank 0 is in its first all-reduce within moments; ask until the trace shows it.
        var line: Substring?
        for _ in 0..<50 {
            let (status, output, _) = try runCCL(["trace", "--local", "--json"])
            #expect(status == 0)
            line = output.split(separator: "\n").first { text in pids.allSatisfy { text.contains($0) } }
            if line?.contains("never_entered\":[1]") == true { break }
            usleep(100_000)
        }
        let verdict = try #require(line)
        #expect(verdict.contains("\"never_entered\":[1]"), "\(verdict)")
        #expect(verdict.contains("\"inside\":[0]"), "\(verdict)")
        #expect(
            verdict.contains(
                "allReduce(sum) float32 × 7 #1 on group world [0 1]: rank 1 never entered it (it has recorded no collective); rank 0 waiting since"
            ),
            "\(verdict)")
        let (_, text, _) = try runCCL(["trace", "--local"])
        #expect(text.contains("verdict: allReduce(sum) float32 × 7 #1 on group world [0 1]: rank 1 never entered it"), "\(text)")
        withExtendedLifetime(server) {}
    }

    /// Rank 0 on this node, rank 1 "on another": its own /dev/shm (no recorder of it is visible
    /// here) and another node id, so the two meet over loopback TCP; rank 1 sleeps before its
    /// first call.
    static func twoNodes(timeout: Int, _ extra: [String: String] = ["stall": "1"]) throws -> (workers: [Worker], server: TCPStoreServer) {
        let server = try TCPStoreServer(token: "trace")
        let workers = try (0..<2).map { rank in
            try Worker(
                "collectives",
                [
                    "port": "\(server.port)", "token": "trace", "rank": "\(rank)", "world": "2", "node": "node\(rank)", "counts": "7",
                    "dtypes": "float32", "timeout": "\(timeout)",
                ].merging(extra) { $1 }, privateSharedMemory: rank == 1)
        }
        return (workers, server)
    }

    @Test(
        "a call that times out names the rank on another node that never entered it, from its report through the store",
        .enabled(if: DoctorCommandTests.canUnshare, "needs root and unshare -m to give a rank a /dev/shm of its own"))
    func timeoutAcrossNodes() throws {
        let (workers, server) = try Self.twoNodes(timeout: 3)
        defer { for worker in workers { worker.sigkill() } }
        try workers[1].expect("STALLING")
        try workers[0].expect("TRANSPORT")
        let error = try workers[0].expect("ERROR")
        #expect(error.contains("ERROR timeout"), "\(error)")
        #expect(
            error.contains(
                "flight recorders of the group's ranks: allReduce(sum) float32 × 7 #1 on group world [0 1]: rank 1 never entered it (it has recorded no collective); rank 0 waiting since"
            ), "\(error)")
        withExtendedLifetime(server) {}
    }

    @Test(
        "a process-group barrier that times out says what the rank it waited for is doing, on another node",
        .enabled(if: DoctorCommandTests.canUnshare, "needs root and unshare -m to give a rank a /dev/shm of its own"))
    func barrierAcrossNodes() throws {
        let (workers, server) = try Self.twoNodes(timeout: 8, ["storebarrier": "0", "barriertimeout": "3"])
        defer { for worker in workers { worker.sigkill() } }
        try workers[0].expect("STOREBARRIER")
        let error = try workers[0].expect("ERROR")
        #expect(
            error.contains("rank 1 never arrived; flight recorders: rank 1 is inside allReduce(sum) float32 × 7 #1 on group world since"),
            "\(error)")
        withExtendedLifetime(server) {}
    }

    @Test(
        "a process-group barrier that times out says what the ranks it waited for are doing, on this node")
    func barrierOnOneNode() throws {
        let server = try TCPStoreServer(token: "trace")
        let workers = try (0..<3).map { rank in
            try Worker(
                "collectives",
                [
                    "port": "\(server.port)", "token": "trace", "rank": "\(rank)", "world": "3", "transport": "shm", "counts": "7",
                    "dtypes": "float32", "storebarrier": "0", "barriertimeout": "3", "timeout": "8",
                ])
        }
        defer { for worker in workers { worker.sigkill() } }
        let error = try workers[0].expect("ERROR")
        #expect(
            error.contains(
                "ranks 1 and 2 never arrived; flight recorders: rank 1 is inside allReduce(sum) float32 × 7 #1 on group world since"),
            "\(error)")
        #expect(error.contains("; rank 2 is inside allReduce(sum) float32 × 7 #1 on group world since"), "\(error)")
        withExtendedLifetime(server) {}
    }

    @Test(
        "when every rank of a group times out at once, one asks the other nodes and the others take its verdict",
        .enabled(if: DoctorCommandTests.canUnshare, "needs root and unshare -m to give ranks a /dev/shm of their own"))
    func oneRequestPerStuckCall() throws {
        let server = try TCPStoreServer(token: "trace")
        // Ranks 0 and 1 here; 2 and 3 each "on a node" of its own (their own /dev/shm); rank 3
        // sleeps before its first call.
        let workers = try (0..<4).map { rank in
            try Worker(
                "collectives",
                [
                    "port": "\(server.port)", "token": "trace", "rank": "\(rank)", "world": "4", "node": rank < 2 ? "here" : "node\(rank)",
                    "transport": "tcp", "counts": "7", "dtypes": "float32", "stall": "3", "timeout": "3",
                ], privateSharedMemory: rank >= 2)
        }
        defer { for worker in workers { worker.sigkill() } }
        // Each rank fails by its own timeout or by another's notice (peerDead); a rank that timed
        // out asks, or takes the verdict of the one asking.
        let errors = try (0..<3).map { try workers[$0].expect("ERROR") }
        for (rank, error) in errors.enumerated() { #expect(error.contains("rank 3"), "rank \(rank): \(error)") }
        let whole = errors.filter {
            $0.contains(
                "flight recorders of the group's ranks: allReduce(sum) float32 × 7 #1 on group world [0 1 2 3]: rank 3 never entered it (it has recorded no collective)"
            )
        }
        #expect(!whole.isEmpty, "\(errors)")
        let client = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "trace", timeout: .seconds(5))
        #expect(try client.get("ccl-trace/requests") == Array("1".utf8), "one request for the stuck call")
    }

    @Test(
        "ccl trace --addr asks every process of a hung job through its store, a rank on another node included",
        .enabled(if: DoctorCommandTests.canUnshare, "needs root and unshare -m to give a rank a /dev/shm of its own"))
    func throughTheStore() throws {
        let (workers, server) = try Self.twoNodes(timeout: 60)
        defer { for worker in workers { worker.sigkill() } }
        try workers[1].expect("STALLING")
        try workers[0].expect("TRANSPORT")
        let local = try runCCL(["trace", "--local", "--json"])
        #expect(!local.output.contains("\"pid\":\(workers[1].pid)"), "rank 1's recorder is not visible here: \(local.output)")
        var line: Substring?
        for _ in 0..<50 {
            let (status, output, _) = try runCCL(
                ["trace", "--addr", "127.0.0.1:\(server.port)", "--json"], environment: ["CCL_TOKEN": "trace"])
            #expect(status == 0)
            line = output.split(separator: "\n").first { $0.contains("\"group\":\"world\"") }
            if line?.contains("never_entered\":[1]") == true { break }
            usleep(100_000)
        }
        let verdict = try #require(line)
        #expect(verdict.contains("\"never_entered\":[1]"), "\(verdict)")
        #expect(verdict.contains("\"inside\":[0]"), "\(verdict)")
        for worker in workers { #expect(verdict.contains("\"pid\":\(worker.pid)"), "\(verdict)") }
        let (_, text, _) = try runCCL(["trace", "--addr", "127.0.0.1:\(server.port)"], environment: ["CCL_TOKEN": "trace"])
        #expect(text.contains("verdict: allReduce(sum) float32 × 7 #1 on group world [0 1]: rank 1 never entered it"), "\(text)")
        let (refused, _, message) = try runCCL(["trace", "--addr", "127.0.0.1:\(server.port)"], environment: ["CCL_TOKEN": "wrong"])
        #expect(refused != 0 && message.contains("token"), "\(message)")
        withExtendedLifetime(server) {}
    }

    /// Two `collectives` workers of a job (a store here), with `extra` arguments and environment.
    static func job(_ extra: [String: String], environment: [String: String] = [:]) throws -> (workers: [Worker], server: TCPStoreServer) {
        let server = try TCPStoreServer(token: "trace")
        let workers = try (0..<2).map { rank in
            try Worker(
                "collectives",
                [
                    "port": "\(server.port)", "token": "trace", "rank": "\(rank)", "world": "2", "transport": "shm", "counts": "7",
                    "dtypes": "float32",
                ].merging(extra) { $1 }, environment: environment)
        }
        return (workers, server)
    }

    /// The flight-recorder segments of `pid` in /dev/shm.
    static func segments(of pid: Int32) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        return names.filter { $0.hasPrefix("ccl-t-") && $0.split(separator: "-").dropFirst(3).first == Substring("\(pid)") }
    }

    @Test("a rank's recorder is removed when its job ends normally, and CCL_TRACE_BUFFER=0 makes none")
    func lifetime() throws {
        let (finished, server) = try Self.job([:])
        let pids = finished.map(\.pid)
        for worker in finished {
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0)
        }
        for pid in pids { #expect(Self.segments(of: pid).isEmpty, "\(Self.segments(of: pid))") }
        let (quiet, quietServer) = try Self.job(["stall": "1", "timeout": "60"], environment: ["CCL_TRACE_BUFFER": "0"])
        defer { for worker in quiet { worker.sigkill() } }
        try quiet[1].expect("STALLING")
        try quiet[0].expect("TRANSPORT")
        usleep(300_000)
        for worker in quiet { #expect(Self.segments(of: worker.pid).isEmpty, "\(Self.segments(of: worker.pid))") }
        withExtendedLifetime((server, quietServer)) {}
    }
}

/// The broadcast queue's writer, blocked by a reader that does not read, says what that reader's
/// rank is doing (its flight recorder: inside a collective of another group).
@Suite struct QueueStallActivityTests {
    @Test("a writer that times out on a full ring names what the lagging reader's rank is doing")
    func laggingReader() throws {
        RankActivity.install(TraceExchange.activity)
        // Global rank 11 is the queue's reader; its recorder says it is inside an all-reduce of tp0.
        let recorder = try FlightRecorder(
            group: "tp0", round: "r", rank: 11, groupRank: 1, globalRanks: [10, 11], backend: "shm", capacity: 8)
        _ = recorder.begin(CollectiveCall(.allReduce(.sum), dtype: .float32, count: 7))
        let store = InMemoryStore()
        var options = QueueOptions()
        options.chunkBytes = 64
        options.chunkCount = 2
        let queueOptions = options
        let ends = try [0, 1].map { rank in
            Thread.detachNewThreadWithResult {
                let group = try StatelessProcessGroup(rank: rank, worldSize: 2, store: store, name: "q", globalRanks: [10, 11])
                return try MessageQueueEnd.create(from: group, writer: 0, nodes: NodeLayout(nodeOfRank: ["n", "n"]), options: queueOptions)
            }
        }.map { try $0.get() }
        guard case .writer(let writer) = ends[0] else { throw CCLError(.invalidArgument, operation: "test", "rank 0 is not the writer") }
        let error = #expect(throws: CCLError.self) {
            for _ in 0..<8 { try writer.enqueue([UInt8](repeating: 7, count: 64), timeout: .seconds(1)) }
        }
        #expect(
            error?.message.contains("flight recorders: rank 11 is inside allReduce(sum) float32 × 7 #1 on group tp0 since") == true,
            "\(String(describing: error))")
        withExtendedLifetime((ends, recorder)) {}
    }
}

extension Thread {
    /// Runs `body` on a new thread; `get()` waits for its result.
    static func detachNewThreadWithResult<T>(_ body: @escaping @Sendable () throws -> T) -> ThreadResult<T> {
        let result = ThreadResult<T>()
        Thread.detachNewThread { result.set(Result { try body() }) }
        return result
    }
}

final class ThreadResult<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: Result<T, any Error>?
    func set(_ value: Result<T, any Error>) {
        self.value = value
        done.signal()
    }
    func get() throws -> T {
        done.wait()
        guard let value else { throw CCLError(.closed, operation: "thread result", "no result") }
        return try value.get()
    }
}
