import ArgumentParser
import CCL
import CCLSystem
import CCLTrace
import Foundation

/// `ccl trace`: what every rank is doing now, from the flight recorders: `--local` reads those of
/// this node's jobs from shared memory (nothing is asked of the ranks); `--addr` asks every
/// process of a job through its store, where a thread of each answers even while its rank is
/// blocked in a call (`TraceResponder`).
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show what the ranks of a job are doing now, from their flight recorders, with a verdict per group.")

    @Flag(help: "Read every rank's flight recorder on this node from shared memory.") var local = false
    @Option(help: "Ask every process of the job whose store is at HOST:PORT ([IPv6]:PORT; token from CCL_TOKEN).") var addr: String?
    @Option(help: "With --addr: seconds to wait for the processes' answers.") var wait: Double = 3
    @Option(help: "Calls to show per rank.") var last: Int = 3
    @Flag(help: "One JSON object per group.") var json = false

    func validate() throws {
        guard local != (addr != nil) else {
            throw ValidationError("say where to read: --local (this node's shared memory) or --addr HOST:PORT (a job's store)")
        }
        guard (1...1000).contains(last) else { throw ValidationError("--last must be in 1...1000") }
        try checkFinite(wait, in: 0...3600, option: "--wait")
    }

    func run() throws {
        var snapshots: [TraceSnapshot]
        if let addr {
            let store = try StoreCommand.Address.connect(addr, timeout: max(wait, 1))
            defer { store.close() }
            let collected = try TraceExchange.collect(from: store, expecting: nil, wait: UInt64(wait * 1e9))
            for refused in collected.refused { FileHandle.standardError.write(Data("ccl trace: ignored a reply: \(refused)\n".utf8)) }
            snapshots = collected.snapshots
        } else {
            snapshots = TraceReader.local()
        }
        let now = monotonicNanoseconds()
        if snapshots.isEmpty {
            if !json {
                print(
                    addr == nil
                        ? "no flight recorders on this node (no rank running, or CCL_TRACE_BUFFER=0)"
                        : "no process of the job answered within \(wait) s (no rank running, or CCL_TRACE_BUFFER=0)")
            }
            return
        }
        let groups = Dictionary(grouping: snapshots) { "\($0.group)\u{0}\($0.round)" }
        for key in groups.keys.sorted() {
            let members = (groups[key] ?? []).sorted { $0.groupRank < $1.groupRank }
            guard let first = members.first, let verdict = TraceVerdict.analyse(members, now: now) else { continue }
            if json {
                print(jsonLine(members, verdict: verdict, now: now))
                continue
            }
            print(
                "group \(first.group) (round \(first.round), \(first.backend), ranks \(verdict.ranks.map(String.init).joined(separator: " "))"
                    + (first.job.isEmpty ? ")" : ", \(first.job))")
            )
            for member in members {
                let calls = member.entries.suffix(last).map { entry in
                    "#\(entry.number) \(TraceVerdict.describe(entry.call)) \(entry.state) "
                        + TraceCommand.ago(now, entry.end ?? entry.start)
                }
                let process = member.host.isEmpty ? "pid \(member.pid)" : "\(member.host) pid \(member.pid)"
                print("  rank \(member.rank) (\(process)): " + (calls.isEmpty ? "no calls yet" : calls.joined(separator: "; ")))
            }
            print("  verdict: \(verdict.text)")
        }
    }

    static func ago(_ now: UInt64, _ then: UInt64) -> String {
        let seconds = Double(now &- then) / 1e9
        return "\((seconds * 10).rounded() / 10) s ago"
    }

    private func jsonLine(_ members: [TraceSnapshot], verdict: TraceVerdict, now: UInt64) -> String {
        func quoted(_ text: String) -> String {
            let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
            return String(decoding: data, as: UTF8.self)
        }
        let ranks = members.map { member in
            let entries = member.entries.suffix(last).map { entry in
                "{\"number\":\(entry.number),\"collective\":\(entry.collective),\"call\":\(quoted(TraceVerdict.describe(entry.call))),"
                    + "\"state\":\"\(entry.state)\",\"started_s_ago\":\(Double(now &- entry.start) / 1e9)"
                    + (entry.end.map { ",\"ended_s_ago\":\(Double(now &- $0) / 1e9)" } ?? "") + "}"
            }
            return
                "{\"rank\":\(member.rank),\"group_rank\":\(member.groupRank),\"pid\":\(member.pid),\"host\":\(quoted(member.host)),"
                + "\"backend\":\(quoted(member.backend)),"
                + "\"calls\":[\(entries.joined(separator: ","))]}"
        }
        let first = members[0]
        return
            "{\"group\":\(quoted(first.group)),\"round\":\(quoted(first.round)),\"job\":\(quoted(first.job)),\"ranks\":[\(ranks.joined(separator: ","))],"
            + "\"never_entered\":[\(verdict.neverEntered.map(String.init).joined(separator: ","))],"
            + "\"inside\":[\(verdict.inside.map(String.init).joined(separator: ","))],"
            + "\"verdict\":\(quoted(verdict.text))}"
    }
}
