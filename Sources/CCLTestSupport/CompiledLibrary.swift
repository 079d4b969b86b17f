import CCL
import Foundation

/// A shared library compiled from C source in a fresh temporary directory, with `cc` or else the
/// Swift toolchain's `clang` (both on PATH where SwiftPM works). For tests of run-time loading.
public struct CompiledLibrary: Sendable {
    public let path: String
    let directory: URL

    public init(source: String, name: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ccl-lib-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("source.c")
        try source.write(to: file, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent(name).path
        var failure = "no C compiler found (tried cc, clang)"
        for compiler in ["cc", "clang"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [compiler, "-shared", "-fPIC", "-O1", "-o", output, file.path]
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            if process.terminationStatus == 0 {
                path = output
                return
            }
            failure = "\(compiler) exited with \(process.terminationStatus): \(text.prefix(2000))"
        }
        try? FileManager.default.removeItem(at: directory)
        throw CCLError(.unavailable, operation: "compile the test library \(name)", failure)
    }

    public func remove() { try? FileManager.default.removeItem(at: directory) }
}
