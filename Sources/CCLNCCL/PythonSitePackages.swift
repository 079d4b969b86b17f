import Foundation

/// The site-packages directories of the `python3` on PATH, where pip puts NVIDIA's libraries
/// (`nvidia/nccl/lib/libnccl.so.2`).
///
/// Asked of Python itself (`site.getsitepackages()` and the user directory), at most once per
/// PATH per process, with a 5 s limit; no Python, or one that fails, gives no directories.
enum PythonSitePackages {
    private static let cache = Cache()

    static func directories(environment: [String: String]) -> [String] {
        let path = environment["PATH"] ?? ""
        return cache.value(for: path) { ask(path: path) }
    }

    private static func ask(path: String) -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c", "import site; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))",
        ]
        process.environment = ["PATH": path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        do { try process.run() } catch { return [] }
        // The answer is a few lines, far below a pipe's buffer: the child never blocks writing it.
        if finished.wait(timeout: .now() + 5) == .timedOut {
            process.terminate()
            return []
        }
        guard process.terminationStatus == 0 else { return [] }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter { $0.hasPrefix("/") }
    }

    /// Answers by PATH, computed once each.
    private final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var answers: [String: [String]] = [:]

        func value(for key: String, _ compute: () -> [String]) -> [String] {
            if let known = lock.withLock({ answers[key] }) { return known }
            let computed = compute()
            lock.withLock { answers[key] = computed }
            return computed
        }
    }
}
