import CCLCore

/// The data and semantics behind every store: a map of byte values, and the rules of `add`,
/// `compareSet` and `claim`. Not thread-safe: `InMemoryStore` guards it with a lock, the TCP
/// server keeps it on its one event loop.
struct StoreState {
    private(set) var values: [String: [UInt8]] = [:]
    /// Who holds each claimed key, and the keys each holder claimed (for `releaseClaims`).
    private var claimHolder: [String: ObjectIdentifier] = [:]
    private var claimsHeld: [ObjectIdentifier: Set<String>] = [:]

    mutating func set(_ key: String, _ value: [UInt8]) {
        disown(key)
        values[key] = value
    }

    /// Sets `key` to `value`, held by `holder`, unless it is already set: nil when it was set
    /// here, else the current value. Setting or deleting the key later ends the claim.
    mutating func claim(_ key: String, _ value: [UInt8], holder: ObjectIdentifier) -> [UInt8]? {
        if let current = values[key] { return current }
        values[key] = value
        claimHolder[key] = holder
        claimsHeld[holder, default: []].insert(key)
        return nil
    }

    /// `holder` went away: the keys it still holds are deleted. Returns how many.
    mutating func releaseClaims(of holder: ObjectIdentifier) -> Int {
        guard let keys = claimsHeld.removeValue(forKey: holder) else { return 0 }
        for key in keys {
            claimHolder[key] = nil
            values[key] = nil
        }
        return keys.count
    }

    private mutating func disown(_ key: String) {
        guard let holder = claimHolder.removeValue(forKey: key) else { return }
        claimsHeld[holder]?.remove(key)
        if claimsHeld[holder]?.isEmpty == true { claimsHeld[holder] = nil }
    }

    func get(_ key: String) -> [UInt8]? { values[key] }

    mutating func add(_ key: String, _ delta: Int64, operation: String) throws(CCLError) -> Int64 {
        var current: Int64 = 0
        if let stored = values[key] {
            guard let parsed = Int64(String(decoding: stored, as: UTF8.self)) else {
                throw CCLError(.invalidArgument, operation: operation, "key '\(key)' holds \(stored.count) bytes that are not an integer")
            }
            current = parsed
        }
        let (sum, overflow) = current.addingReportingOverflow(delta)
        guard !overflow else {
            throw CCLError(.invalidArgument, operation: operation, "key '\(key)': \(current) + \(delta) overflows Int64")
        }
        set(key, Array(String(sum).utf8))
        return sum
    }

    mutating func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) -> [UInt8] {
        guard let current = values[key] else {
            if expected.isEmpty {
                set(key, desired)
                return desired
            }
            return expected
        }
        guard current == expected else { return current }
        set(key, desired)
        return desired
    }

    func missing(_ keys: [String]) -> [String] { keys.filter { values[$0] == nil } }

    mutating func delete(_ key: String) -> Bool {
        disown(key)
        return values.removeValue(forKey: key) != nil
    }

    var count: Int { values.count }

    func keys(prefix: String) -> [String] { values.keys.filter { $0.hasPrefix(prefix) }.sorted() }

    /// Up to `limit` keys starting with `prefix` that sort after `after` (all when nil), sorted,
    /// and whether more follow: one page of a listing of any length.
    func keys(prefix: String, after: String?, limit: Int) -> (keys: [String], more: Bool) {
        let all = values.keys.filter { key in key.hasPrefix(prefix) && after.map { key > $0 } ?? true }.sorted()
        return (Array(all.prefix(limit)), all.count > limit)
    }
}

/// "store wait: timed out after 5 s; missing keys: rank/3, rank/5".
func missingKeysError(operation: String, waited: String, missing: [String], peer: String? = nil) -> CCLError {
    let shown = missing.prefix(20).joined(separator: ", ") + (missing.count > 20 ? " and \(missing.count - 20) more" : "")
    return CCLError(.timeout, operation: operation, peer: peer, "timed out after \(waited); missing keys: \(shown)")
}
