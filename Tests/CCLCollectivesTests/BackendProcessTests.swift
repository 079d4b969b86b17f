import CCL
import CCLTestSupport
import Foundation
import Testing

/// The backend choice in real processes: two node identities on loopback, so shared memory alone
/// cannot serve the group.
@Suite(.serialized) struct BackendProcessTests {
    @Test("strict mode with an unavailable backend fails on every rank within 1 s, with the reason")
    func strictUnavailable() throws {
        let workers = try runCollectiveWorkers(
            world: 2, ["backend": "shm", "strict": "1", "timeout": "60", "counts": "7"], nodes: ["A", "B"])
        for worker in workers {
            // runCollectiveWorkers read up to the line after CHOOSING.
            let line = worker.lines.first { $0.hasPrefix("NO COMMUNICATOR after ") } ?? ""
            let milliseconds = Int(line.split(separator: " ").dropLast().last ?? "") ?? .max
            #expect(milliseconds < 1000, "\(line)")
            let error = try worker.expect("ERROR")
            #expect(
                error.contains(
                    "choose a backend for group world: CCL_BACKEND=shm in strict mode, but no requested backend can run: shm: the group spans 2 nodes; shared memory works only inside one node"
                ), "\(error)")
            #expect(worker.exitStatus() != 0)
        }
    }

    @Test("without strict mode the same request falls back to the default and runs")
    func fallback() throws {
        let workers = try runCollectiveWorkers(
            world: 2, ["backend": "shm", "counts": "0,7", "dtypes": "float32,int64"], nodes: ["A", "B"])
        for worker in workers {
            #expect(worker.lines.contains("TRANSPORT tcp BACKEND tcp"), "\(worker.lines)")
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }

    @Test("a requested backend is used: tcp on one node")
    func requested() throws {
        let workers = try runCollectiveWorkers(world: 2, ["backend": "tcp", "counts": "7", "dtypes": "float32"])
        for worker in workers {
            #expect(worker.lines.contains("TRANSPORT tcp BACKEND tcp"), "\(worker.lines)")
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }
}
