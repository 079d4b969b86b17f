import Foundation

/// A child process whose stdout is read line by line (stderr passes through).
/// Used by the benchmarks to run readers as real processes.
final class ChildProcess {
    let process = Process()
    private let output = Pipe()
    private var pending: [UInt8] = []

    init(executable: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The next line of stdout, or nil at end of file.
    func readLine() -> String? {
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { return nil }
            pending.append(contentsOf: data)
        }
    }

    /// The next line with the given first word, split into words; skips other lines.
    func expect(_ word: String) throws -> [Substring] {
        while let line = readLine() {
            let words = line.split(separator: " ")
            if words.first.map(String.init) == word { return words }
        }
        throw BenchFailure("reader process \(pid) exited before printing \(word)")
    }

    func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    func kill() { process.terminate() }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The path of the running executable (to start copies of it as readers).
func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}
