import CCLCore
import CCLSystem
import Logging

/// How waits spin, yield and sleep (defined with the wait loop in the system layer).
public typealias WaitPolicy = CCLSystem.WaitPolicy

/// Settings of one broadcast queue. Sizes must agree between the writer and its readers; they
/// travel in the `MessageQueueHandle`, the rest is per process.
public struct QueueOptions: Sendable {
    /// Payload bytes per ring chunk (a multiple of 64). Messages longer than this stream through
    /// consecutive chunks.
    public var chunkBytes: Int = 1 << 20
    /// Chunks in the ring.
    public var chunkCount: Int = 8
    /// The largest message accepted, on both sides: 4 GiB. Readers reject larger headers or frames
    /// before allocating.
    public var maxMessageBytes: Int = 1 << 32
    /// Default timeout of every blocking call that is not given one.
    public var timeout: Timeout = .seconds(60)
    /// A warning naming the lagging readers (or the silent writer) every this many ns of waiting;
    /// 0 turns warnings off. None in `.indefinite` mode.
    public var stallWarningNanoseconds: UInt64 = 10_000_000_000
    /// How a waiting reader or writer spins, yields and sleeps.
    public var wait = WaitPolicy()
    /// Shared secret for remote readers (`CCL_TOKEN`); a connection without it is refused.
    public var token: String = ""
    /// Address the writer listens on for remote readers; port 0 picks a free port.
    public var remoteHost: String = "127.0.0.1"
    /// Port the writer listens on for remote readers (0: the kernel picks).
    public var remotePort: Int = 0
    /// Bytes the writer may have queued for one slow remote reader before `enqueue` blocks.
    public var remoteBufferBytes: Int = 16 << 20
    /// Where stall reports and dropped connections are logged.
    public var logger = Logger(label: "ccl.queue")
    /// What readers (by queue rank) are doing, for stall reports and timeouts; set by
    /// `MessageQueueEnd.create(from:)` from the group's flight recorders (`RankActivity`).
    package var readerActivity: (@Sendable ([Int]) -> String?)?

    /// The defaults.
    public init() {}
}

/// What a reader needs to attach to a writer, in another process or on another node.
/// Codable, so it travels through a store or a pipe. Carries no secret: the token is per process.
public struct MessageQueueHandle: Codable, Sendable, Equatable {
    /// The writer's rank (for messages).
    public var writerRank: Int
    /// POSIX shared-memory name of the ring, nil when no reader is on the writer's node.
    public var segmentName: String?
    /// Bytes of one chunk of the ring.
    public var chunkBytes: Int
    /// Chunks in the ring.
    public var chunkCount: Int
    /// Ranks of same-node readers, in ring-slot order.
    public var localReaderRanks: [Int]
    /// Ranks of readers on other nodes, which connect to `remoteHost:remotePort`.
    public var remoteReaderRanks: [Int]
    /// Where remote readers connect, when there are any.
    public var remoteHost: String?
    /// The port remote readers connect to, when there are any.
    public var remotePort: Int?
    /// The largest message the writer sends.
    public var maxMessageBytes: Int
}
