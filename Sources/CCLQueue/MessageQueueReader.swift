import CCLCore
import CCLSystem

/// The reading end of a broadcast queue (vLLM's `MessageQueue` in reader mode).
///
/// Attaches through a `MessageQueueHandle`: a rank listed in `localReaderRanks` maps the
/// shared-memory ring, a rank in `remoteReaderRanks` connects to the writer over TCP.
/// Messages arrive in the order they were enqueued.
///
/// Threading: one thread at a time. Every blocking call takes a timeout (default
/// `QueueOptions.timeout`); a dead writer fails it within ~50 ms of being noticed; a closed
/// queue yields `.closed` once every message sent before the close was read.
public final class MessageQueueReader: @unchecked Sendable {
    /// This reader's rank (one of the handle's reader ranks).
    public let rank: Int
    private enum Source {
        case ring(RingReader)
        case remote(RemoteReader)
    }
    private let source: Source
    private let options: QueueOptions
    private let decoder: CCLBinaryDecoder

    /// Attaches as reader `rank`. Options' sizes are taken from the handle.
    public init(handle: MessageQueueHandle, rank: Int, options: QueueOptions = QueueOptions()) throws(CCLError) {
        self.rank = rank
        self.options = options
        decoder = CCLBinaryDecoder()
        if let slot = handle.localReaderRanks.firstIndex(of: rank) {
            guard let name = handle.segmentName else {
                throw CCLError(.malformed, operation: "attach queue reader", rank: rank, "handle lists local readers but no segment")
            }
            source = .ring(try RingReader(handle: handle, segmentName: name, slot: slot, rank: rank, options: options))
        } else if handle.remoteReaderRanks.contains(rank) {
            source = .remote(try RemoteReader(handle: handle, rank: rank, options: options))
        } else {
            throw CCLError(
                .invalidArgument, operation: "attach queue reader", rank: rank,
                "rank \(rank) is not a reader of this queue (local \(handle.localReaderRanks), remote \(handle.remoteReaderRanks))")
        }
    }

    /// Returns once the writer has seen every reader attach.
    public func waitUntilReady(timeout: Timeout? = nil) throws(CCLError) {
        switch source {
        case .ring(let ring): try ring.waitUntilReady(timeout: timeout ?? options.timeout)
        case .remote(let remote): try remote.waitUntilReady(timeout: timeout ?? options.timeout)
        }
    }

    /// Receives the next message as a new array (one copy out of the ring).
    public func dequeue(timeout: Timeout? = nil) throws(CCLError) -> [UInt8] {
        let timeout = timeout ?? options.timeout
        let operation = "dequeue (queue reader)"
        switch source {
        case .ring(let ring):
            var budget = CallBudget(timeout)
            let length = try ring.nextMessageLength(budget: &budget, operation: operation)
            var failure: CCLError?
            let bytes = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
                do {
                    try ring.copyMessage(into: UnsafeMutableRawBufferPointer(buffer), budget: &budget, operation: operation)
                    count = length
                } catch {
                    failure = error as? CCLError
                    count = 0
                }
            }
            if let failure { throw failure }
            return bytes
        case .remote(let remote):
            return try remote.next(timeout: timeout, operation: operation)
        }
    }

    /// Hands the next message to `body` without copying it when it fits one ring chunk (the
    /// memory is valid only inside `body`; the chunk is released when it returns).
    public func dequeue<R>(timeout: Timeout? = nil, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let timeout = timeout ?? options.timeout
        let operation = "dequeue (queue reader)"
        switch source {
        case .ring(let ring):
            return try ring.withNextMessage(timeout: timeout, operation: operation, body)
        case .remote(let remote):
            let bytes = try remote.next(timeout: timeout, operation: operation)
            return try bytes.withUnsafeBytes(body)
        }
    }

    /// Receives the next message in pieces, in place, copying nothing: `body(piece, offset, length)`
    /// is called for consecutive pieces (at most one ring chunk each: a chunk whole, or the slices
    /// the writer has written so far while it fills it) that together make the message of
    /// `length` bytes; each piece is valid only during its call. For consumers that move a large
    /// message straight to its destination (a tensor, a file). Not called for an empty message.
    public func dequeueFragments(
        timeout: Timeout? = nil, _ body: (_ piece: UnsafeRawBufferPointer, _ offset: Int, _ length: Int) -> Void
    ) throws(CCLError) {
        let timeout = timeout ?? options.timeout
        let operation = "dequeue (queue reader)"
        switch source {
        case .ring(let ring):
            var budget = CallBudget(timeout)
            let length = try ring.nextMessageLength(budget: &budget, operation: operation)
            try ring.forEachFragment(length: length, budget: &budget, operation: operation) { piece, offset in
                if piece.count > 0 { body(piece, offset, length) }
            }
        case .remote(let remote):
            let bytes = try remote.next(timeout: timeout, operation: operation)
            if !bytes.isEmpty { bytes.withUnsafeBytes { body($0, 0, bytes.count) } }
        }
    }

    /// Receives the next message and decodes it as `T` (see `CCLBinaryDecoder`); bytes that do
    /// not decode as `T` throw `.malformed`.
    public func dequeue<T: Decodable>(decoding type: T.Type, timeout: Timeout? = nil) throws(CCLError) -> T {
        do {
            return try dequeue(timeout: timeout) { raw in try decoder.decode(T.self, from: raw) }
        } catch let error as CCLError {
            throw error.context(rank: rank)
        } catch {
            throw CCLError(.malformed, operation: "dequeue \(T.self)", rank: rank, "cannot decode", cause: error)
        }
    }

    /// Leaves the queue; the writer no longer waits for this reader.
    public func close() {
        switch source {
        case .ring(let ring): ring.detach()
        case .remote(let remote): remote.close()
        }
    }
}
