import CCLTestSupport
import Foundation
import Testing

/// `ccl demo` and `ccl bench` (collectives and queue) run as a user runs them: the real executable, real processes.
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

    @Test("ccl bench allreduce --json over shared memory names the algorithm each size ran and the cost model's inputs")
    func benchSharedMemoryJSON() throws {
        let result = try runCCL(
            ["bench", "allreduce", "--nproc", "2", "--transport", "shm", "--sizes", "8,256K", "--target-ms", "10", "--json"],
            environment: ["CCL_SHM_COST": "100000,10,10"])
        #expect(result.status == 0, "\(result.output)")
        let objects = try result.output.split(separator: "\n").filter { $0.hasPrefix("{") }.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }
        #expect(objects.count == 2, "\(result.output)")
        // Sync points of 100 µs: one-shot at every size for 2 ranks (two-shot never pays).
        for object in objects {
            #expect(object["shm_algorithm"] as? String == "oneshot", "\(object)")
            #expect((object["shm_sync_ns"] as? NSNumber)?.doubleValue == 100_000, "\(object)")
            #expect(object["wrong"] as? Int == 0)
        }
        let forced = try runCCL(
            ["bench", "allreduce", "--nproc", "2", "--transport", "shm", "--sizes", "8", "--target-ms", "10", "--json"],
            environment: ["CCL_ALGO": "twoshot"])
        #expect(forced.output.contains("\"shm_algorithm\":\"twoshot\""), "\(forced.output)")
    }

    @Test("ccl bench queue --json: a row per reader count and size, every message verified, idle CPU and wake-up measured")
    func queueBenchJSON() throws {
        let result = try runCCL([
            "bench", "queue", "--readers", "1,2", "--sizes", "64,70K", "--chunk", "64K", "--scale", "0.01", "--idle-seconds", "0.05",
            "--json",
        ])
        #expect(result.status == 0, "\(result.output) \(result.error)")
        let objects = try result.output.split(separator: "\n").filter { $0.hasPrefix("{") }.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }
        #expect(objects.count == 4, "\(result.output)")
        for object in objects {
            for key in [
                "readers", "size", "p50_ns", "p99_ns", "msgs_per_s", "gb_per_s", "idle_cpu_pct", "wake_p50_ns", "wake_floor_p50_ns",
                "wrong",
            ] {
                #expect(object[key] != nil, "missing \(key) in \(object)")
            }
            #expect(object["wrong"] as? Int == 0, "\(object)")
            #expect((object["p50_ns"] as? Int ?? 0) > 0 && (object["wake_p50_ns"] as? Int ?? 0) > 0, "\(object)")
            #expect((object["wake_floor_p50_ns"] as? Int ?? 0) > 0, "\(object)")
        }
        #expect(Set(objects.compactMap { $0["readers"] as? Int }) == [1, 2])
    }
}
