/// The one public error type of swift-ccl.
///
/// Every error names the operation that failed, the rank that saw it and, where there is one, the
/// peer involved, plus the cause underneath (a syscall error, a decoding failure).
/// `description` reads as one sentence a user can act on:
/// `dequeue (rank 2, peer writer pid 812): timed out after 5 s: the writer sent nothing`.
public struct CCLError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of failure this is; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
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

    public var code: Code
    /// The operation, e.g. `"enqueue"`, `"attach segment /ccl-1234"`.
    public var operation: String
    /// The rank that saw the error, when known.
    public var rank: Int?
    /// The peer involved, in words ("reader 2 (pid 812)", "writer at 10.0.0.1:4000").
    public var peer: String?
    /// What happened, in words.
    public var message: String
    /// The underlying error's description (a syscall failure, a decoding error).
    public var cause: String?

    public init(
        _ code: Code,
        operation: String,
        rank: Int? = nil,
        peer: String? = nil,
        _ message: String,
        cause: (any Error)? = nil
    ) {
        self.code = code
        self.operation = operation
        self.rank = rank
        self.peer = peer
        self.message = message
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String {
        var who: [String] = []
        if let rank { who.append("rank \(rank)") }
        if let peer { who.append("peer \(peer)") }
        var text = operation
        if !who.isEmpty { text += " (" + who.joined(separator: ", ") + ")" }
        text += ": " + message
        if let cause { text += " [cause: \(cause)]" }
        return text
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
