/// The one public error type of swift-ccl.
///
/// Every error names the operation that failed, the rank that saw it and, where there is one, the
/// peer involved, plus the cause underneath (a syscall error, a decoding failure).
/// `description` reads as one sentence a user can act on:
/// `dequeue (rank 2, peer writer pid 812): timed out after 5 s: the writer sent nothing`.
public struct CCLError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name ("timeout", "peerDead"), as errors print it.
        public let name: String
        /// A code of your own (a backend's, say).
        public init(_ name: String) { self.name = name }
        /// The name.
        public var description: String { name }

        /// A blocking call ran past its timeout.
        public static let timeout = Code("timeout")
        /// The waiting task was cancelled.
        public static let cancelled = Code("cancelled")
        /// A peer process died or its connection closed.
        public static let peerDead = Code("peerDead")
        /// The call did its work for every other peer, but one peer was lost (died, fell behind, or
        /// disconnected) and is left behind. Do not retry: the others already have the data.
        public static let readerLost = Code("readerLost")
        /// The other side closed the queue or connection in an orderly way.
        public static let closed = Code("closed")
        /// Bytes that do not follow the format (a frame, a segment header, an encoded value).
        public static let malformed = Code("malformed")
        /// A size that does not fit a limit (message, frame, shared memory).
        public static let tooLarge = Code("tooLarge")
        /// A caller passed a value that cannot work (a bad rank, a zero size).
        public static let invalidArgument = Code("invalidArgument")
        /// A resource of the machine is short (/dev/shm full, no memory).
        public static let resourceExhausted = Code("resourceExhausted")
        /// A peer failed authentication (wrong token).
        public static let unauthenticated = Code("unauthenticated")
        /// Something this needs is not available here (a backend, a library, a device).
        public static let unavailable = Code("unavailable")
        /// A system call failed; `cause` holds the call and errno.
        public static let system = Code("system")
    }

    /// What kind of failure this is.
    public var code: Code
    /// The operation, e.g. `"enqueue"`, `"attach segment /ccl-1234"`.
    public var operation: String
    /// The group the operation ran on ("tp0", "world"), when known.
    public var group: String?
    /// The rank that saw the error, when known: the global rank (the rank in the world).
    public var rank: Int?
    /// The same process's rank inside `group`, when that differs from `rank`.
    public var groupRank: Int?
    /// The peer involved, in words ("reader 2 (pid 812)", "writer at 10.0.0.1:4000").
    public var peer: String?
    /// What happened, in words.
    public var message: String
    /// The error underneath (a `SystemError`, a decoding error), typed: `cause as? SystemError`
    /// gives the call and errno back.
    public var cause: (any Error & Sendable)?

    /// An error: its code, the operation that failed, who saw it and who was involved, the
    /// message, and what caused it.
    public init(
        _ code: Code,
        operation: String,
        group: String? = nil,
        rank: Int? = nil,
        groupRank: Int? = nil,
        peer: String? = nil,
        _ message: String,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.operation = operation
        self.group = group
        self.rank = rank
        self.groupRank = groupRank == rank ? nil : groupRank
        self.peer = peer
        self.message = message
        self.cause = cause
    }

    /// `operation (group tp0, rank 5, group rank 1, peer rank 4): message [cause: …]`; the group is
    /// left out when the operation already names it.
    public var description: String {
        var who: [String] = []
        if let group, !operation.hasSuffix("group \(group)") { who.append("group \(group)") }
        if let rank { who.append("rank \(rank)") }
        if let groupRank { who.append("group rank \(groupRank)") }
        if let peer { who.append("peer \(peer)") }
        var text = operation
        if !who.isEmpty { text += " (" + who.joined(separator: ", ") + ")" }
        text += ": " + message
        if let cause { text += " [cause: \(cause)]" }
        return text
    }

    /// Equal when every field is, the causes compared by their descriptions.
    public static func == (lhs: CCLError, rhs: CCLError) -> Bool {
        lhs.code == rhs.code && lhs.operation == rhs.operation && lhs.group == rhs.group && lhs.rank == rhs.rank
            && lhs.groupRank == rhs.groupRank && lhs.peer == rhs.peer && lhs.message == rhs.message
            && lhs.cause.map { "\($0)" } == rhs.cause.map { "\($0)" }
    }

    /// The one wording of "who did not come", for every wait on ranks (shared-memory and TCP
    /// collectives, the TCP mesh, the store's process group): "rank 3 never arrived", "ranks 1, 2
    /// and 5 never connected". Ranks as the caller names them (global ranks).
    public static func missingRanks(_ ranks: [Int], _ verb: String = "never arrived") -> String {
        let sorted = ranks.sorted().map(String.init)
        switch sorted.count {
        case 0: return "no rank was missing when the wait ended (the last ones arrived as it timed out)"
        case 1: return "rank \(sorted[0]) \(verb)"
        default: return "ranks \(sorted.dropLast().joined(separator: ", ")) and \(sorted[sorted.count - 1]) \(verb)"
        }
    }

    /// A copy with the operation, rank or peer filled in where they were unknown below.
    public func context(operation: String? = nil, rank: Int? = nil, peer: String? = nil) -> CCLError {
        var copy = self
        if let operation { copy.operation = operation }
        if copy.rank == nil { copy.rank = rank }
        if copy.peer == nil { copy.peer = peer }
        return copy
    }
}
