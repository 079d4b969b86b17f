import CCLCore

/// A key-value store for rendezvous (torch's `Store`): many processes meet through it to find
/// each other, exchange handles and count arrivals.
///
/// Values are bytes. Every call that waits takes a timeout (nil: the store's default) and, when
/// it expires, fails naming the keys still missing. Implementations: `TCPStoreClient` (a server
/// in rank 0 or standalone), `InMemoryStore` (one process), `PrefixStore` (a namespace in
/// another store).
///
/// Threading: implementations are safe to call from any thread.
public protocol Store: Sendable {
    /// Sets `key` to `value`, waking whoever waits for it.
    func set(_ key: String, _ value: [UInt8]) throws(CCLError)
    /// The value of `key`, waiting until it is set.
    func get(_ key: String, timeout: Timeout?) throws(CCLError) -> [UInt8]
    /// Adds `delta` to the integer in `key` (absent counts as 0) and returns the new value.
    /// The value is stored as decimal text, as torch does.
    func add(_ key: String, _ delta: Int64) throws(CCLError) -> Int64
    /// torch's `compare_set`: when `key` holds `expected`, or is absent and `expected` is empty,
    /// sets it to `desired` and returns `desired`; otherwise returns the current value (or
    /// `expected` when the key is absent).
    func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) throws(CCLError) -> [UInt8]
    /// Sets `key` to `value` unless it is already set, and holds it for this client: the store
    /// deletes the key when the client goes away (a TCP store: its connection closes, as when
    /// the process exits or is killed), unless it was set or deleted since. Returns nil when
    /// this call set it, else the value already there (the holder's, for a claim).
    /// `InMemoryStore`'s clients are threads of one process: its claims last until deleted.
    func claim(_ key: String, _ value: [UInt8]) throws(CCLError) -> [UInt8]?
    /// Returns once every key is set; the timeout error lists those still missing.
    func wait(_ keys: [String], timeout: Timeout?) throws(CCLError)
    /// Whether every key is set, without waiting.
    func check(_ keys: [String]) throws(CCLError) -> Bool
    /// Removes `key`; returns whether it was there.
    func delete(_ key: String) throws(CCLError) -> Bool
    /// How many keys the store holds.
    func numKeys() throws(CCLError) -> Int
    /// Every key that starts with `prefix`, sorted (for diagnosis: who registered, what is
    /// missing; for clean-up). A TCP store fetches a long list in pages.
    func keys(prefix: String) throws(CCLError) -> [String]
}

extension Store {
    /// `get` with the store's default timeout.
    public func get(_ key: String) throws(CCLError) -> [UInt8] { try get(key, timeout: nil) }
    /// `wait` with the store's default timeout.
    public func wait(_ keys: [String]) throws(CCLError) { try wait(keys, timeout: nil) }
    /// Sets `key` to the UTF-8 bytes of `value`.
    public func set(_ key: String, _ value: String) throws(CCLError) { try set(key, Array(value.utf8)) }
}

/// Keys of another store under `prefix + "/"`, so many groups share one store without clashes
/// (torch's `PrefixStore`). Errors name the full key.
public struct PrefixStore: Store {
    /// The namespace, without the trailing "/".
    public let prefix: String
    /// The store the namespace lives in.
    public let base: any Store

    /// Keys of `base` under `prefix + "/"`.
    public init(_ prefix: String, _ base: any Store) {
        self.prefix = prefix
        self.base = base
    }

    private func full(_ key: String) -> String { prefix + "/" + key }

    public func set(_ key: String, _ value: [UInt8]) throws(CCLError) { try base.set(full(key), value) }
    public func get(_ key: String, timeout: Timeout?) throws(CCLError) -> [UInt8] { try base.get(full(key), timeout: timeout) }
    public func add(_ key: String, _ delta: Int64) throws(CCLError) -> Int64 { try base.add(full(key), delta) }
    public func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) throws(CCLError) -> [UInt8] {
        try base.compareSet(full(key), expected: expected, desired: desired)
    }
    public func claim(_ key: String, _ value: [UInt8]) throws(CCLError) -> [UInt8]? { try base.claim(full(key), value) }
    public func wait(_ keys: [String], timeout: Timeout?) throws(CCLError) { try base.wait(keys.map(full), timeout: timeout) }
    public func check(_ keys: [String]) throws(CCLError) -> Bool { try base.check(keys.map(full)) }
    public func delete(_ key: String) throws(CCLError) -> Bool { try base.delete(full(key)) }
    /// Counts only this prefix's keys.
    public func numKeys() throws(CCLError) -> Int { try base.keys(prefix: prefix + "/").count }
    public func keys(prefix: String) throws(CCLError) -> [String] {
        try base.keys(prefix: full(prefix)).map { String($0.dropFirst(self.prefix.count + 1)) }
    }
}
