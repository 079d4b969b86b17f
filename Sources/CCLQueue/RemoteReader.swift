import CCLCore
import CCLStore
import CCLSystem
import Logging
import NIOCore
import NIOPosix

/// A reader on another node: connects to the writer over TCP (SwiftNIO), authenticates with the
/// shared token, and reassembles the message stream (see `RemoteWire`).
///
/// Back-pressure: the socket is read only while fewer than `QueueOptions.remoteBufferBytes` of
/// complete messages wait here, so a slow consumer stalls the writer's TCP stream instead of
/// growing memory.
///
/// Threading: `next`/`waitUntilReady`/`close` from the reader's thread; the handler runs on one
/// event-loop thread; shared state is under `monitor`.
final class RemoteReader: @unchecked Sendable {
    private let rank: Int
    private let writerPeer: String
    private let options: QueueOptions
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var inbox: [[UInt8]] = []
    private var inboxHead = 0
    private var inboxBytes = 0
    private var ready = false
    private var writerClosed = false
    private var failure: CCLError?
    private var readPaused = false
    private var shutDown = false

    init(handle: MessageQueueHandle, rank: Int, options: QueueOptions) throws(CCLError) {
        let operation = "attach remote queue reader"
        guard let host = handle.remoteHost, let port = handle.remotePort, (1...65535).contains(port) else {
            throw CCLError(.malformed, operation: operation, rank: rank, "handle lists remote readers but no valid address")
        }
        try RemoteWire.checkToken(options.token, operation: operation, rank: rank)
        self.rank = rank
        self.options = options
        writerPeer = "writer rank \(handle.writerRank) at \(host):\(port)"
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = WeakReader()
        let limit = min(handle.maxMessageBytes, options.maxMessageBytes)
        let hello = Self.hello(rank: rank, token: options.token)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.autoRead, value: false)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FrameHandler(reader: box, maxMessageBytes: limit))
                }
            }
        do {
            channel = try bootstrap.connect(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw CCLError(.peerDead, operation: operation, rank: rank, peer: writerPeer, "cannot connect", cause: error)
        }
        box.reader = self
        guard channel.isActive else {
            try? group.syncShutdownGracefully()
            throw CCLError(.peerDead, operation: operation, rank: rank, peer: writerPeer, "the writer closed the connection at once")
        }
        var buffer = channel.allocator.buffer(capacity: hello.count)
        buffer.writeBytes(hello)
        channel.writeAndFlush(buffer, promise: nil)
        channel.read()
    }

    deinit { close() }

    private static func hello(rank: Int, token: String) -> [UInt8] {
        Handshake(rank: rank, token: Array(token.utf8)).encode(magic: RemoteWire.helloMagic)
    }

    // MARK: called from the event loop

    fileprivate func deliver(_ message: [UInt8]) {
        monitor.withLock {
            inbox.append(message)
            inboxBytes += message.count
            monitor.broadcast()
            readPaused = inboxBytes >= options.remoteBufferBytes
        }
    }

    /// Whether the socket may be read now (false while the inbox is full: back-pressure).
    fileprivate func wantsMore() -> Bool { monitor.withLock { !readPaused } }

    fileprivate func markReady() {
        monitor.withLock {
            ready = true
            monitor.broadcast()
        }
    }

    fileprivate func fail(_ code: CCLError.Code, _ message: String, cause: (any Error)? = nil) {
        monitor.withLock {
            if failure == nil, !writerClosed {
                failure = CCLError(code, operation: "receive (remote queue reader)", rank: rank, peer: writerPeer, message, cause: cause)
            }
            monitor.broadcast()
        }
    }

    fileprivate func markClosed() {
        monitor.withLock {
            writerClosed = true
            monitor.broadcast()
        }
    }

    // MARK: called from the reader's thread

    private func waitLocked(until done: () -> Bool, timeout: Timeout, operation: String, what: String) throws(CCLError) {
        let start = monotonicNanoseconds()
        while !done() {
            let waited = monotonicNanoseconds() &- start
            if let limit = timeout.nanoseconds, waited >= limit {
                throw CCLError(.timeout, operation: operation, rank: rank, peer: writerPeer, "waited \(describeDuration(waited)): \(what)")
            }
            if Task.isCancelled { throw CCLError(.cancelled, operation: operation, rank: rank, peer: writerPeer, "cancelled") }
            var slice = options.wait.sleepSliceNanoseconds
            if let limit = timeout.nanoseconds { slice = min(slice, limit - waited) }
            monitor.wait(nanoseconds: slice)
        }
    }

    func waitUntilReady(timeout: Timeout) throws(CCLError) {
        let operation = "waitUntilReady (remote queue reader)"
        try monitor.withLock { () throws(CCLError) in
            try waitLocked(
                until: { ready || failure != nil || writerClosed }, timeout: timeout, operation: operation,
                what: "the writer has not reported every reader attached")
            if let failure { throw failure.context(operation: operation) }
        }
    }

    /// The next complete message, in order.
    func next(timeout: Timeout, operation: String) throws(CCLError) -> [UInt8] {
        let (message, resume): ([UInt8], Bool) = try monitor.withLock { () throws(CCLError) in
            try waitLocked(
                until: { inboxHead < inbox.count || failure != nil || writerClosed }, timeout: timeout,
                operation: operation, what: "the writer sent nothing")
            guard inboxHead < inbox.count else {
                if let failure { throw failure.context(operation: operation) }
                throw CCLError(.closed, operation: operation, rank: rank, peer: writerPeer, "the writer closed the queue")
            }
            let message = inbox[inboxHead]
            inbox[inboxHead] = []
            inboxHead += 1
            if inboxHead > 64, inboxHead * 2 > inbox.count {
                inbox.removeFirst(inboxHead)
                inboxHead = 0
            }
            inboxBytes -= message.count
            let resume = readPaused && (inboxBytes < options.remoteBufferBytes || inboxHead == inbox.count)
            if resume { readPaused = false }
            return (message, resume)
        }
        if resume { channel.read() }
        return message
    }

    /// Disconnects. Idempotent; safe from any thread, the event loop's included (where the last
    /// reference may drop), on which it does not block.
    func close() {
        let first: Bool = monitor.withLock {
            defer { shutDown = true }
            writerClosed = true
            monitor.broadcast()
            return !shutDown
        }
        guard first else { return }
        closeChannel(channel, andShutDown: group)
    }
}

