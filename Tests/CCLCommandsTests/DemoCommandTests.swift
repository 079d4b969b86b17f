import CCLTestSupport
import Foundation
import Testing

/// `ccl demo` and `ccl bench <collective>` run as a user runs them: the real executable, real ranks.
@Suite(.serialized) struct DemoCommandTests {
    @Test("ccl demo: tp 2 × pp 2 matches the single-process model on every step", arguments: ["auto", "tcp"])
    func demo(transport: String) throws {
        let result = try runCCL(["demo", "--steps", "4", "--transport", transport])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("all 4 steps match the single-process model"), "\(result.output)")
        #expect(result.output.contains("broadcast") && result.output.contains("all-reduce") && result.output.contains("send/recv"))
    }

    @Test("ccl demo fails when a step's output is wrong")
    func demoMismatch() throws {
        let result = try runCCL(["demo", "--steps", "3", "--corrupt-step", "1"])
        #expect(result.status != 0)
        #expect(result.output.contains("MISMATCH: 1 of 3 steps differ"), "\(result.output) \(result.error)")
    }

    @Test("ccl bench allreduce prints the nccl-tests table with no wrong results", arguments: ["shm", "tcp"])
    func benchTable(transport: String) throws {
        let result = try runCCL(["bench", "allreduce", "--nproc", "3", "--transport", transport, "--sizes", "8,4K", "--target-ms", "20"])
        #expect(result.status == 0, "\(result.output)")
        let rows = result.output.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("float32") }
        #expect(rows.count == 2, "\(result.output)")
        for row in rows { #expect(row.split(separator: " ").dropLast(1).last == "0", "wrong count must be 0: \(row)") }
    }

    @Test(
        "ccl bench --json: one object per line with the documented keys",
        arguments: ["allgather", "reducescatter", "broadcast", "sendrecv"])
    func benchJSON(op: String) throws {
        let result = try runCCL(["bench", op, "--nproc", "2", "--dtype", "bf16", "--sizes", "1K", "--target-ms", "10", "--json"])
        #expect(result.status == 0, "\(result.output)")
        let line = try #require(result.output.split(separator: "\n").first { $0.hasPrefix("{") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for key in ["op", "nproc", "transport", "dtype", "size", "time_us", "algbw_gbps", "busbw_gbps", "wrong"] {
            #expect(object[key] != nil, "missing \(key) in \(line)")
        }
        #expect(object["wrong"] as? Int == 0)
        #expect(object["op"] as? String == op)
    }
}
