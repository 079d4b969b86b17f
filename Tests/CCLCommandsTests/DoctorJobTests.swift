import CCL
import CCLTestSupport
import Foundation
import Testing

@testable import CCLCommands

/// `ccl doctor` run as every rank of a job: under `ccl launch`, under torchrun's variables with a
/// setting that differs by rank, with a rank that cannot join, and across two network-namespace
/// hosts; and the rank → GPU analysis on reports (no GPU here).
@Suite struct DoctorJobTests {
    static var ccl: String {
        let me = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return me.deletingLastPathComponent().appendingPathComponent("ccl").path
    }

    /// JSON rows by check, from output whose lines may carry a launcher's "[rank 0] " prefix.
    static func rows(_ output: String) throws -> [String: [String: String]] {
        try DoctorCommandTests.rows(
            output.split(separator: "\n").map { line in line.firstIndex(of: "{").map { String(line[$0...]) } ?? "" }.joined(separator: "\n")
        )
    }

    /// `ccl doctor --json` as `rank` of `world` under torchrun's variables (rank 0 serves the
    /// store on `port`), in network namespace `namespace` when given.
    static func rank(
        _ rank: Int, world: Int, port: Int, master: String = "127.0.0.1", extra: [String: String] = [:], namespace: String? = nil,
        arguments: [String] = []
    ) throws -> (Process, Pipe) {
        let process = Process()
        let command = [ccl, "doctor", "--json"] + arguments
        if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", namespace] + command
        } else {
            process.executableURL = URL(fileURLWithPath: ccl)
            process.arguments = Array(command.dropFirst())
        }
        process.environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "RANK": "\(rank)", "WORLD_SIZE": "\(world)",
            "MASTER_ADDR": master, "MASTER_PORT": "\(port)", "CCL_TOKEN": "doctor", "LOCAL_RANK": "\(rank)", "LOCAL_WORLD_SIZE": "\(world)",
        ].merging(extra) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, out)
    }

    static func finish(_ started: (Process, Pipe)) -> (status: Int32, output: String) {
        let output = String(decoding: started.1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        started.0.waitUntilExit()
        return (started.0.terminationStatus, output)
    }

    @Test("under ccl launch, rank 0 prints one table for the whole job")
    func underLaunch() throws {
        let (status, output, _) = try runCCL(["launch", "--nproc-per-node", "2", "--", Self.ccl, "doctor", "--json"])
        #expect(status == 0, "\(output)")
        let rows = try Self.rows(output)
        #expect(rows["job"]?["found"]?.hasPrefix("2 ranks on 1 node (CCL): ") == true, "\(output)")
        #expect(rows["swift-ccl version"]?["status"] == "ok", "\(output)")
        #expect(rows["CCL_* settings"]?["status"] == "ok", "\(output)")
        #expect(rows["clocks"]?["found"] == "one node: one clock", "\(output)")
        #expect(rows["rank → GPU"] != nil && rows["shared memory (/dev/shm)"]?["status"] == "ok", "\(output)")
        #expect(output.components(separatedBy: "\"check\":\"job\"").count == 2, "one table, from rank 0: \(output)")
    }

    @Test("a setting that differs between ranks is named with the ranks of each value; the token only as a hash")
    func differingSettings() throws {
        let port = try { () throws -> Int in try RawSocket.listen().1 }()  // free now; rank 0 binds it
        let ranks = try (0..<2).map { rank in
            try Self.rank(rank, world: 2, port: port, extra: rank == 1 ? ["CCL_TRACE_BUFFER": "16"] : [:])
        }
        let results = ranks.map(Self.finish)
        #expect(results[1].output.isEmpty, "only rank 0 prints: \(results[1].output)")
        let settings = try Self.rows(results[0].output)["CCL_* settings"]
        #expect(settings?["status"] == "warn", "\(results[0].output)")
        #expect(settings?["found"] == "CCL_TRACE_BUFFER: unset on rank 0, 16 on rank 1", "\(results[0].output)")
        #expect(!results[0].output.contains("\"doctor\""), "the token's value is never shown")
    }

    @Test("a rank that cannot join fails with its reason, and rank 0 names it")
    func rankThatCannotJoin() throws {
        let port = try { () throws -> Int in try RawSocket.listen().1 }()
        let ranks = try (0..<2).map { rank in
            try Self.rank(rank, world: 2, port: port, extra: rank == 1 ? ["CCL_TOKEN": "wrong"] : [:], arguments: ["--timeout", "4"])
        }
        let results = ranks.map(Self.finish)
        for (rank, result) in results.enumerated() {
            #expect(result.status == 1, "rank \(rank): \(result.output)")
            let job = try Self.rows(result.output)["job"]
            #expect(job?["status"] == "fail" && job?["found"]?.hasPrefix("rank \(rank) of 2: ") == true, "rank \(rank): \(result.output)")
        }
        #expect(try Self.rows(results[1].output)["job"]?["found"]?.contains("token") == true, "\(results[1].output)")
        #expect(try Self.rows(results[0].output)["job"]?["found"]?.contains("rank 1") == true, "\(results[0].output)")
    }

    @Test(
        "across two network-namespace hosts: two nodes, and each one's clock against rank 0's",
        .enabled(if: TestHosts.available, "needs root and iproute2 to create network namespaces (ip netns add)"))
    func twoHosts() throws {
        let hosts = try TestHosts(tag: 6)
        defer { hosts.tearDown() }
        let ranks = try (0..<2).map { rank in
            try Self.rank(
                rank, world: 2, port: 29_517, master: hosts.addressA,
                extra: ["CCL_HOST": rank == 0 ? hosts.addressA : hosts.addressB, "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"],
                namespace: rank == 0 ? hosts.a : hosts.b)
        }
        let results = ranks.map(Self.finish)
        let rows = try Self.rows(results[0].output)
        #expect(rows["job"]?["found"]?.hasPrefix("2 ranks on 2 nodes (torchrun): ") == true, "\(results[0].output)")
        #expect(rows["clocks"]?["status"] == "ok", "one machine's clock: \(results[0].output)")
        #expect(rows["clocks"]?["found"]?.hasPrefix("against rank 0's: ") == true, "\(results[0].output)")
        #expect(rows["host"]?["found"]?.contains(hosts.addressB) == true, "each node's addresses: \(results[0].output)")
    }

    static func report(_ rank: Int, node: String, busId: String?, ordinal: Int = 0) -> RankReport {
        RankReport(
            rank: rank, host: node, node: node, version: SwiftCCLVersion.current, build: 1, settings: [:],
            gpu: busId.map { GPUPlacement(node: node, busId: $0, ordinal: ordinal) }, gpuNote: busId == nil ? "no GPU" : "",
            clockOffset: 0, clockUncertainty: 0, rows: [])
    }

    @Test("rank → GPU: two ranks on one GPU of a node fail, naming both, the node and the bus id; distinct GPUs are listed")
    func gpuMapping() {
        let distinct = DoctorJob.gpus([
            Self.report(0, node: "a", busId: "0000:3b:00.0"), Self.report(1, node: "a", busId: "0000:5e:00.0", ordinal: 1),
            Self.report(2, node: "b", busId: "0000:3b:00.0"),
        ])
        #expect(distinct.status == .ok, "the same bus id on another node is another GPU: \(distinct.found)")
        #expect(distinct.found.contains("rank 1 → a cuda:1 0000:5e:00.0"), "\(distinct.found)")
        let shared = DoctorJob.gpus([Self.report(0, node: "a", busId: "0000:3b:00.0"), Self.report(1, node: "a", busId: "0000:3b:00.0")])
        #expect(shared.status == .fail)
        #expect(shared.found.contains("ranks 0 and 1 are both on the GPU at PCI bus 0000:3b:00.0 of node a"), "\(shared.found)")
        let short = DoctorJob.gpus([Self.report(0, node: "a", busId: "0000:3b:00.0"), Self.report(1, node: "a", busId: nil)])
        #expect(short.status == .warn && short.found.contains("rank 1 without: no GPU"), "\(short.found)")
    }

    @Test("versions that differ fail, naming the ranks of each build")
    func versions() {
        var other = Self.report(1, node: "a", busId: nil)
        other.build = 2
        let row = DoctorJob.versions([Self.report(0, node: "a", busId: nil), other])
        #expect(row.status == .fail)
        #expect(row.found.contains("(1 bytes) on rank 0") && row.found.contains("(2 bytes) on rank 1"), "\(row.found)")
    }
}
