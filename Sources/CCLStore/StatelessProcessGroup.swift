import CCLCore

/// A process group made of nothing but a store (vLLM's `StatelessProcessGroup`): ranks exchange
/// small `Codable` objects through keys, for rendezvous-time work (handles, node identities,
/// configuration), never for tensors.
///
/// Contract: every rank calls the collective operations in the same order (each keeps its own
/// sequence numbers); `send`/`recv` pair up in order per (source, destination). A call that
/// times out names the ranks that never arrived. Keys live under `prefix` and are deleted once
/// every rank is past them, so a long job does not grow the store.
///
/// Threading: one thread at a time.
public final class StatelessProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    public let name: String
    public let timeout: Timeout
    /// Global rank of each member, when this is a sub-group.
    public let globalRanks: [Int]?
    private let store: any Store
    private let encoder = CCLBinaryEncoder()
    private let decoder = CCLBinaryDecoder()
    private var broadcastSequence: [Int: Int] = [:]
    private var gatherSequence = 0
    private var barrierSequence = 0
    private var sendSequence: [Int: Int] = [:]
    private var receiveSequence: [Int: Int] = [:]

    /// - Parameters:
    ///   - store: shared by every rank; the group's keys go under `name/`.
    ///   - name: distinguishes groups sharing one store (e.g. "world", "tp0").
    ///   - globalRanks: for a sub-group, the global rank of each member, so errors name processes
    ///     as the job knows them ("rank 5", not "member 1 of tp2").
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
        // A group made again under the same name (a second "world") gets fresh keys: each rank
        // counts its own instances of the name, so its k-th instance meets the others' k-th.
        let instance = try store.add("\(name)/instances/\(rank)", 1)
        self.store = PrefixStore("\(name)/g\(instance - 1)", store)
    }

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

    /// Waits for `keys` (one per rank in `ranks`); a timeout names the ranks whose keys are missing.
    private func waitForRanks(_ ranks: [Int], key: (Int) -> String, operation: String, timeout: Timeout?) throws(CCLError) {
        do {
            try store.wait(ranks.map(key), timeout: timeout ?? self.timeout)
        } catch {
            guard error.code == .timeout else { throw error.context(operation: operation, rank: rank) }
            let missing = ranks.filter { (try? store.check([key($0)])) != true }
            throw CCLError(
                .timeout, operation: "\(operation) on group \(name)", rank: rank,
                peer: missing.map(who).joined(separator: ", "),
                "waited \(timeout ?? self.timeout); " + CCLError.missingRanks(missing.map { globalRanks?[$0] ?? $0 }))
        }
    }

    /// The value `peer` put under `key`; a timeout says the peer "never broadcast", "sent nothing".
    private func get(_ key: String, from peer: Int, operation: String, timeout: Timeout?, silence: String) throws(CCLError) -> [UInt8] {
        do {
            return try store.get(key, timeout: timeout ?? self.timeout)
        } catch {
            guard error.code == .timeout else { throw error.context(operation: operation, rank: rank) }
            throw CCLError(
                .timeout, operation: "\(operation) on group \(name)", rank: rank, peer: who(peer),
                "waited \(timeout ?? self.timeout); \(who(peer)) \(silence)")
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
