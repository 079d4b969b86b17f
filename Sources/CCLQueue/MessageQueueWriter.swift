import CCLCore
import CCLSystem

/// The writing end of a broadcast queue: one writer, many readers, every reader receives every
/// message in order (vLLM's `MessageQueue` in writer mode).
///
/// Same-node readers read a POSIX shared-memory ring; readers on other nodes receive the same
/// stream over TCP. Create it, send `handle` to the readers, call `waitUntilReady`, then
/// `enqueue`.
///
/// Threading: one thread at a time (it is `Sendable` so it can be handed to another thread).
/// Every blocking call takes a timeout (default `QueueOptions.timeout`) and fails naming the
/// readers that hold it up; a dead reader fails it within ~50 ms of being noticed.
public final class MessageQueueWriter: @unchecked Sendable {
    /// What readers need to attach (`Codable`: send it through the group, a pipe, argv).
    public let handle: MessageQueueHandle
    /// The writer's rank, as errors and stall reports name it.
    public let rank: Int
    let ring: RingWriter?
    private let remote: RemoteFanout?
    private let options: QueueOptions
    private let encoder = CCLBinaryEncoder()
    private var encoded: [UInt8] = []

    /// Creates the ring (when there are same-node readers) and the TCP listener (when there are
    /// remote readers).
    ///
    /// - Parameters:
    ///   - localReaders: ranks of readers on this node; each gets a ring slot in this order.
    ///   - remoteReaders: ranks of readers on other nodes.
    ///   - rank: this writer's rank, for messages.
    ///   - options: the ring's geometry, the token remote readers must present, the listen
    ///     address, timeouts and the wait policy; readers use the same.
    public init(localReaders: [Int], remoteReaders: [Int] = [], rank: Int = 0, options: QueueOptions = QueueOptions()) throws(CCLError) {
        let operation = "create queue (writer rank \(rank))"
        guard !(localReaders.isEmpty && remoteReaders.isEmpty) else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "a queue needs at least one reader")
        }
        guard Set(localReaders + remoteReaders).count == localReaders.count + remoteReaders.count else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: rank,
                "reader ranks repeat: local \(localReaders), remote \(remoteReaders)")
        }
        guard options.maxMessageBytes >= 0, options.remoteBufferBytes >= 0 else {
            throw CCLError(.invalidArgument, operation: operation, rank: rank, "maxMessageBytes and remoteBufferBytes must be ≥ 0")
        }
        if !remoteReaders.isEmpty { try RemoteWire.checkToken(options.token, operation: operation, rank: rank) }
        self.rank = rank
        self.options = options
        ring = localReaders.isEmpty ? nil : try RingWriter(readerRanks: localReaders, rank: rank, options: options)
        remote = remoteReaders.isEmpty ? nil : try RemoteFanout(readerRanks: remoteReaders, rank: rank, options: options)
        handle = MessageQueueHandle(
            writerRank: rank, segmentName: ring?.segmentName, chunkBytes: options.chunkBytes,
            chunkCount: options.chunkCount, localReaderRanks: localReaders, remoteReaderRanks: remoteReaders,
            remoteHost: remote?.host, remotePort: remote?.port, maxMessageBytes: options.maxMessageBytes)
    }

    deinit { close() }

    /// Returns once every reader, local and remote, has attached. Unlinks the ring's name then,
    /// so a crash later leaves nothing in /dev/shm.
    public func waitUntilReady(timeout: Timeout? = nil) throws(CCLError) {
        let timeout = timeout ?? options.timeout
        let start = monotonicNanoseconds()
        try ring?.waitUntilReady(timeout: timeout)
        try remote?.waitUntilReady(timeout: timeout.remaining(since: start))
    }

    /// Sends `bytes` to every reader.
    public func enqueue(_ bytes: UnsafeRawBufferPointer, timeout: Timeout? = nil) throws(CCLError) {
        try enqueue(parts: [bytes], timeout: timeout)
    }

    /// Sends `bytes` to every reader.
    public func enqueue(_ bytes: [UInt8], timeout: Timeout? = nil) throws(CCLError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(CCLError) in try enqueue(parts: [raw], timeout: timeout) }
        }
        try result.get()
    }

    /// Sends one message made of several pieces (a header and large payloads, say), each copied
    /// once, straight into the ring, with no concatenation first. Readers see one message.
    ///
    /// Throws `.readerLost` when the message was delivered but a reader was found dead or too slow
    /// and is left behind (do not resend); any other error means no reader got the message,
    /// except after a cut-off (the error says so), which leaves the queue unusable.
    public func enqueue(parts: [UnsafeRawBufferPointer], timeout: Timeout? = nil) throws(CCLError) {
        let operation = "enqueue (queue writer)"
        let total = parts.reduce(0) { $0 + $1.count }
        guard total <= options.maxMessageBytes else {
            throw CCLError(
                .tooLarge, operation: operation, rank: rank,
                "message of \(total) bytes exceeds the queue's limit of \(options.maxMessageBytes) bytes")
        }
        var budget = CallBudget(timeout ?? options.timeout)
        let ringReport = try ring?.write(parts: parts, totalBytes: total, budget: &budget, operation: operation)
        let remoteReport = try remote?.send(parts: parts, totalBytes: total, timeout: budget.next(), operation: operation)
        // Delivered to everyone still here; a reader lost on the way is reported once.
        if let report = ringReport ?? remoteReport { throw report }
    }

    /// Sends a `Codable` value in swift-ccl's compact binary format (see `CCLBinaryEncoder`).
    public func enqueue<T: Encodable>(encoding value: T, timeout: Timeout? = nil) throws(CCLError) {
        encoded.removeAll(keepingCapacity: true)
        do {
            try encoder.encode(value, into: &encoded)
        } catch let error as CCLError {
            throw error.context(operation: "enqueue \(T.self)", rank: rank)
        } catch {
            throw CCLError(.invalidArgument, operation: "enqueue \(T.self)", rank: rank, "cannot encode", cause: error)
        }
        try enqueue(encoded, timeout: timeout)
    }

    /// Closes the queue: readers receive what was sent, then `.closed`. Idempotent.
    public func close() {
        ring?.close()
        remote?.close()
    }
}
