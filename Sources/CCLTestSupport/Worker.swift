import CCL
import CCLSystem
import Foundation

/// A `CCLTestWorker` process: a real reader or writer, driven by `key=value` arguments, that
/// reports on stdout one line per event (see Sources/CCLTestWorker/main.swift).
public final class Worker: @unchecked Sendable {
    private let child: ChildProcess
    public var process: Process { child.process }
    /// Every line read so far.
    public var lines: [String] { child.lines }

    public static var executable: URL {
        let me = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return me.deletingLastPathComponent().appendingPathComponent("CCLTestWorker")
    }

    /// Starts the worker, inside network namespace `namespace` when given (`ip netns exec`), with
    /// `environment` added to this process's. With `privateSharedMemory` it runs in a mount
    /// namespace of its own with an empty `/dev/shm` (`unshare -m`, root only), as on another
    /// node: no process outside sees its segments.
    public init(
        _ mode: String, _ arguments: [String: String], namespace: String? = nil, environment: [String: String] = [:],
        privateSharedMemory: Bool = false
    ) throws {
        let words = [mode] + arguments.map { "\($0.key)=\($0.value)" }
        if privateSharedMemory {
            child = try ChildProcess(
                executable: URL(fileURLWithPath: "/usr/bin/unshare"),
                arguments: ["-m", "sh", "-c", "mount -t tmpfs tmpfs /dev/shm && exec \"$0\" \"$@\"", Self.executable.path] + words,
                environment: environment)
        } else if let namespace {
            child = try ChildProcess(
                executable: URL(fileURLWithPath: "/usr/bin/env"),
                arguments: ["ip", "netns", "exec", namespace, Self.executable.path] + words,
                environment: environment)
        } else {
            child = try ChildProcess(executable: Self.executable, arguments: words, environment: environment)
        }
    }

    public var pid: Int32 { child.pid }

    /// The next stdout line, or nil at end of file.
    public func readLine() -> String? { child.readLine() }

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

    public func sigkill() { child.signal(SIGKILL) }

    public func exitStatus() -> Int32 { child.waitForExit() }
}

public struct WorkerFailure: Error, CustomStringConvertible {
    public let lines: [String]
    public var description: String { "worker output: " + lines.joined(separator: " | ") }
}

public func json(_ handle: MessageQueueHandle) -> String {
    (try? String(decoding: JSONEncoder().encode(handle), as: UTF8.self)) ?? ""
}
