import Foundation
import Testing

/// `ccl store serve` as a real process, inspected with `ccl store set/get/add/keys`.
@Suite(.serialized) struct StoreCommandTests {
    @Test("serve on port 0 prints the port; set, add, get and keys work against it; a wrong token fails")
    func serveAndInspect() throws {
        let token = ["CCL_TOKEN": "cli-token"]
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        let server = Process()
        server.executableURL = me.deletingLastPathComponent().appendingPathComponent("ccl")
        server.arguments = ["store", "serve", "--port", "0"]
        server.environment = ProcessInfo.processInfo.environment.merging(token) { $1 }
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        var line = [UInt8]()
        while !line.contains(10) {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            line += data
        }
        let text = String(decoding: line, as: UTF8.self)
        let port = try #require(text.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        let addr = "127.0.0.1:\(port)"
        #expect(try runCCL(["store", "set", "--addr", addr, "rank/0", "ready"], environment: token).status == 0)
        #expect(try runCCL(["store", "add", "--addr", addr, "arrived", "2"], environment: token).output == "2\n")
        #expect(try runCCL(["store", "get", "--addr", addr, "rank/0"], environment: token).output == "ready\n")
        #expect(try runCCL(["store", "keys", "--addr", addr], environment: token).output == "arrived\nrank/0\n")
        let missing = try runCCL(["store", "get", "--addr", addr, "--timeout", "0.3", "rank/1"], environment: token)
        #expect(missing.status != 0)
        #expect(missing.error.contains("missing keys: rank/1"))
        let refused = try runCCL(["store", "keys", "--addr", addr], environment: ["CCL_TOKEN": "other"])
        #expect(refused.status != 0)
        #expect(refused.error.contains("token"))
    }
}