private final class WeakReader: @unchecked Sendable {
    weak var reader: RemoteReader?
}

/// Decodes the ack and then frames, reassembling messages; asks the socket for more only while
/// the reader has room (autoRead is off).
private final class FrameHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let reader: WeakReader
    private let maxMessageBytes: Int
    private var buffer = ByteBuffer()
    private var acknowledged = false
    private var message: [UInt8] = []
    private var messageLength: UInt64?
    private var failed = false

    init(reader: WeakReader, maxMessageBytes: Int) {
        self.reader = reader
        self.maxMessageBytes = maxMessageBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        do {
            try drain()
            buffer.discardReadBytes()
            if reader.reader?.wantsMore() == true { context.read() }
        } catch {
            failed = true
            reader.reader?.fail(error.code, error.message, cause: nil)
            context.close(promise: nil)
        }
    }

    /// Consumes whole frames.
    private func drain() throws(CCLError) {
        if !acknowledged {
            guard buffer.readableBytes >= Handshake.ackBytes, let bytes = buffer.readBytes(length: Handshake.ackBytes) else { return }
            guard let status = Handshake.parseAck(bytes, magic: RemoteWire.ackMagic) else {
                throw CCLError(.malformed, operation: "handshake", "the peer is not a swift-ccl queue writer")
            }
            switch RemoteWire.Status(rawValue: status) {
            case .ok: acknowledged = true
            case .badToken: throw CCLError(.unauthenticated, operation: "handshake", "the writer refused our token (check CCL_TOKEN)")
            case .notAReader:
                throw CCLError(.invalidArgument, operation: "handshake", "the writer does not list this rank as a remote reader")
            case .rankTaken: throw CCLError(.invalidArgument, operation: "handshake", "another process already attached as this rank")
            case nil: throw CCLError(.malformed, operation: "handshake", "unknown ack status \(status)")
            }
        }
        while let header = try RemoteWire.readFrameHeader(from: &buffer, maxMessageBytes: maxMessageBytes) {
            guard buffer.readableBytes >= header.payloadLength else {
                buffer.moveReaderIndex(to: buffer.readerIndex - RemoteWire.frameHeaderBytes)
                return
            }
            switch header.kind {
            case .ready: reader.reader?.markReady()
            case .closed: reader.reader?.markClosed()
            case .data:
                if let expected = messageLength {
                    guard header.messageLength == expected, header.offset == UInt64(message.count) else {
                        throw CCLError(
                            .malformed, operation: "read queue frame",
                            "fragment at \(header.offset) of a \(header.messageLength)-byte message; expected \(message.count) of \(expected)"
                        )
                    }
                } else {
                    guard header.offset == 0 else {
                        throw CCLError(.malformed, operation: "read queue frame", "a message starts at offset \(header.offset)")
                    }
                    messageLength = header.messageLength
                    // Grow with the data, not with the claimed length.
                    message.reserveCapacity(Int(min(header.messageLength, UInt64(RemoteWire.maxFramePayload))))
                }
                buffer.readWithUnsafeReadableBytes { raw in
                    message.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0..<header.payloadLength]))
                    return header.payloadLength
                }
                if UInt64(message.count) == messageLength {
                    let complete = message
                    message = []
                    messageLength = nil
                    reader.reader?.deliver(complete)
                }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !failed { reader.reader?.fail(.peerDead, "the connection to the writer closed without a close frame") }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failed = true
        reader.reader?.fail(.peerDead, "connection error", cause: error)
        context.close(promise: nil)
    }
}
