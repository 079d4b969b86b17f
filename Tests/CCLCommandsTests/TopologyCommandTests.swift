import Foundation
import Testing

/// Runs the built `ccl` binary, as a user would.
func runCCL(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, error: String) {
    let me = URL(
        fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    let process = Process()
    process.executableURL = me.deletingLastPathComponent().appendingPathComponent("ccl")
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

@Suite struct TopologyCommandTests {
    @Test("ccl topology --json prints vLLM's groups as one object")
    func json() throws {
        let result = try runCCL(["topology", "--world", "16", "--tp", "4", "--pp", "2", "--dp", "2", "--json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(object["world"] as? Int == 16)
        #expect(object["pp"] as? [[Int]] == [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14], [11, 15]])
        #expect(object["dp"] as? [[Int]] == [[0, 8], [4, 12], [1, 9], [5, 13], [2, 10], [6, 14], [3, 11], [7, 15]])
        #expect(object["ep"] as? [[Int]] == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]])
        #expect((object["tp"] as? [[Int]])?.count == 4)
        #expect((object["pcp"] as? [[Int]])?.count == 16)
        #expect((object["dcp"] as? [[Int]])?.count == 16)
    }

    @Test("the table names each rank's groups and node")
    func table() throws {
        let result = try runCCL(["topology", "--world", "8", "--tp", "2", "--pp", "2", "--dp", "2", "--nproc-per-node", "4"])
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("5     1     1     tp2   pp3   dp2   ep0") }, "\(result.output)")
        #expect(result.output.contains("TP (4 groups of 2): tp0=[0,1]@node0"))
    }

    @Test("sizes that do not divide exit non-zero with the arithmetic")
    func badSizes() throws {
        let result = try runCCL(["topology", "--world", "12", "--tp", "4", "--pp", "2", "--dp", "2"])
        #expect(result.status != 0)
        #expect(result.error.contains("not divisible by dp 2 × pp 2 × pcp 1 × tp 4 = 16"))
    }
}
