import CCLCore
import CCLStore
import CCLSystem

/// Asks the processes of a job, through its store, for their flight recorders, and collects the
/// reports that arrive (each process's `TraceResponder` answers from its own thread, even while
/// its rank is blocked in a call).
///
/// Keys, under `ccl-trace/` in the job's store: a request takes `n = add("requests", 1)` and sets
/// `request/<n>`; each process answers under `reply/<n>/<host>-<pid>` with a `TraceReport`. A
/// request is made when a call times out on a group with ranks on other nodes, or by
/// `ccl trace --addr`; the request's keys are deleted once collected (a reply that comes later
/// stays, a few kilobytes).
package enum TraceExchange {
    static let prefix = "ccl-trace/"
    static let counterKey = prefix + "requests"
    static func requestKey(_ number: Int64) -> String { prefix + "request/\(number)" }
    static func replyPrefix(_ number: Int64) -> String { prefix + "reply/\(number)/" }

    /// How long a rank that timed out waits for the others' reports.
    package static let defaultWait: UInt64 = 2_000_000_000

    /// What a request collected.
    package struct Collected: Sendable {
        /// Every recorder of every process that answered, on this process's clock.
        package var snapshots: [TraceSnapshot]
        /// Replies that could not be read, with why.
        package var refused: [String]
    }

    /// Asks every process of the job on `store`, then collects replies until every rank of
    /// `expecting` (global ranks) has answered — nil: until every group the replies mention is
    /// complete — or `wait` nanoseconds pass.
    ///
    /// - Throws: `CCLError` when the store cannot be reached; replies that are malformed are
    ///   listed in `refused`, not thrown.
    package static func collect(from store: any Store, expecting: Set<Int>?, wait: UInt64) throws(CCLError) -> Collected {
        let number = try store.add(counterKey, 1)
        try store.set(requestKey(number), [1])
        let replies = replyPrefix(number)
        var collected = Collected(snapshots: [], refused: [])
        var read = Set<String>()
        let start = monotonicNanoseconds()
        while true {
            for key in try store.keys(prefix: replies) where !read.contains(key) {
                read.insert(key)
                let peer = String(key.dropFirst(replies.count))
                do {
                    let report = try TraceReport.decode(store.get(key, timeout: .seconds(1)), from: peer)
                    collected.snapshots += report.snapshots(receivedAt: monotonicNanoseconds())
                } catch {
                    collected.refused.append("\(peer): \(error.message)")
                }
            }
            if complete(collected.snapshots, expecting: expecting) || monotonicNanoseconds() &- start >= wait { break }
            sleepNanoseconds(20_000_000)
        }
        _ = try? store.delete(requestKey(number))
        for key in read { _ = try? store.delete(key) }
        return collected
    }

    /// The verdict on one group instance now, and where it comes from ("on this node", or "of
    /// the group's ranks"): this node's recorders, and when some of `remote` (the group's global
    /// ranks on other nodes) have none here and `store` is given, the reports those ranks send
    /// through it, waited for at most `defaultWait`. Nil when no call of the group is in flight.
    package static func verdict(group: String, round: String, remote: Set<Int>, store: (any Store)?) -> (
        verdict: TraceVerdict, scope: String
    )? {
        var snapshots = TraceReader.local().filter { $0.group == group && $0.round == round }
        let unseen = remote.subtracting(snapshots.map(\.rank))
        var scope = "on this node"
        if !unseen.isEmpty, let store {
            let reports = (try? collect(from: store, expecting: unseen, wait: defaultWait))?.snapshots ?? []
            snapshots += reports.filter { $0.group == group && $0.round == round && unseen.contains($0.rank) }
            scope = "of the group's ranks"
        }
        guard let verdict = TraceVerdict.analyse(snapshots, now: monotonicNanoseconds(), remote: unseen), verdict.collective != nil
        else { return nil }
        return (verdict, scope)
    }

    /// Whether `snapshots` cover `expecting`, or (nil) every member of every group they mention.
    static func complete(_ snapshots: [TraceSnapshot], expecting: Set<Int>?) -> Bool {
        if let expecting { return expecting.isSubset(of: Set(snapshots.map(\.rank))) }
        guard !snapshots.isEmpty else { return false }
        let groups = Dictionary(grouping: snapshots) { "\($0.group)\u{0}\($0.round)" }
        return groups.values.allSatisfy { members in Set(members.map(\.groupRank)).count >= (members.first?.worldSize ?? 0) }
    }
}
