import CCLCore
import CCLSystem

/// A process group made of nothing but a store (vLLM's `StatelessProcessGroup`): ranks exchange
/// small `Codable` objects through keys, for rendezvous-time work (handles, node identities,
/// configuration), never for tensors.
///
/// Contract: every rank calls the collective operations in the same order (each keeps its own
/// sequence numbers); `send`/`recv` pair up in order per (source, destination). A call that
/// times out names the ranks that never arrived; one whose peer's process has gone (or closed
/// the group) fails within about a second, saying so.
///
/// Rounds (`GroupRound`): the group forms in a round every member agrees on, and its keys live
/// under `<name>/<round>/`. A rank restarted after its process died starts a new round; the
/// survivors' calls fail naming the rank that went away, and they meet the new process by making
/// the group again. A second live process with the same rank fails at once, naming both. Keys
/// are deleted once every rank is past them, and a round's last keys when its last member
/// closes, so a long job does not grow the store.
///
/// Threading: one thread at a time. `close` (or the last reference going away) leaves the round.
public final class StatelessProcessGroup: @unchecked Sendable {
    /// This process's rank in the group.
    public let rank: Int
    /// How many ranks the group has.
    public let worldSize: Int
    /// The group's name: its keys go under `<name>/<round>/` in the store it was made on.
    public let name: String
    /// The timeout of every call made without one, and of forming the group.
    public let timeout: Timeout
    /// Global rank of each member, when this is a sub-group.
    public let globalRanks: [Int]?
    /// The store the job's processes share (the one given, without its `PrefixStore` layers).
    package let jobStore: any Store
    private let store: any Store
    private let round: GroupRound
    private var closed = false
    private let encoder = CCLBinaryEncoder()
    private let decoder = CCLBinaryDecoder()
    private var broadcastSequence: [Int: Int] = [:]
    private var gatherSequence = 0
    private var barrierSequence = 0
    private var sendSequence: [Int: Int] = [:]
    private var receiveSequence: [Int: Int] = [:]

    /// Joins the group: returns once every rank has joined the same round (see the type's
    /// comment). Collective: every rank calls it with the same name and size.
    ///
    /// - Parameters:
    ///   - rank: this process's rank in the group, in `0..<worldSize`.
    ///   - worldSize: how many ranks the group has.
    ///   - store: shared by every rank; the group's keys go under `name/`.
    ///   - name: distinguishes groups sharing one store (e.g. "world", "tp0").
    ///   - timeout: how long joining, and every call made without a timeout, may wait.
    ///   - globalRanks: for a sub-group, the global rank of each member, so errors name processes
    ///     as the job knows them ("rank 5", not "member 1 of tp2").
    /// - Throws: `CCLError` when the rank is out of range, another live process holds it, or the
    ///   others do not join within `timeout` (naming them).
    public init(
        rank: Int, worldSize: Int, store: any Store, name: String = "world", timeout: Timeout = .seconds(300),
        globalRanks: [Int]? = nil
    ) throws(CCLError) {
        guard worldSize >= 1, (0..<worldSize).contains(rank) else {
            throw CCLError(.invalidArgument, operation: "create group \(name)", rank: rank, "rank \(rank) is outside 0..<\(worldSize)")
        }
        self.rank = rank
        self.worldSize = worldSize
        self.name = name
        self.timeout = timeout
        self.globalRanks = globalRanks?.count == worldSize ? globalRanks : nil
        round = try GroupRound.join(
            name: name, rank: rank, worldSize: worldSize, globalRanks: self.globalRanks, store: store, timeout: timeout)
        self.store = round.store
        var base = store
        while let layer = base as? PrefixStore { base = layer.base }
        jobStore = base
    }

    /// The id of the round this group formed in.
    public var roundID: String { round.id }

    /// Leaves the group's round: this rank's claim goes, and the last member out deletes the
    /// round's keys. Best effort (the store may already be gone at the end of a job); idempotent.
    /// Calls after it fail.
    public func close() {
        guard !closed else { return }
        closed = true
        try? round.leave()
    }

    deinit { close() }

    /// A group of some of this group's members (their indices here, in the new group's order),
    /// with keys under this group's. Called by exactly those members, with the same arguments.
    public func subgroup(_ name: String, members: [Int]) throws(CCLError) -> StatelessProcessGroup {
        guard let index = members.firstIndex(of: rank), Set(members).count == members.count, members.allSatisfy((0..<worldSize).contains)
        else {
            throw CCLError(
                .invalidArgument, operation: "create sub-group \(name) of \(self.name)", rank: rank,
                "members \(members) must be distinct ranks of 0..<\(worldSize) including this one")
        }
        let names = members.map { globalRanks?[$0] ?? $0 }
        return try StatelessProcessGroup(
            rank: index, worldSize: members.count, store: store, name: name, timeout: timeout, globalRanks: names)
    }

