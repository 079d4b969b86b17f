import CCLCore
import CCLSystem

/// What other ranks of a job are doing, for the errors of calls that waited for them in vain
/// (the store-based process group's timeouts): the flight recorder installs the one way to tell
/// (`CCLTrace` reads recorders on this node and asks other nodes through the store); until it
/// does, nothing is added.
///
/// Threading: `install` and `describe` from any thread.
package enum RankActivity {
    /// Given the job's store (nil: this node only) and global ranks, a sentence per rank it knows
    /// something about; nil when it knows nothing.
    package typealias Describer = @Sendable (_ store: (any Store)?, _ ranks: [Int]) -> String?

    private static let lock = Monitor()
    /// Guarded by `lock`.
    private nonisolated(unsafe) static var describer: Describer?

    /// Sets the way to tell (the last one installed is used).
    package static func install(_ describe: @escaping Describer) { lock.withLock { describer = describe } }

    /// What `ranks` (global) are doing, through the installed describer; nil when none is
    /// installed or it knows nothing.
    package static func describe(_ ranks: [Int], store: (any Store)?) -> String? {
        guard let describe = lock.withLock({ describer }) else { return nil }
        return describe(store, ranks)
    }
}
