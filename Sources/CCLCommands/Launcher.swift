import CCL
import CCLSystem
import Foundation

/// Starts a node's ranks as child processes with the launch environment, relays their output
/// with a `[rank R]` prefix, and stops them all when one fails (torchrun's local agent).
///
/// Contract: returns the exit status the launcher should have: 0 only when every rank exited 0.
/// When a rank exits non-zero or dies by a signal, the others get SIGTERM, then SIGKILL after
/// `stopGrace`; the summary names the rank, its exit code or signal, and its last lines.
final class Launcher: @unchecked Sendable {
    struct Rank {
        let rank: Int
        let process: Process
        let tail: OutputTail
    }

    let program: [String]
    let environments: [[String: String]]
    let stopGrace: TimeInterval
    private let events = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var ranks: [Rank] = []
    /// Ranks in the order they ended (guarded by `lock`): the first failure is the one to blame.
    private var ended: [Int] = []
    /// The signal that interrupted the launcher and the ranks running then (guarded by `lock`):
    /// the launcher stopped them, so none of them is to blame.
    private var interruption: (signal: Int32, running: [Int])?
    /// One entry per relayed pipe, left at end of file.
    private let relays = DispatchGroup()
    private var outputLock = NSLock()

    /// Ranks whose output is copied without the `[rank R] ` prefix (a report printed by rank 0).
    let unprefixedRanks: Set<Int>

    init(program: [String], environments: [[String: String]], stopGrace: TimeInterval = 1.5, unprefixedRanks: Set<Int> = []) {
        self.program = program
        self.environments = environments
        self.stopGrace = stopGrace
        self.unprefixedRanks = unprefixedRanks
    }

    /// Runs every rank to completion; returns (exit status, summary lines for stderr).
    /// `started` runs once every rank is up (install signal forwarding there: an ignored signal
    /// set before the ranks start would be inherited by them).
    func run(started: () -> Void = {}) throws -> (Int32, [String]) {
        guard let executable = program.first else { throw LaunchFailure("no program to launch") }
        let path = executable.contains("/") ? executable : try Self.resolve(executable)
        // Each rank starts as `ccl rank-exec`, which ties it to this process and then becomes the
        // program: a launcher killed by SIGKILL takes its ranks with it. The kernel ties a child
        // to the thread that started it, and this thread lives until the ranks have ended.
        let launcher = URL(fileURLWithPath: currentExecutable())
        let wrapped = ["rank-exec", "--parent", "\(getpid())", "--", path] + program.dropFirst()
        for (index, environment) in environments.enumerated() {
            let rank = Int(environment["CCL_RANK"] ?? "") ?? index
            let process = Process()
            process.executableURL = launcher
            process.arguments = wrapped
            process.environment = environment
            let tail = OutputTail(lines: 20)
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardOutput = stdout
            process.standardError = stderr
            relay(stdout, to: FileHandle.standardOutput, rank: rank, tail: tail)
            relay(stderr, to: FileHandle.standardError, rank: rank, tail: tail)
            process.terminationHandler = { [events, lock] _ in
                lock.withLock { self.ended.append(rank) }
                events.signal()
            }
            do {
                try process.run()
            } catch {
                let started = lock.withLock { ranks }
                for other in started where other.process.isRunning { Self.signal(other.process, SIGKILL) }
                for other in started { other.process.waitUntilExit() }
                throw LaunchFailure("cannot start rank \(rank) (\(executable)): \(error)")
            }
            lock.withLock { ranks.append(Rank(rank: rank, process: process, tail: tail)) }
        }
        let all = lock.withLock { ranks }
        started()
        var failed: Rank?
        let firstFailure = { [lock] () -> Rank? in
            let order = lock.withLock { self.ended }
            return order.lazy.compactMap { r in all.first { $0.rank == r } }.first { !Self.succeeded($0.process) }
        }
        while all.contains(where: { $0.process.isRunning }) {
            events.wait()
            if failed == nil, lock.withLock({ interruption }) == nil, let first = firstFailure() {
                failed = first
                stopAll()
            }
        }
        // Let the relays copy what the ranks printed last (bounded: a grandchild may hold a pipe).
        _ = relays.wait(timeout: .now() + 2)
        if failed == nil, let interruption = lock.withLock({ interruption }) {
            let summary =
                "ccl launch: interrupted (\(Self.signalName(interruption.signal))): stopped ranks \(Self.ranges(interruption.running))"
            return (128 + interruption.signal, [summary])
        }
        if failed == nil { failed = firstFailure() ?? all.first { !Self.succeeded($0.process) } }
        guard let failed else { return (0, []) }
        var summary = ["ccl launch: rank \(failed.rank) \(Self.describe(failed.process)); stopped the other ranks."]
        for other in all where other.rank != failed.rank && !Self.succeeded(other.process) {
            summary.append("  rank \(other.rank) \(Self.describe(other.process))")
        }
        let lines = failed.tail.lines
        if !lines.isEmpty {
            summary.append("last lines of rank \(failed.rank):")
            summary += lines.map { "  " + $0 }
        }
        return (1, summary)
    }

