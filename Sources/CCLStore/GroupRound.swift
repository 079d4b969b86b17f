import CCLCore
import CCLSystem

/// The round of a group that this process joined: the group's keys live under
/// `<name>/<round id>/`, so nothing of an earlier round (a dead predecessor's data, a closed
/// group's last keys) is ever read as this round's.
///
/// Keys (under the store the group was made on):
/// ```
/// <name>/round                 the current round's id (16 hex digits, random: ids never repeat)
/// <name>/<id>/member/<rank>    a claim (`Store.claim`): the live process holding the rank; the
///                              store deletes it when that process's connection closes
/// <name>/<id>/joined/<rank>    who took the rank in this round (stays after a death)
/// <name>/<id>/sealed           "complete" once every rank is there, "abandoned" if it never will be
/// <name>/<id>/duplicate/<rank> a second live process that asked for the rank while the round formed
/// <name>/<id>/...              the group's data
/// ```
/// Joining a round: claim the rank's member key. Held by another live process: a duplicate rank,
/// an error naming both (after up to a second, in case the holder has just died and the store has
/// not seen its connection close yet); while the round forms, every member fails with it too. Held by a complete round's member in this same process (a
/// group made again under its name while the old one is still open): a new round. Free, but the
/// rank was already taken in this round (its holder died or closed): a new round, which the others
/// see and follow while they wait. Otherwise wait until rank 0 sees every rank's member and joined
/// keys name the same holder and seals the round "complete". A round that stops being current while
/// members wait is sealed "abandoned", and they join the current one.
///
/// Clean-up: whoever leaves a round last (no member claims left) deletes its keys and, when it is
/// still current, the round pointer; the member of rank 0 of a newly complete round deletes the
/// rounds that no live process holds any more (everyone in them died).
struct GroupRound {
    let name: String
    let id: String
    let rank: Int
    let worldSize: Int
    /// This group object's holder text, in its member and joined keys.
    let holder: String
    let base: any Store
    /// Global rank of each member (errors name global ranks), when this is a sub-group.
    let globalRanks: [Int]?
    /// The store under `<name>/<id>`, where the group's keys go.
    var store: PrefixStore { PrefixStore("\(name)/\(id)", base) }

    /// Polling interval while waiting for members (each poll is one store wait).
    static let slice: UInt64 = 100_000_000
    /// How long a rank held by another process is retried before it counts as a duplicate.
    static let duplicateGrace: UInt64 = 1_000_000_000

    /// Joins the current round of group `name` as `rank`, waiting until every rank is there.
    static func join(name: String, rank: Int, worldSize: Int, globalRanks: [Int]?, store base: any Store, timeout: Timeout)
        throws(CCLError) -> GroupRound
    {
        let global = globalRanks?[rank] ?? rank
        let operation = "join group \(name) as rank \(global)"
        let holder = Holder.make()
        let deadline = timeout.nanoseconds.map { monotonicNanoseconds() &+ $0 }
        var heldSince: UInt64?
        while true {
            let id = try currentRound(name, base)
            let round = GroupRound(
                name: name, id: id, rank: rank, worldSize: worldSize, holder: holder, base: base, globalRanks: globalRanks)
            let store = round.store
            if let current = try store.claim("member/\(rank)", Array(holder.utf8)) {
                let other = String(decoding: current, as: UTF8.self)
                if Holder.sameProcess(other, holder), try round.seal() == .complete {
                    try round.startNext()
                    continue
                }
                let now = monotonicNanoseconds()
                let since = heldSince ?? now
                heldSince = since
                guard now &- since >= duplicateGrace else {
                    try round.pause(until: deadline, operation: operation)
                    continue
                }
                // While the round forms, its members fail too (the job is misconfigured); a
                // formed round goes on, and only this late process is turned away.
                if try round.seal() != .complete { try store.set("duplicate/\(rank)", Array(holder.utf8)) }
                throw CCLError(
                    .invalidArgument, operation: operation, rank: global, peer: Holder.describe(other),
                    "rank \(global) of group \(name) is held by \(Holder.describe(other)), still connected to the store; this process (\(Holder.describe(holder))) cannot take it too. Was the rank given to two processes?"
                )
            }
            if try store.check(["joined/\(rank)"]) {
                // Taken before in this round by a process that has gone: its data must not be
                // mistaken for ours.
                _ = try store.delete("member/\(rank)")
                try round.startNext()
                continue
            }
            try store.set("joined/\(rank)", Array(holder.utf8))
            switch try round.awaitMembers(until: deadline, operation: operation) {
            case .complete:
                if rank == 0 { round.deleteDeadRounds() }
                return round
            case .abandoned, .open:
                try round.leave()
            }
        }
    }

