import CCLTestSupport
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

    @Test("SIGINT to the launcher reaches every rank; the launch ends with 130, saying the launcher stopped them")
    func interrupt() throws {
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        let launcher = Process()
        launcher.executableURL = me.deletingLastPathComponent().appendingPathComponent("ccl")
        launcher.arguments = ["launch", "--nproc-per-node", "3", "--", "/bin/sleep", "30"]
        let err = Pipe()
        launcher.standardError = err
        try launcher.run()
        Thread.sleep(forTimeInterval: 0.5)
        let start = Date()
        kill(launcher.processIdentifier, SIGINT)
        let summary = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        launcher.waitUntilExit()
        #expect(launcher.terminationStatus == 130)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(summary.contains("ccl launch: interrupted (SIGINT): stopped ranks 0–2"), "\(summary)")
        #expect(!summary.contains("was killed by signal"), "\(summary)")
    }

    @Test("a launcher killed with SIGKILL takes its ranks with it, whatever the program")
    func sigkilledLauncher() throws {
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        let launcher = Process()
        launcher.executableURL = me.deletingLastPathComponent().appendingPathComponent("ccl")
        launcher.arguments = ["launch", "--nproc-per-node", "3", "--", "/bin/sh", "-c", "sleep 25"]
        launcher.standardError = FileHandle.nullDevice
        try launcher.run()
        // The ranks are the launcher's children (each has become /bin/sh).
        var ranks: [Int32] = []
        for _ in 0..<100 where ranks.count < 3 {
            Thread.sleep(forTimeInterval: 0.05)
            ranks = Self.children(of: launcher.processIdentifier).filter { Self.command(of: $0) == "sh" }
        }
        #expect(ranks.count == 3, "ranks found: \(ranks)")
        kill(launcher.processIdentifier, SIGKILL)
        launcher.waitUntilExit()
        let start = Date()
        while ranks.contains(where: Self.alive), Date().timeIntervalSince(start) < 5 { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!ranks.contains(where: Self.alive), "ranks still running after the launcher died: \(ranks.filter(Self.alive))")
        #expect(Date().timeIntervalSince(start) < 1.5)
    }

    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "").split(separator: " ").compactMap {
                Int32($0)
            }
        }
    }

    static func command(of pid: Int32) -> String {
        ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Running or sleeping; a zombie (dead, not yet reaped by whoever adopted it) is not alive.
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    @Test("an IPv6 master address works end to end (::1)")
    func ipv6() throws {
        let result = try runCCL(["launch", "--nproc-per-node", "2", "--master-addr", "::1", "--", Self.worker, "rank"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("[rank 1] RANK 1 of 2 local 1/2 saw [0, 1]"), "\(result.output)")
    }

    @Test("under torchrun's variables, rank 0 serves the store itself (no ccl launch)")
    func torchrunStyle() throws {
        let port = try { () throws -> Int in try RawSocket.listen().1 }()  // free now; rank 0 binds it
        let ranks = try (0..<2).map { rank in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.worker)
            process.arguments = ["rank"]
            process.environment = [
                "RANK": "\(rank)", "WORLD_SIZE": "2", "LOCAL_RANK": "\(rank)", "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "\(port)", "CCL_TOKEN": "torchrun-style",
            ]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            return (process, out)
        }
        for (rank, (process, out)) in ranks.enumerated() {
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(output)")
            #expect(output.contains("RANK \(rank) of 2 local \(rank)/2 saw [0, 1]"), "\(output)")
        }
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

/// Two launchers on two network-namespace hosts make one 4-rank job: node 0's launcher hosts the
/// store on its address, node 1's ranks reach it across the veth pair.
@Suite(.serialized) struct MultiNodeLaunchTests {
    @Test(
        "ccl launch with --nnodes 2 across two network-namespace hosts",
        .enabled(if: TestHosts.available, "needs root and iproute2 to create network namespaces (ip netns add)"))
    func twoNodes() throws {
        let hosts = try TestHosts(tag: 2)
        defer { hosts.tearDown() }
        let port = 20000 + Int(getpid() % 20000)
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        let ccl = me.deletingLastPathComponent().appendingPathComponent("ccl").path
        let launchers = try [hosts.a, hosts.b].enumerated().map { node, namespace in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "ip", "netns", "exec", namespace, ccl, "launch", "--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "\(node)",
                "--master-addr", hosts.addressA, "--master-port", "\(port)", "--token", "two-nodes", "--", LaunchCommandTests.worker,
                "rank",
            ]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            return (process, out)
        }
        for (node, (process, out)) in launchers.enumerated() {
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "node \(node): \(output)")
            for local in 0..<2 {
                let rank = node * 2 + local
                #expect(output.contains("[rank \(rank)] RANK \(rank) of 4 local \(local)/2 saw [0, 1, 2, 3]"), "\(output)")
            }
        }
    }
}
