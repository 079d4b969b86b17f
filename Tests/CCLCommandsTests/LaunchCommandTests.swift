import Foundation
import Testing

/// `ccl launch` running `CCLTestWorker rank` processes that meet through the launcher's store.
@Suite(.serialized) struct LaunchCommandTests {
    static var worker: String {
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        return me.deletingLastPathComponent().appendingPathComponent("CCLTestWorker").path
    }

    @Test("3 ranks get their environment, meet through the store, and the launch exits 0")
    func success() throws {
        let result = try runCCL(["launch", "--nproc-per-node", "3", "--", Self.worker, "rank"], environment: ["CCL_TOKEN": ""])
        #expect(result.status == 0, "\(result.error)")
        for rank in 0..<3 {
            #expect(result.output.contains("[rank \(rank)] RANK \(rank) of 3 local \(rank)/3 saw [0, 1, 2]"), "\(result.output)")
            #expect(result.output.contains("[rank \(rank)] BYE"))
        }
    }

    @Test("a rank that exits non-zero stops the others within 2 s; the summary names it and its last lines")
    func failure() throws {
        let start = Date()
        let result = try runCCL(["launch", "--nproc-per-node", "3", "--", Self.worker, "rank", "fail=1", "code=3"])
        #expect(result.status != 0)
        #expect(result.error.contains("rank 1 exited with code 3"), "\(result.error)")
        #expect(result.error.contains("last lines of rank 1:"))
        #expect(result.error.contains("failing on purpose"))
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(!result.output.contains("BYE"))
    }

    @Test("a rank killed by a signal is reported as such")
    func killed() throws {
        let result = try runCCL(["launch", "--nproc-per-node", "2", "--", Self.worker, "rank", "killself=0"])
        #expect(result.status != 0)
        #expect(result.error.contains("rank 0 was killed by signal 9"), "\(result.error)")
    }

    @Test("bad arguments are refused with the reason")
    func badArguments() throws {
        let noProgram = try runCCL(["launch", "--nproc-per-node", "2"])
        #expect(noProgram.status != 0)
        #expect(noProgram.error.contains("give the program after --"))
        let badNode = try runCCL([
            "launch", "--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "2", "--master-port", "29500", "--", "true",
        ])
        #expect(badNode.error.contains("--node-rank 2 must be in 0..<--nnodes 2"))
    }
}