    /// The id of the group's current round, starting one when there is none.
    private static func currentRound(_ name: String, _ base: any Store) throws(CCLError) -> String {
        String(decoding: try base.compareSet("\(name)/round", expected: [], desired: Array(newID().utf8)), as: UTF8.self)
    }

    private static func newID() -> String {
        let value = UInt64.random(in: 0...UInt64.max)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    enum Seal: String {
        case complete, abandoned, open
    }

    /// The round's seal ("open" while not yet decided).
    func seal() throws(CCLError) -> Seal {
        guard let value = try Self.value(of: "sealed", in: store) else { return .open }
        return Seal(rawValue: String(decoding: value, as: UTF8.self)) ?? .open
    }

    /// The value of `key` now, nil when it is not set (never waits: another member may delete
    /// a key between a check and a read).
    static func value(of key: String, in store: any Store) throws(CCLError) -> [UInt8]? {
        do {
            return try store.get(key, timeout: .nanoseconds(0))
        } catch {
            guard error.code == .timeout else { throw error }
            return nil
        }
    }

    /// Seals the round `seal` unless it is sealed already; returns the seal that holds.
    private func close(as seal: Seal) throws(CCLError) -> Seal {
        let result = try store.compareSet("sealed", expected: [], desired: Array(seal.rawValue.utf8))
        return Seal(rawValue: String(decoding: result, as: UTF8.self)) ?? .open
    }

    /// Makes a new round current, when this one still is (another process may have already).
    private func startNext() throws(CCLError) {
        _ = try close(as: .abandoned)
        _ = try base.compareSet("\(name)/round", expected: Array(id.utf8), desired: Array(Self.newID().utf8))
    }

    /// Waits until the round is sealed, sealing it "complete" when every rank's member and joined
    /// keys name the same live holder, or "abandoned" when another round became current.
    private func awaitMembers(until deadline: UInt64?, operation: String) throws(CCLError) -> Seal {
        let joined = (0..<worldSize).map { "joined/\($0)" }
        while true {
            let duplicates = try store.keys(prefix: "duplicate/")
            if !duplicates.isEmpty {
                if try close(as: .abandoned) == .complete { return .complete }
                let error = try duplicateError(duplicates, operation: operation)
                try leave()
                throw error
            }
            switch try seal() {
            case .complete: return .complete
            case .abandoned: return .abandoned
            case .open: break
            }
            let remaining = deadline.map { $0 > monotonicNanoseconds() ? $0 - monotonicNanoseconds() : 0 }
            if remaining == 0 {
                let seal = try close(as: .abandoned)
                if seal == .complete { return .complete }
                try leave()
                throw try timeoutError(operation: operation)
            }
            let slice = min(remaining ?? Self.slice, Self.slice)
            // Rank 0 checks the members and seals; the others wait for the seal (a few requests
            // per rank, however large the group).
            if rank == 0 {
                let allJoined = (try? store.wait(joined, timeout: .nanoseconds(slice))) != nil
                if allJoined, try everyoneHere() {
                    _ = try close(as: .complete)
                } else if try !isCurrent() {
                    _ = try close(as: .abandoned)
                } else if allJoined {
                    // Every rank joined, but one has gone since: wait for its successor's new round.
                    sleepNanoseconds(slice)
                }
            } else if (try? store.wait(["sealed"], timeout: .nanoseconds(slice))) == nil, try !isCurrent() {
                _ = try close(as: .abandoned)
            }
        }
    }

    /// The processes waiting in a newer round of the group, by member ("pid 907 on node-a"), when
    /// this round is no longer current; empty otherwise.
    func successors() throws(CCLError) -> [Int: String] {
        guard let current = try Self.value(of: "\(name)/round", in: base), current != Array(id.utf8) else { return [:] }
        let newer = PrefixStore("\(name)/\(String(decoding: current, as: UTF8.self))", base)
        var found: [Int: String] = [:]
        for member in 0..<worldSize {
            if let holder = try Self.value(of: "joined/\(member)", in: newer) {
                found[member] = Holder.describe(String(decoding: holder, as: UTF8.self))
            }
        }
        return found
    }

    /// Whether this round is still the group's current one.
    func isCurrent() throws(CCLError) -> Bool {
        try Self.value(of: "\(name)/round", in: base) == Array(id.utf8)
    }

    /// Every rank is held by the live process that joined it.
    private func everyoneHere() throws(CCLError) -> Bool {
        for member in 0..<worldSize {
            guard let holder = try Self.value(of: "member/\(member)", in: store),
                try Self.value(of: "joined/\(member)", in: store) == holder
            else { return false }
        }
        return true
    }

    private func global(_ member: Int) -> Int { globalRanks?[member] ?? member }

    /// "rank 1 of group world was started twice: pid 812 on a and pid 907 on b".
    private func duplicateError(_ keys: [String], operation: String) throws(CCLError) -> CCLError {
        var parts: [String] = []
        var ranks: [String] = []
        for key in keys {
            guard let member = Int(key.dropFirst("duplicate/".count)) else { continue }
            let first = try Self.value(of: "joined/\(member)", in: store).map { Holder.describe(String(decoding: $0, as: UTF8.self)) }
            let second = try Self.value(of: key, in: store).map { Holder.describe(String(decoding: $0, as: UTF8.self)) }
            ranks.append("rank \(global(member))")
            parts.append("rank \(global(member)) was started twice: \(first ?? "one process") and \(second ?? "another")")
        }
        return CCLError(
            .invalidArgument, operation: operation, rank: global(rank), peer: ranks.joined(separator: ", "),
            "group \(name) cannot form: " + parts.joined(separator: "; ") + " (give each process its own rank)")
    }

    /// Which ranks are missing, and why, when the round did not complete in time.
    private func timeoutError(operation: String) throws(CCLError) -> CCLError {
        var absent: [Int] = []
        var gone: [Int] = []
        for member in 0..<worldSize where member != rank {
            if try !store.check(["joined/\(member)"]) {
                absent.append(member)
            } else if try !store.check(["member/\(member)"]) {
                gone.append(member)
            }
        }
        var parts: [String] = []
        if !absent.isEmpty { parts.append(CCLError.missingRanks(absent.map(global), "never joined")) }
        if !gone.isEmpty {
            parts.append(CCLError.missingRanks(gone.map(global), "joined and then went away (its process exited) with no successor"))
        }
        return CCLError(
            .timeout, operation: operation, rank: global(rank),
            peer: (absent + gone).map(global).sorted().map { "rank \($0)" }.joined(separator: ", "),
            "round \(id) of group \(name) did not complete: " + parts.joined(separator: "; "))
    }

    /// Sleeps one slice (bounded by the deadline) before the claim is tried again.
    private func pause(until deadline: UInt64?, operation: String) throws(CCLError) {
        if let deadline, monotonicNanoseconds() >= deadline {
            throw CCLError(
                .timeout, operation: operation, rank: global(rank), "rank \(global(rank)) of group \(name) stayed held by another process")
        }
        sleepNanoseconds(50_000_000)
    }

    /// Gives up this rank's place in the round; the last one out deletes the round's keys.
    /// In an incomplete round the joined key goes too (nothing was written under it).
    func leave() throws(CCLError) {
        if try seal() != .complete { _ = try store.delete("joined/\(rank)") }
        if try Self.value(of: "member/\(rank)", in: store) == Array(holder.utf8) {
            _ = try store.delete("member/\(rank)")
        }
        guard try store.keys(prefix: "member/").isEmpty else { return }
        try deleteRound(id)
    }

    /// Deletes every key of round `round` and, when it is current, the round pointer.
    private func deleteRound(_ round: String) throws(CCLError) {
        for key in try base.keys(prefix: "\(name)/\(round)/") { _ = try base.delete(key) }
        if try Self.value(of: "\(name)/round", in: base) == Array(round.utf8) {
            _ = try base.delete("\(name)/round")
        }
    }

    /// Deletes the other rounds of this group that no live process holds (best effort).
    private func deleteDeadRounds() {
        guard let keys = try? base.keys(prefix: "\(name)/") else { return }
        var rounds = Set<Substring>()
        var held = Set<Substring>()
        for key in keys {
            let parts = key.dropFirst(name.count + 1).split(separator: "/", maxSplits: 2)
            guard parts.count >= 2, parts[0].count == 16, parts[0] != id else { continue }
            rounds.insert(parts[0])
            if parts[1] == "member" { held.insert(parts[0]) }
        }
        for round in rounds.subtracting(held) {
            for key in keys where key.hasPrefix("\(name)/\(round)/") { _ = try? base.delete(key) }
        }
    }
}

/// Who holds a rank: "pid 812 on host-a, process 5f0c…, group 91aa…". The process part tells a
/// group made again in the same process from another process; the group part tells two group
/// objects apart.
enum Holder {
    private static let processNonce = String(UInt64.random(in: 0...UInt64.max), radix: 16)

    static func make() -> String {
        let group = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return "pid \(ProcessIdentity.current().pid) on \(NodeIdentity.hostName()), process \(processNonce), group \(group)"
    }

    static func sameProcess(_ a: String, _ b: String) -> Bool { processPart(a) == processPart(b) }

    private static func processPart(_ holder: String) -> Substring? {
        holder.split(separator: ",").first { $0.hasPrefix(" process ") }
    }

    /// "pid 812 on host-a": the part a person needs.
    static func describe(_ holder: String) -> String {
        String(holder.split(separator: ",").first ?? Substring(holder))
    }
}
