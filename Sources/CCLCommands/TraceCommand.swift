import ArgumentParser
import CCL
import CCLSystem
import CCLTrace
import Foundation

/// `ccl trace --local`: what every rank of the jobs on this node is doing now, read from their
/// flight recorders in shared memory (the ranks may be hung: nothing is asked of them).
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show what the ranks on this node are doing now, from their flight recorders, with a verdict per group.")

    @Flag(help: "Read every rank's flight recorder on this node from shared memory.") var local = false
    @Option(help: "Calls to show per rank.") var last: Int = 3
    @Flag(help: "One JSON object per group.") var json = false

    func validate() throws {
        guard local else { throw ValidationError("say where to read: --local (this node's shared memory)") }
        guard (1...1000).contains(last) else { throw ValidationError("--last must be in 1...1000") }
    }

    func run() throws {
        let now = monotonicNanoseconds()
        let snapshots = TraceReader.local()
        if snapshots.isEmpty {
            if !json { print("no flight recorders on this node (no rank running, or CCL_TRACE_BUFFER=0)") }
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
                "group \(first.group) (round \(first.round), \(first.backend), ranks \(verdict.ranks.map(String.init).joined(separator: " ")))"
            )
            for member in members {
                let calls = member.entries.suffix(last).map { entry in
                    "#\(entry.number) \(TraceVerdict.describe(entry.call)) \(entry.state) "
                        + TraceCommand.ago(now, entry.end ?? entry.start)
                }
                print("  rank \(member.rank) (pid \(member.pid)): " + (calls.isEmpty ? "no calls yet" : calls.joined(separator: "; ")))
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
                "{\"rank\":\(member.rank),\"group_rank\":\(member.groupRank),\"pid\":\(member.pid),\"backend\":\(quoted(member.backend)),"
                + "\"calls\":[\(entries.joined(separator: ","))]}"
        }
        let first = members[0]
        return "{\"group\":\(quoted(first.group)),\"round\":\(quoted(first.round)),\"ranks\":[\(ranks.joined(separator: ","))],"
            + "\"never_entered\":[\(verdict.neverEntered.map(String.init).joined(separator: ","))],"
            + "\"inside\":[\(verdict.inside.map(String.init).joined(separator: ","))],"
            + "\"verdict\":\(quoted(verdict.text))}"
    }
}
