import CCLSystem
import Foundation

extension ChildProcess {
    /// Starts a copy of a reader or rank program (`ccl bench` starts itself).
    convenience init(executable: String, arguments: [String]) throws {
        try self.init(executable: URL(fileURLWithPath: executable), arguments: arguments)
    }

    /// The next line with the given first word, split into words; skips other lines.
    func expect(_ word: String) throws -> [Substring] {
        while let line = readLine() {
            let words = line.split(separator: " ")
            if words.first.map(String.init) == word { return words }
        }
        throw BenchFailure("reader process \(pid) exited before printing \(word)")
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
