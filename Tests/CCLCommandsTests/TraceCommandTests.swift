import CCL
import CCLTestSupport
import Foundation
import Testing

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
}
