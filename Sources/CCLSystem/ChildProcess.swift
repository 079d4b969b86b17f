import Foundation

/// A child process whose stdout is read line by line (stderr passes through): the one helper
/// that the benchmarks' reader processes and the tests' worker processes use.
///
/// Threading: one reader at a time. The child is SIGKILLed if the owner goes away while it runs.
package final class ChildProcess: @unchecked Sendable {
    package let process = Process()
    private let output = Pipe()
    private var pending: [UInt8] = []
    /// Every line read so far, in order.
    package private(set) var lines: [String] = []

    /// Starts `executable` with `arguments`; `environment` is added to this process's.
    package init(executable: URL, arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.standardOutput = output
        try process.run()
    }

    deinit {
        if process.isRunning { ProcessSignal.send(SIGKILL, toGroupOf: process.processIdentifier) }
    }

    package var pid: Int32 { process.processIdentifier }

    /// The next line of stdout, or nil at end of file.
    package func readLine() -> String? {
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                lines.append(line)
                return line
            }
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { return nil }
            pending.append(contentsOf: data)
        }
    }

    /// Waits for the child to exit; its exit status (or the signal's number when killed).
    package func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Sends `signal` to the child alone.
    package func signal(_ signal: Int32) { _ = try? sysCall("kill") { kill(process.processIdentifier, signal) } }
}
