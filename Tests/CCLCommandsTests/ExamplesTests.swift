import CCLSystem
import CCLTestSupport
import Foundation
import Testing

/// The programs in Examples/ (which the README quotes) run as a user would run them.
@Suite(.serialized) struct ExamplesTests {
    static func example(_ name: String) -> String {
        Worker.executable.deletingLastPathComponent().appendingPathComponent(name).path
    }

    @Test("GroupExample under ccl launch: 4 ranks meet and exchange values")
    func group() throws {
        let result = try runCCL(["launch", "--nproc-per-node", "4", "--", Self.example("GroupExample")])
        #expect(result.status == 0, "\(result.error)")
        for rank in 0..<4 {
            #expect(
                result.output.contains(
                    "rank \(rank) of 4: 1 node(s), local rank \(rank), peers [40000, 40001, 40002, 40003], [\"model\": \"llama\"]"),
                "\(result.output)")
        }
    }

    @Test("TensorParallelExample under ccl launch: TP all-reduce and broadcast, and a forced backend")
    func tensorParallel() throws {
        let result = try runCCL(["launch", "--nproc-per-node", "4", "--", Self.example("TensorParallelExample")])
        #expect(result.status == 0, "\(result.error)")
        #expect(
            result.output.contains("rank 0: tp group [0, 1] over shm: sum 3.0 (expected 3.0), weights[0] 16256; world over tcp"),
            "\(result.output)")
        #expect(
            result.output.contains("rank 3: tp group [2, 3] over shm: sum 7.0 (expected 7.0), weights[0] 16256; world over tcp"),
            "\(result.output)")
        #expect(result.output.contains("tcp (requested by TensorParallelExample --backend=tcp)"), "\(result.output)")
    }

    @Test("QueueExample: a writer, a reader on its node (shared memory) and one on another node (TCP)")
    func queue() throws {
        let port = try { () throws -> Int in try RawSocket.listen().1 }()  // free now; rank 0 serves the store on it
        let ranks = try (0..<3).map { rank in
            try ChildProcess(
                executable: URL(fileURLWithPath: Self.example("QueueExample")), arguments: [],
                environment: [
                    "RANK": "\(rank)", "WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "\(port)",
                    "CCL_TOKEN": "example", "CCL_NODE_ID": rank == 2 ? "node-b" : "node-a",
                ])
        }
        var lines: [String] = []
        for rank in ranks {
            while let line = rank.readLine() { lines.append(line) }
            #expect(rank.waitForExit() == 0, "\(rank.lines)")
        }
        #expect(lines.contains("rank 1 read over shared memory: [1, 2, 3], step 7 tokens [5, 6], 3145730 bytes intact"), "\(lines)")
        #expect(lines.contains("rank 2 read over TCP: [1, 2, 3], step 7 tokens [5, 6], 3145730 bytes intact"), "\(lines)")
    }

    @Test("TopologyExample prints vLLM's groups")
    func topology() throws {
        let process = try ChildProcess(executable: URL(fileURLWithPath: Self.example("TopologyExample")), arguments: [], environment: [:])
        var lines: [String] = []
        while let line = process.readLine() { lines.append(line) }
        #expect(process.waitForExit() == 0)
        #expect(lines.first == "[[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14], [11, 15]]", "\(lines)")
        #expect(lines.contains("tp [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]"), "\(lines)")
    }
}