    /// The launcher itself got `signal` (SIGINT, SIGTERM): pass it to every rank and report the
    /// launch as interrupted, exit status 128 + signal, not as a rank's failure.
    func interrupt(signal: Int32) {
        lock.withLock {
            if interruption == nil { interruption = (signal, ranks.filter { $0.process.isRunning }.map(\.rank)) }
        }
        stopAll(signal: signal)
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(signal)"
        }
    }

    /// "0–2, 5": ascending ranks with consecutive runs joined.
    static func ranges(_ ranks: [Int]) -> String {
        var parts: [String] = []
        var run: (first: Int, last: Int)?
        func close(_ run: (first: Int, last: Int)) { parts.append(run.first == run.last ? "\(run.first)" : "\(run.first)–\(run.last)") }
        for rank in ranks.sorted() {
            if let current = run, rank == current.last + 1 {
                run = (current.first, rank)
                continue
            }
            if let current = run { close(current) }
            run = (rank, rank)
        }
        if let current = run { close(current) }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    /// SIGTERM to every running rank, SIGKILL after the grace period.
    func stopAll(signal: Int32 = SIGTERM) {
        let running = lock.withLock { ranks.filter { $0.process.isRunning } }
        for rank in running { Self.signal(rank.process, signal) }
        let grace = stopGrace
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) {
            for rank in running where rank.process.isRunning { Self.signal(rank.process, SIGKILL) }
        }
    }

    /// Signals a rank and what it started: each rank leads its own process group (Foundation
    /// starts children that way), so the group gets it; the pid alone if that fails.
    static func signal(_ process: Process, _ number: Int32) {
        ProcessSignal.send(number, toGroupOf: process.processIdentifier)
    }

    static func succeeded(_ process: Process) -> Bool {
        process.terminationReason == .exit && process.terminationStatus == 0
    }

    static func describe(_ process: Process) -> String {
        process.terminationReason == .uncaughtSignal
            ? "was killed by signal \(process.terminationStatus)" : "exited with code \(process.terminationStatus)"
    }

    static func resolve(_ name: String) throws -> String {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw LaunchFailure("'\(name)' is not on PATH")
    }

    /// Copies `pipe` line by line to `output`, each line prefixed `[rank R] `, keeping the tail.
    private func relay(_ pipe: Pipe, to output: FileHandle, rank: Int, tail: OutputTail) {
        let prefix = unprefixedRanks.contains(rank) ? Data() : Data("[rank \(rank)] ".utf8)
        let reading = pipe.fileHandleForReading
        relays.enter()
        Thread { [outputLock, relays] in
            defer { relays.leave() }
            var pending = Data()
            while true {
                let chunk = reading.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 10) {
                    let line = pending[pending.startIndex...newline]
                    tail.append(String(decoding: line.dropLast(), as: UTF8.self))
                    outputLock.withLock { output.write(prefix + line) }
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            if !pending.isEmpty {
                tail.append(String(decoding: pending, as: UTF8.self))
                outputLock.withLock { output.write(prefix + pending + Data("\n".utf8)) }
            }
        }.start()
    }
}

/// The last `lines` lines a rank printed.
final class OutputTail: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    private let limit: Int

    init(lines: Int) { limit = lines }

    func append(_ line: String) {
        lock.withLock {
            stored.append(line)
            if stored.count > limit { stored.removeFirst(stored.count - limit) }
        }
    }

    var lines: [String] { lock.withLock { stored } }
}

struct LaunchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
