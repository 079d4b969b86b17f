import CCLCore
import CCLSystem

/// A store inside one process (threads meet through it), for single-process use and tests.
public final class InMemoryStore: Store, @unchecked Sendable {
    private let monitor = Monitor()
    private var state = StoreState()
    /// The timeout of a `get` or `wait` called without one.
    public let defaultTimeout: Timeout

    /// An empty store; `timeout` is the default of `get` and `wait`.
    public init(timeout: Timeout = .seconds(300)) { defaultTimeout = timeout }

    public func set(_ key: String, _ value: [UInt8]) {
        monitor.withLock {
            state.set(key, value)
            monitor.broadcast()
        }
    }

    public func get(_ key: String, timeout: Timeout?) throws(CCLError) -> [UInt8] {
        try monitor.withLock { () throws(CCLError) in
            try waitLocked([key], timeout: timeout, operation: "store get")
            return state.get(key) ?? []
        }
    }

    public func add(_ key: String, _ delta: Int64) throws(CCLError) -> Int64 {
        try monitor.withLock { () throws(CCLError) in
            defer { monitor.broadcast() }
            return try state.add(key, delta, operation: "store add")
        }
    }

    public func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) -> [UInt8] {
        monitor.withLock {
            defer { monitor.broadcast() }
            return state.compareSet(key, expected: expected, desired: desired)
        }
    }

    public func claim(_ key: String, _ value: [UInt8]) -> [UInt8]? {
        monitor.withLock {
            defer { monitor.broadcast() }
            return state.claim(key, value, holder: ObjectIdentifier(self))
        }
    }

    public func wait(_ keys: [String], timeout: Timeout?) throws(CCLError) {
        try monitor.withLock { () throws(CCLError) in try waitLocked(keys, timeout: timeout, operation: "store wait") }
    }

    public func check(_ keys: [String]) -> Bool { monitor.withLock { state.missing(keys).isEmpty } }
    public func delete(_ key: String) -> Bool { monitor.withLock { state.delete(key) } }
    public func numKeys() -> Int { monitor.withLock { state.count } }
    public func keys(prefix: String) -> [String] { monitor.withLock { state.keys(prefix: prefix) } }

    private func waitLocked(_ keys: [String], timeout: Timeout?, operation: String) throws(CCLError) {
        let limit = timeout ?? defaultTimeout
        let start = monotonicNanoseconds()
        while true {
            let missing = state.missing(keys)
            if missing.isEmpty { return }
            let waited = monotonicNanoseconds() &- start
            if let total = limit.nanoseconds, waited >= total {
                throw missingKeysError(operation: operation, waited: limit.description, missing: missing)
            }
            if Task.isCancelled {
                throw CCLError(.cancelled, operation: operation, "cancelled; missing keys: \(missing.joined(separator: ", "))")
            }
            monitor.wait(nanoseconds: min(limit.nanoseconds.map { $0 - waited } ?? UInt64.max, 100_000_000))
        }
    }
}