    /// "rank 5" for member 1 of a sub-group whose global ranks are [4, 5].
    func who(_ member: Int) -> String {
        guard let globalRanks else { return "rank \(member)" }
        return "rank \(globalRanks[member])"
    }

    // MARK: encoding

    private func encode<T: Encodable>(_ value: T, operation: String) throws(CCLError) -> [UInt8] {
        do {
            return try encoder.encode(value)
        } catch {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "cannot encode \(T.self)", cause: error)
        }
    }

    private func decode<T: Decodable>(_ bytes: [UInt8], as type: T.Type, operation: String, peer: Int) throws(CCLError) -> T {
        do {
            return try decoder.decode(T.self, from: bytes)
        } catch {
            throw CCLError(
                .malformed, operation: operation, rank: rank, peer: who(peer), "\(who(peer)) sent something that is not a \(T.self)",
                cause: error)
        }
    }

    /// How often a waiting call checks that the ranks it waits for are still in the group.
    static let livenessSlice: UInt64 = 500_000_000

    /// Waits for `keys` (one per rank in `ranks`) in slices; between slices, a rank that left the
    /// group (its claim is gone) fails the call at once. A timeout names the ranks whose keys are
    /// missing, `silence` saying how ("never arrived" by default).
    private func waitForRanks(
        _ ranks: [Int], key: (Int) -> String, operation: String, timeout: Timeout?, silence: String? = nil
    ) throws(CCLError) {
        guard !closed else { throw CCLError(.closed, operation: "\(operation) on group \(name)", rank: rank, "the group was closed") }
        let limit = timeout ?? self.timeout
        let deadline = limit.nanoseconds.map { monotonicNanoseconds() &+ $0 }
        while true {
            let remaining = deadline.map { $0 > monotonicNanoseconds() ? $0 - monotonicNanoseconds() : 0 }
            do {
                try store.wait(ranks.map(key), timeout: .nanoseconds(min(remaining ?? Self.livenessSlice, Self.livenessSlice)))
                return
            } catch {
                guard error.code == .timeout else { throw error.context(operation: operation, rank: rank) }
            }
            let missing = ranks.filter { (try? store.check([key($0)])) != true }
            let departed = missing.filter { (try? store.check(["member/\($0)"])) == false }
            if !departed.isEmpty { throw departure(departed, operation: operation) }
            guard remaining.map({ $0 > Self.livenessSlice }) ?? true else {
                var text =
                    silence.map { "\(missing.map(who).joined(separator: ", ")) \($0)" }
                    ?? CCLError.missingRanks(missing.map { globalRanks?[$0] ?? $0 })
                // What they are doing instead, from their flight recorders, when this process has them.
                if let activity = RankActivity.describe(missing.map { globalRanks?[$0] ?? $0 }, store: jobStore) {
                    text += "; flight recorders: \(activity)"
                }
                throw CCLError(
                    .timeout, operation: "\(operation) on group \(name)", rank: rank, peer: missing.map(who).joined(separator: ", "),
                    "waited \(limit); " + text)
            }
        }
    }

    /// "rank 1 left the group before this call (its process exited, or it closed the group)", with what to do
    /// when a restarted rank is already waiting in a new round.
    private func departure(_ departed: [Int], operation: String) -> CCLError {
        let names = departed.map(who).joined(separator: ", ")
        var successor = ""
        if (try? round.isCurrent()) == false {
            let waiting = ((try? round.successors()) ?? [:]).filter { departed.contains($0.key) }.sorted { $0.key < $1.key }
            let who = waiting.map { "\(self.who($0.key)) is now \($0.value)" }.joined(separator: ", ")
            successor =
                "; a new round of the group has started" + (who.isEmpty ? " (a restarted rank waits in it)" : " (\(who), waiting in it)")
                + ": make the group again to meet it"
        }
        return CCLError(
            .peerDead, operation: "\(operation) on group \(name)", rank: rank, peer: names,
            CCLError.missingRanks(
                departed.map { globalRanks?[$0] ?? $0 }, "left the group before this call (its process exited, or it closed the group)")
                + successor)
    }

    /// The value `peer` put under `key`; a timeout says the peer "never broadcast", "sent nothing".
    private func get(_ key: String, from peer: Int, operation: String, timeout: Timeout?, silence: String) throws(CCLError) -> [UInt8] {
        try waitForRanks([peer], key: { _ in key }, operation: operation, timeout: timeout, silence: silence)
        do {
            return try store.get(key, timeout: .seconds(5))
        } catch {
            throw error.context(operation: operation, rank: rank)
        }
    }

    // MARK: collectives

    /// Every rank gets `value` from `root` (only the root's argument is used; others pass nil).
    public func broadcastObject<T: Codable>(_ value: T?, from root: Int, timeout: Timeout? = nil) throws(CCLError) -> T {
        let operation = "broadcastObject from \(who(root))"
        guard (0..<worldSize).contains(root) else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "root \(root) is outside 0..<\(worldSize)")
        }
        let sequence = broadcastSequence[root, default: 0]
        broadcastSequence[root] = sequence + 1
        let key = "broadcast/\(root)/\(sequence)"
        if rank == root {
            guard let value else {
                throw CCLError(.invalidArgument, operation: operation, rank: rank, "the root must pass the value")
            }
            try store.set(key, try encode(value, operation: operation))
            if worldSize == 1 { _ = try? store.delete(key) }
            return value
        }
        let bytes = try get(key, from: root, operation: operation, timeout: timeout, silence: "never broadcast")
        // The last reader removes the value.
        // Cleanup is best effort: the store may already be going away at the end of a job.
        if (try? store.add(key + "/read", 1)) == Int64(worldSize - 1) {
            _ = try? store.delete(key)
            _ = try? store.delete(key + "/read")
        }
        return try decode(bytes, as: T.self, operation: operation, peer: root)
    }

    /// Every rank's `value`, in rank order.
    public func allGatherObject<T: Codable>(_ value: T, timeout: Timeout? = nil) throws(CCLError) -> [T] {
        let operation = "allGatherObject"
        let sequence = gatherSequence
        gatherSequence += 1
        let key = { (r: Int) in "gather/\(sequence)/\(r)" }
        try store.set(key(rank), try encode(value, operation: operation))
        try waitForRanks(Array(0..<worldSize), key: key, operation: operation, timeout: timeout)
        var values: [T] = []
        values.reserveCapacity(worldSize)
        for r in 0..<worldSize {
            values.append(try decode(try store.get(key(r), timeout: timeout ?? self.timeout), as: T.self, operation: operation, peer: r))
        }
        // Every rank has finished the previous gather (it set this one's key after): drop ours.
        if sequence > 0 { _ = try? store.delete("gather/\(sequence - 1)/\(rank)") }
        return values
    }

    /// Returns once every rank has called `barrier` as often as this one.
    public func barrier(timeout: Timeout? = nil) throws(CCLError) {
        let sequence = barrierSequence
        barrierSequence += 1
        let key = { (r: Int) in "barrier/\(sequence)/\(r)" }
        try store.set(key(rank), [1])
        try waitForRanks(Array(0..<worldSize), key: key, operation: "barrier", timeout: timeout)
        if sequence > 0 { _ = try? store.delete("barrier/\(sequence - 1)/\(rank)") }
    }

    /// Sends `value` to `destination` (does not wait for it to be received).
    public func sendObject<T: Codable>(_ value: T, to destination: Int) throws(CCLError) {
        let operation = "sendObject to rank \(destination)"
        guard (0..<worldSize).contains(destination), destination != rank else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "destination must be another rank in 0..<\(worldSize)")
        }
        let sequence = sendSequence[destination, default: 0]
        sendSequence[destination] = sequence + 1
        try store.set("p2p/\(rank)/\(destination)/\(sequence)", try encode(value, operation: operation))
    }

    /// The next value `source` sent to this rank.
    public func recvObject<T: Codable>(_ type: T.Type, from source: Int, timeout: Timeout? = nil) throws(CCLError) -> T {
        let operation = "recvObject from rank \(source)"
        guard (0..<worldSize).contains(source), source != rank else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "source must be another rank in 0..<\(worldSize)")
        }
        let sequence = receiveSequence[source, default: 0]
        let key = "p2p/\(source)/\(rank)/\(sequence)"
        let bytes = try get(key, from: source, operation: operation, timeout: timeout, silence: "sent nothing")
        receiveSequence[source] = sequence + 1
        _ = try? store.delete(key)
        return try decode(bytes, as: T.self, operation: operation, peer: source)
    }
}
