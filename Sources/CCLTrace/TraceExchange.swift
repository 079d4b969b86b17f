import CCLCore
import CCLStore
import CCLSystem

/// Asks the processes of a job, through its store, for their flight recorders, and collects the
/// reports that arrive (each process's `TraceResponder` answers from its own thread, even while
/// its rank is blocked in a call).
///
/// Keys, under `ccl-trace/` in the job's store: each rank whose process answers holds
/// `rank/<global rank>` (a claim: gone with its process, or deleted when it stops answering); a
/// request takes `n = add("requests", 1)` and sets `request/<n>` to the ranks it wants ("open 3 7",
/// or "open all"); each process holding one of them answers under `reply/<n>/<host>-<pid>` with a
/// `TraceReport`. The request waits only for wanted ranks that hold their key, reads the replies
/// (deleting them), and marks `request/<n>` "done" (kept, a few bytes, so that a responder still
/// behind skips it at once). A request is made when a call times out on a group with ranks on
/// other nodes, by a store-group timeout or a queue stall, or by `ccl trace --addr`; a job that
/// never asks leaves no key.
///
/// A TCP store is asked on a connection of its own: a server that stalls breaks that one, never
/// the job's (whose claims the server would drop), and other threads' waits on the job's client
/// do not hold the request up.
package enum TraceExchange {
    static let prefix = "ccl-trace/"
    static let counterKey = prefix + "requests"
    /// Set by each rank whose process answers, held by its store connection: the store deletes
    /// it when that process goes away, so a requester waits only for ranks that can answer.
    static let ranksPrefix = prefix + "rank/"
    static func rankKey(_ rank: Int) -> String { ranksPrefix + "\(rank)" }
    static func requestKey(_ number: Int64) -> String { prefix + "request/\(number)" }
    static func replyPrefix(_ number: Int64) -> String { prefix + "reply/\(number)/" }

    /// What tells a job's recorders from other jobs' on the same node: its store's port (a TCP
    /// store), else this process (ranks that are threads of one process).
    package static func jobKey(_ store: (any Store)?) -> String {
        var base = store
        while let layer = base as? PrefixStore { base = layer.base }
        if let client = base as? TCPStoreClient { return "store port \(client.port)" }
        return "pid \(ProcessIdentity.current().pid)"
    }

    /// How long a rank that timed out waits for the others' reports.
    package static let defaultWait: UInt64 = 2_000_000_000

    /// What a request collected.
    package struct Collected: Sendable {
        /// Every recorder of every process that answered, on this process's clock.
        package var snapshots: [TraceSnapshot]
        /// Replies that could not be read, with why.
        package var refused: [String]
    }

    /// The global ranks whose processes can answer now (their `rankKey` is held).
    package static func answering(_ store: any Store) throws(CCLError) -> Set<Int> {
        Set(try store.keys(prefix: ranksPrefix).compactMap { Int($0.dropFirst(ranksPrefix.count)) })
    }

    /// Whether a process holding `ranks` should answer request bytes: an open request for all,
    /// or for one of them; not one marked done (or anything else).
    static func wants(_ bytes: [UInt8], any ranks: Set<Int>) -> Bool {
        let words = String(decoding: bytes.prefix(1 << 20), as: UTF8.self).split(separator: " ")
        guard words.first == "open" else { return false }
        return words.dropFirst().first == "all" || words.dropFirst().contains { Int($0).map(ranks.contains) ?? false }
    }

    /// Asks the processes of the job on `store` holding ranks of `expecting` (global ranks; nil:
    /// every process), then collects replies until every such rank that can answer has, or `wait`
    /// nanoseconds pass.
    ///
    /// - Throws: `CCLError` when the store cannot be reached; replies that are malformed are
    ///   listed in `refused`, not thrown.
    package static func collect(from store: any Store, expecting: Set<Int>?, wait: UInt64) throws(CCLError) -> Collected {
        let start = monotonicNanoseconds()
        var own: TCPStoreClient?
        if let client = store as? TCPStoreClient {
            own = try client.connectAgain(timeout: .nanoseconds(max(wait, 500_000_000)))
        }
        defer { own?.close() }
        let store = own ?? store
        let live = try answering(store)
        let awaited = expecting.map { $0.intersection(live) } ?? live
        var collected = Collected(snapshots: [], refused: [])
        guard !awaited.isEmpty else { return collected }
        let number = try store.add(counterKey, 1)
        let wanted = expecting == nil ? "all" : awaited.sorted().map(String.init).joined(separator: " ")
        try store.set(requestKey(number), Array("open \(wanted)".utf8))
        let replies = replyPrefix(number)
        var read = Set<String>()
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
                _ = try? store.delete(key)
            }
            if awaited.isSubset(of: Set(collected.snapshots.map(\.rank))) || monotonicNanoseconds() &- start >= wait { break }
            sleepNanoseconds(100_000_000)
        }
        _ = try? store.set(requestKey(number), Array("done".utf8))
        return collected
    }

    /// The verdict on one group instance now, in words, and where it comes from ("on this node",
    /// or "of the group's ranks"): this node's recorders, and when some of `remote` (the group's
    /// global ranks on other nodes) have none here and `store` is given, the reports those ranks
    /// send through it, waited for at most `defaultWait`. Nil when no call of the group is in
    /// flight.
    ///
    /// With `collective` (the number of the call that timed out), one rank asks per stuck call:
    /// the first to claim `verdict/<group>/<round>/<collective>` asks and publishes its verdict
    /// there, the others wait for it (a group whose every rank times out at once makes one
    /// request, not one per rank).
    /// With `mayAsk` false (a rank told by another that it gave up), only a verdict another rank
    /// is making or has made for `collective` is taken; nothing is asked.
    package static func verdict(
        group: String, round: String, remote: Set<Int>, store: (any Store)?, collective: UInt64? = nil, mayAsk: Bool = true
    ) -> (text: String, scope: String)? {
        let local = TraceReader.local().filter { $0.group == group && $0.round == round }
        let unseen = remote.subtracting(local.map(\.rank))
        guard !unseen.isEmpty, let store else { return analyse(local, unseen: [], scope: "on this node") }
        guard let collective else {
            return mayAsk
                ? ask(store, local: local, unseen: unseen, group: group, round: round) : analyse(local, unseen: [], scope: "on this node")
        }
        let key = prefix + "verdict/\(group)/\(round)/\(collective)"
        let mine = Array("asking \(NodeIdentity.hostName())-\(ProcessIdentity.current().pid)-\(Set(local.map(\.rank)).sorted())".utf8)
        let found: [UInt8]?
        if mayAsk {
            found = try? store.compareSet(key, expected: [], desired: mine)
        } else {
            found = (try? store.check([key])) == true ? try? store.get(key, timeout: .seconds(1)) : nil
        }
        guard let holder = found else { return analyse(local, unseen: [], scope: "on this node") }
        if holder == mine {
            let found = ask(store, local: local, unseen: unseen, group: group, round: round)
            _ = try? store.set(key, found.map { Array("v \($0.scope)\u{0}\($0.text)".utf8) } ?? Array("none".utf8))
            return found
        }
        // Another rank asks: take its verdict when it comes.
        let deadline = monotonicNanoseconds() &+ defaultWait &+ 1_000_000_000
        var value = holder
        while value.starts(with: Array("asking ".utf8)), monotonicNanoseconds() < deadline {
            sleepNanoseconds(100_000_000)
            guard let now = try? store.get(key, timeout: .seconds(1)) else { break }
            value = now
        }
        let text = String(decoding: value, as: UTF8.self)
        guard text.hasPrefix("v "), let split = text.firstIndex(of: "\u{0}") else {
            return text == "none" ? nil : analyse(local, unseen: [], scope: "on this node")
        }
        return (String(text[text.index(after: split)...]), String(text[text.index(text.startIndex, offsetBy: 2)..<split]))
    }

    /// The verdict from `local` and the reports of `unseen` through `store`.
    private static func ask(_ store: any Store, local: [TraceSnapshot], unseen: Set<Int>, group: String, round: String) -> (
        text: String, scope: String
    )? {
        guard let reports = try? collect(from: store, expecting: unseen, wait: defaultWait) else {
            return analyse(local, unseen: [], scope: "on this node")
        }
        let theirs = reports.snapshots.filter { $0.group == group && $0.round == round && unseen.contains($0.rank) }
        return analyse(local + theirs, unseen: unseen, scope: "of the group's ranks")
    }

    private static func analyse(_ snapshots: [TraceSnapshot], unseen: Set<Int>, scope: String) -> (text: String, scope: String)? {
        guard let verdict = TraceVerdict.analyse(snapshots, now: monotonicNanoseconds(), remote: unseen), verdict.collective != nil
        else { return nil }
        return (verdict.text, scope)
    }

    /// What `ranks` (global) are doing now, from their recorders on this node and, for those
    /// without one here, their reports through `store` (a TCP store; at most `defaultWait`): per
    /// rank, the call it is inside ("rank 2 is inside allReduce(sum) float32 × 4096 #812 on group
    /// tp0 since 30.1 s") or its last ("rank 2's last call, …, completed 4.0 s ago"). Ranks
    /// nothing is known of are left out; nil when that is all of them. `RankActivity`'s describer.
    package static func activity(store: (any Store)?, of ranks: [Int]) -> String? {
        let wanted = Set(ranks)
        // Global ranks are numbers every job on the node has: only this job's recorders count.
        let job = jobKey(store)
        var snapshots = TraceReader.local().filter { wanted.contains($0.rank) && ($0.job.isEmpty || $0.job == job) }
        let unseen = wanted.subtracting(snapshots.map(\.rank))
        if !unseen.isEmpty, let store, store is TCPStoreClient {
            snapshots += ((try? collect(from: store, expecting: unseen, wait: defaultWait))?.snapshots ?? []).filter {
                unseen.contains($0.rank)
            }
        }
        let now = monotonicNanoseconds()
        let parts = ranks.compactMap { rank -> String? in
            let mine = snapshots.filter { $0.rank == rank }
            guard !mine.isEmpty else { return nil }
            let calls = mine.flatMap { snapshot in snapshot.entries.map { (group: snapshot.group, entry: $0) } }
            let label = { (call: (group: String, entry: TraceEntry)) in
                "\(TraceVerdict.describe(call.entry.call)) #\(call.entry.collective > 0 ? call.entry.collective : call.entry.number) on group \(call.group)"
            }
            if let open = calls.filter({ $0.entry.state == .started }).max(by: { $0.entry.start < $1.entry.start }) {
                return "rank \(rank) is inside \(label(open)) since \(TraceVerdict.seconds(now &- open.entry.start))"
            }
            if let queued = calls.filter({ $0.entry.state == .enqueued }).min(by: { $0.entry.start < $1.entry.start }) {
                return
                    "rank \(rank)'s device is not known to have completed \(label(queued)), enqueued \(TraceVerdict.seconds(now &- queued.entry.start)) ago"
            }
            guard let last = calls.max(by: { ($0.entry.end ?? $0.entry.start) < ($1.entry.end ?? $1.entry.start) }) else {
                return "rank \(rank) has recorded no call"
            }
            return
                "rank \(rank)'s last call, \(label(last)), \(last.entry.state) \(TraceVerdict.seconds(now &- (last.entry.end ?? last.entry.start))) ago"
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}
