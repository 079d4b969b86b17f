import CCL
import Foundation
import Testing

/// `ccl doctor` on this machine, with a store that refuses the token, a missing MPI, and a
/// /dev/shm too small (a private mount namespace).
@Suite struct DoctorCommandTests {
    /// The JSON rows by check name.
    static func rows(_ output: String) throws -> [String: [String: String]] {
        var rows: [String: [String: String]] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("{") {
            let row = try JSONDecoder().decode([String: String].self, from: Data(line.utf8))
            rows[row["check"] ?? "?"] = row
        }
        return rows
    }

    @Test("every row is there; nothing configured is a warning, not a failure")
    func plain() throws {
        let (status, output, _) = try runCCL(["doctor", "--json"])
        let rows = try Self.rows(output)
        #expect(status == 0, "\(output)")
        #expect(
            Set(rows.keys) == ["shared memory (/dev/shm)", "CPUs", "wake-up floor", "host", "store", "token", "MPI", "CUDA and NCCL"],
            "\(output)")
        #expect(rows["shared memory (/dev/shm)"]?["status"] == "ok", "\(output)")
        #expect(rows["MPI"]?["status"] == "ok" && rows["MPI"]?["found"]?.contains("Open MPI") == true, "\(output)")
        #expect(rows["store"]?["status"] == "warn", "\(output)")
        let (_, table, _) = try runCCL(["doctor"])
        #expect(table.contains("ok   shared memory (/dev/shm)"), "\(table)")
    }

    @Test("a store that refuses the token fails the store row, with the fix, and the exit status")
    func wrongToken() throws {
        let server = try TCPStoreServer(token: "right")
        let (status, output, _) = try runCCL(
            ["doctor", "--json"], environment: ["MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "\(server.port)", "CCL_TOKEN": "wrong"])
        let store = try Self.rows(output)["store"]
        #expect(status == 1, "\(output)")
        #expect(store?["status"] == "fail", "\(output)")
        #expect(store?["fix"]?.contains("same CCL_TOKEN") == true, "\(output)")
        let (good, right, _) = try runCCL(
            ["doctor", "--json"], environment: ["MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "\(server.port)", "CCL_TOKEN": "right"])
        let rightRows = try Self.rows(right)
        #expect(good == 0 && rightRows["store"]?["status"] == "ok", "\(right)")
        withExtendedLifetime(server) {}
    }

    @Test("MPI missing is a warning outside mpirun and a failure under it, naming the path")
    func missingMPI() throws {
        let missing = ["CCL_MPI_SO_PATH": "/nonexistent/libmpi.so.40"]
        let (status, output, _) = try runCCL(["doctor", "--json"], environment: missing)
        #expect(status == 0, "\(output)")
        let mpiRow = try Self.rows(output)["MPI"]
        #expect(mpiRow?["status"] == "warn", "\(output)")
        #expect(mpiRow?["found"]?.contains("/nonexistent/libmpi.so.40") == true, "\(output)")
        let (failed, underMPI, _) = try runCCL(
            ["doctor", "--json"], environment: missing.merging(["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"]) { $1 })
        let failedRow = try Self.rows(underMPI)["MPI"]
        #expect(failed == 1 && failedRow?["status"] == "fail", "\(underMPI)")
    }

    @Test(
        "doctor --nproc and trace --last out of range are refused naming the option",
        arguments: ["0", "-1", "4097", "9223372036854775807", "NaN", ""])
    func optionBounds(value: String) throws {
        let (status, _, error) = try runCCL(["doctor", "--nproc", value])
        #expect(status != 0 && error.contains("--nproc"), "\(error)")
        if value != "4097" {
            let (traced, _, traceError) = try runCCL(["trace", "--local", "--last", value])
            #expect(traced != 0 && traceError.contains("--last"), "\(traceError)")
        }
    }

    @Test(
        "doctor --timeout (1…3600 s) and trace --wait (0…3600 s) out of range are refused naming the option",
        arguments: ["0", "-1", "3601", "9223372036854775807", "NaN", "inf", "", String(repeating: "9", count: 10_000)])
    func secondsBounds(value: String) throws {
        let (status, _, error) = try runCCL(["doctor", "--timeout", value])
        #expect(status != 0 && error.contains("--timeout"), "\(error)")
        guard value != "0" else { return }  // --wait 0: ask once, wait for nothing
        let (traced, _, traceError) = try runCCL(["trace", "--addr", "127.0.0.1:1", "--wait", value])
        #expect(traced != 0 && traceError.contains("--wait"), "\(traceError)")
    }

    /// Whether this process may make a private mount namespace (root, `unshare -m`).
    static let canUnshare: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["-m", "true"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    @Test(
        "a /dev/shm too small for the local ranks fails with the sizes and the fix",
        .enabled(if: canUnshare, "needs root and unshare -m to mount a tiny /dev/shm in a private mount namespace"))
    func tinySharedMemory() throws {
        let me = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let executable = me.deletingLastPathComponent().appendingPathComponent("ccl").path
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = [
            "-m", "sh", "-c", "mount -t tmpfs -o size=256k tmpfs /dev/shm && exec \"$0\" doctor --nproc 4 --json", executable,
        ]
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let row = try Self.rows(text)["shared memory (/dev/shm)"]
        #expect(process.terminationStatus == 1, "\(text)")
        #expect(row?["status"] == "fail", "\(text)")
        #expect(row?["found"]?.contains("4 local ranks need ") == true, "\(text)")
        #expect(row?["fix"]?.contains("--shm-size") == true, "\(text)")
    }
}
