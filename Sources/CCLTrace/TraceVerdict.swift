import CCLCollectiveAPI

/// What the flight recorders of one group's ranks say together: the oldest collective not
/// completed everywhere, and who is holding it up (torch's `torchfrtrace` verdict, from live
/// rings instead of dumps).
///
/// - A rank whose last collective is older than that call never entered it: it is named with its
///   last call and how long ago that ended.
/// - Ranks that entered it with another operation, dtype, count or root are a mismatch, named
///   against the others.
/// - Otherwise every rank is inside it (a transport or a peer stopped inside the call).
/// Ranks are named by global rank; ranks without a recorder here are listed as such.
package struct TraceVerdict: Sendable, Equatable {
    /// The group and its ranks, by global rank.
    package var group: String
    package var ranks: [Int]
    /// The call's number among the group's collectives, and the call (nil: nothing in flight).
    package var collective: UInt64?
    package var call: CollectiveCall?
    package var neverEntered: [Int]
    package var inside: [Int]
    package var missing: [Int]
    /// The verdict in words.
    package var text: String

    /// The verdict for the recorders of one group instance (one round of one group); `now` is
    /// CLOCK_MONOTONIC. Ranks without a recorder are said to have none on this node, or, those of
    /// `remote` (global ranks on other nodes, asked through the store), not to have answered.
    package static func analyse(_ snapshots: [TraceSnapshot], now: UInt64, remote: Set<Int> = []) -> TraceVerdict? {
        guard let first = snapshots.first, first.worldSize >= 1 else { return nil }
        let size = first.worldSize
        let global = { (groupRank: Int) in groupRank < first.globalRanks.count ? first.globalRanks[groupRank] : groupRank }
        let byRank = Dictionary(
            snapshots.filter { (0..<size).contains($0.groupRank) }.map { ($0.groupRank, $0) }, uniquingKeysWith: { a, _ in a })
        let ranks = (0..<size).map(global)
        let missing = (0..<size).filter { byRank[$0] == nil }.map(global)
        let collectives = byRank.mapValues { $0.entries.filter { $0.collective > 0 } }
        // Enqueued device calls are in flight until their stream passes a marker after them.
        let done: (TraceEntry) -> Bool = { $0.state == .completed || $0.state == .failed }
        // The oldest collective some present rank has not finished.
        let pending = collectives.values.compactMap { entries -> UInt64? in
            let finished = entries.filter(done).map(\.collective).max() ?? 0
            return finished &+ 1
        }.min()
        let label = "group \(first.group) [\(ranks.map(String.init).joined(separator: " "))]"
        let silent = missing.filter(remote.contains), here = missing.filter { !remote.contains($0) }
        // A stopped process is alive to every liveness check, and runs nothing: say so first.
        let stopped = byRank.filter { $0.value.stopped }.keys.sorted().map(global)
        let halted =
            stopped.isEmpty
            ? ""
            : "; " + names(stopped) + (stopped.count == 1 ? " is" : " are")
                + " stopped (SIGSTOP or a debugger: its process is alive and runs nothing; SIGCONT resumes it)"
        let absent =
            (here.isEmpty ? "" : "; " + names(here) + " ha\(here.count == 1 ? "s" : "ve") no flight recorder on this node")
            + (silent.isEmpty
                ? ""
                : "; " + names(silent) + " on other nodes sent no report through the store (its process is gone, or it records nothing)")
        guard let k = pending else {
            return TraceVerdict(
                group: first.group, ranks: ranks, collective: nil, call: nil, neverEntered: [], inside: [], missing: missing,
                text: "\(label): no rank has recorded a collective\(halted)\(absent)")
        }
        let entered = collectives.compactMapValues { $0.first { $0.collective == k } }
        if entered.isEmpty {
            let last = collectives.values.flatMap { $0 }.max { $0.collective < $1.collective }
            return TraceVerdict(
                group: first.group, ranks: ranks, collective: nil, call: nil, neverEntered: [], inside: [], missing: missing,
                text: "\(label): no collective in flight"
                    + (last.map { "; the last, \(describe($0.call)) #\($0.collective), completed on every rank here" } ?? "") + halted
                    + absent)
        }
        let neverEntered = collectives.keys.filter { entered[$0] == nil }.sorted()
        let inside = entered.filter { !done($0.value) }.keys.sorted()
        // A mismatch: the ranks that entered call k did not all call the same thing.
        let signatures = Dictionary(grouping: entered.sorted { $0.key < $1.key }, by: { $0.value.call }).mapValues { $0.map(\.key) }
        if signatures.count > 1, let common = signatures.max(by: { $0.value.count < $1.value.count }) {
            let odd = signatures.filter { $0.key != common.key }.sorted { $0.value[0] < $1.value[0] }
            let parts = odd.map { "\(names($0.value.map(global))) called \(describe($0.key))" }
            return TraceVerdict(
                group: first.group, ranks: ranks, collective: k, call: common.key, neverEntered: neverEntered.map(global),
                inside: inside.map(global), missing: missing,
                text:
                    "collective #\(k) on \(label): \(parts.joined(separator: ", ")) where \(names(common.value.map(global))) called \(describe(common.key))\(halted)\(absent)"
            )
        }
        guard let call = entered.values.first?.call else { return nil }
        let since = entered.values.map(\.start).min().map { seconds(now &- $0) } ?? "?"
        var text = "\(describe(call)) #\(k) on \(label): "
        if !neverEntered.isEmpty {
            let who = neverEntered.map { rank -> String in
                let last = collectives[rank]?.last
                let tail =
                    last.map { entry in
                        ", its last call, \(describe(entry.call)) #\(entry.collective), "
                            + (entry.end.map { "\(entry.state) \(seconds(now &- $0)) ago" } ?? "started \(seconds(now &- entry.start)) ago")
                    } ?? ", it has recorded no collective"
                return "rank \(global(rank)) never entered it (\(tail.dropFirst(2)))"
            }
            text += who.joined(separator: "; ")
            if !inside.isEmpty { text += "; \(names(inside.map(global))) waiting since \(since)" }
        } else if !inside.isEmpty {
            text +=
                "every rank here entered it; \(names(inside.map(global))) still inside since \(since) (stopped inside the call, or its transport is stuck)"
        } else {
            text += "completed or failed on every rank here"
        }
        return TraceVerdict(
            group: first.group, ranks: ranks, collective: k, call: call, neverEntered: neverEntered.map(global), inside: inside.map(global),
            missing: missing, text: text + halted + absent)
    }

    /// "allReduce(sum) float32 × 4096", "barrier".
    package static func describe(_ call: CollectiveCall) -> String {
        call.op == .barrier ? "barrier" : "\(call.op) \(call.dtype) × \(call.count)"
    }

    static func names(_ ranks: [Int]) -> String {
        (ranks.count == 1 ? "rank " : "ranks ") + ranks.map(String.init).joined(separator: " ")
    }

    static func seconds(_ nanoseconds: UInt64) -> String {
        let value = Double(nanoseconds) / 1e9
        return value < 10 ? "\((value * 100).rounded() / 100) s" : "\((value * 10).rounded() / 10) s"
    }
}
