import CCL
import Foundation
import Testing

/// `ccl store serve` as a real process, inspected with `ccl store set/get/add/keys`.
@Suite(.serialized) struct StoreCommandTests {
    @Test("serve on port 0 prints the port; set, add, get and keys work against it; a wrong token fails")
    func serveAndInspect() throws {
        let token = ["CCL_TOKEN": "cli-token"]
        let (server, port) = try startStoreServer(token: token)
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let addr = "127.0.0.1:\(port)"
        #expect(try runCCL(["store", "set", "--addr", addr, "rank/0", "ready"], environment: token).status == 0)
        #expect(try runCCL(["store", "add", "--addr", addr, "arrived", "2"], environment: token).output == "2\n")
        #expect(try runCCL(["store", "get", "--addr", addr, "rank/0"], environment: token).output == "ready\n")
        let keys = try runCCL(["store", "keys", "--addr", addr], environment: token)
        #expect(keys.output == "arrived\nrank/0\n")
        #expect(keys.error == "2 keys\n")
        let missing = try runCCL(["store", "get", "--addr", addr, "--timeout", "0.3", "rank/1"], environment: token)
        #expect(missing.status != 0)
        #expect(missing.error.contains("missing keys: rank/1"))
        let refused = try runCCL(["store", "keys", "--addr", addr], environment: ["CCL_TOKEN": "other"])
        #expect(refused.status != 0)
        #expect(refused.error.contains("token"))
    }

    @Test("the server's memory returns after large requests: four clients each set and delete 64 MiB")
    func memoryReturns() throws {
        let token = ["CCL_TOKEN": "memory-token"]
        let (server, port) = try startStoreServer(token: token)
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let before = try residentBytes(server.processIdentifier)
        let value = [UInt8](repeating: 7, count: 64 << 20)
        let clients = try (0..<4).map { _ in try TCPStoreClient(host: "127.0.0.1", port: port, token: "memory-token", timeout: .seconds(60))
        }
        for (index, client) in clients.enumerated() {
            try client.set("big/\(index)", value)
            #expect(try client.get("big/\(index)").count == value.count)
            #expect(try client.delete("big/\(index)"))
        }
        #expect(try clients[0].numKeys() == 0)
        let after = try residentBytes(server.processIdentifier)
        // Each connection keeps at most 64 KiB between requests; 4 × 64 MiB kept would be 256 MiB.
        #expect(after - before < 32 << 20, "resident \(before >> 20) MiB before, \(after >> 20) MiB after")
        for client in clients { client.close() }
    }
}

/// Starts `ccl store serve --port 0` and reads the port it prints.
private func startStoreServer(token: [String: String]) throws -> (Process, Int) {
    let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
    let server = Process()
    server.executableURL = me.deletingLastPathComponent().appendingPathComponent("ccl")
    server.arguments = ["store", "serve", "--port", "0"]
    server.environment = ProcessInfo.processInfo.environment.merging(token) { $1 }
    let out = Pipe()
    server.standardOutput = out
    try server.run()
    var line = [UInt8]()
    while !line.contains(10) {
        let data = out.fileHandleForReading.availableData
        if data.isEmpty { break }
        line += data
    }
    let text = String(decoding: line, as: UTF8.self)
    guard let port = text.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
        server.terminate()
        throw CCLError(.system, operation: "start ccl store serve", "no port in its first line: \(text)")
    }
    return (server, port)
}

/// A process's resident memory (VmRSS).
private func residentBytes(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { throw CCLError(.system, operation: "read VmRSS of \(pid)", "no VmRSS line") }
    return kib << 10
}
