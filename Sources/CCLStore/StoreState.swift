import CCLCore

/// The data and semantics behind every store: a map of byte values, and the rules of `add` and
/// `compareSet`. Not thread-safe: `InMemoryStore` guards it with a lock, the TCP server keeps it
/// on its one event loop.
struct StoreState {
    private(set) var values: [String: [UInt8]] = [:]

    mutating func set(_ key: String, _ value: [UInt8]) { values[key] = value }

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
        values[key] = Array(String(sum).utf8)
        return sum
    }

    mutating func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) -> [UInt8] {
        guard let current = values[key] else {
            if expected.isEmpty {
                values[key] = desired
                return desired
            }
            return expected
        }
        guard current == expected else { return current }
        values[key] = desired
        return desired
    }

    func missing(_ keys: [String]) -> [String] { keys.filter { values[$0] == nil } }

    mutating func delete(_ key: String) -> Bool { values.removeValue(forKey: key) != nil }

    var count: Int { values.count }

    func keys(prefix: String) -> [String] { values.keys.filter { $0.hasPrefix(prefix) }.sorted() }
}

/// "store wait: timed out after 5 s; missing keys: rank/3, rank/5".
func missingKeysError(operation: String, waited: String, missing: [String], peer: String? = nil) -> CCLError {
    let shown = missing.prefix(20).joined(separator: ", ") + (missing.count > 20 ? " and \(missing.count - 20) more" : "")
    return CCLError(.timeout, operation: operation, peer: peer, "timed out after \(waited); missing keys: \(shown)")
}
