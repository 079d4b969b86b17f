import CCL
import Foundation

/// A `CCLTestWorker` process: a real reader or writer, driven by `key=value` arguments, that
/// reports on stdout one line per event (see Sources/CCLTestWorker/main.swift).
public final class Worker: @unchecked Sendable {
    public let process = Process()
    private let output = Pipe()
    private var pending: [UInt8] = []
    public private(set) var lines: [String] = []

    public static var executable: URL {
        let me = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return me.deletingLastPathComponent().appendingPathComponent("CCLTestWorker")
    }

    /// Starts the worker, inside network namespace `namespace` when given (`ip netns exec`), with
    /// `environment` added to this process's.
    public init(_ mode: String, _ arguments: [String: String], namespace: String? = nil, environment: [String: String] = [:]) throws {
        let words = [mode] + arguments.map { "\($0.key)=\($0.value)" }
        if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", namespace, Self.executable.path] + words
        } else {
            process.executableURL = Self.executable
            process.arguments = words
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.standardOutput = output
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public var pid: Int32 { process.processIdentifier }

    /// The next stdout line, or nil at end of file.
    public func readLine() -> String? {
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

    /// Reads lines until one starts with `prefix` (returned) or an ERROR line or end of output
    /// (thrown, with everything the worker printed).
    @discardableResult
    public func expect(_ prefix: String) throws -> String {
        while let line = readLine() {
            if line.hasPrefix(prefix) { return line }
            if line.hasPrefix("ERROR") && !prefix.hasPrefix("ERROR") { throw WorkerFailure(lines: lines) }
        }
        throw WorkerFailure(lines: lines)
    }

    /// The handle a writer worker printed.
    public func handle() throws -> MessageQueueHandle {
        let line = try expect("HANDLE ")
        return try JSONDecoder().decode(MessageQueueHandle.self, from: Data(line.dropFirst(7).utf8))
    }

    public func sigkill() { kill(process.processIdentifier, SIGKILL) }

    public func exitStatus() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}

public struct WorkerFailure: Error, CustomStringConvertible {
    public let lines: [String]
    public var description: String { "worker output: " + lines.joined(separator: " | ") }
}

public func json(_ handle: MessageQueueHandle) -> String {
    (try? String(decoding: JSONEncoder().encode(handle), as: UTF8.self)) ?? ""
}
