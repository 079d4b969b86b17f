import CCLCore
import CCLSystem
import Logging
import NIOCore
import NIOPosix

/// The writer's side of remote readers: a TCP listener (SwiftNIO) that authenticates each
/// reader and then streams every message to it as bounded frames (see `RemoteWire`).
///
/// Back-pressure: at most `QueueOptions.remoteBufferBytes` may wait in one reader's send queue;
/// beyond that `send` blocks (with its timeout) until the reader catches up, so memory stays
/// bounded however slow a reader is.
/// A connection that fails the handshake, or that sends anything after it, is closed; the others
/// carry on. A reader whose connection drops makes the next `send` throw `.peerDead` naming it,
/// once; later messages go to the rest.
///
/// Threading: `send`/`waitUntilReady`/`close` from the writer's thread; the handlers run on one
/// event-loop thread; shared state is under `monitor`.
final class RemoteFanout: @unchecked Sendable {
    let host: String
    let port: Int
    private let readerRanks: [Int]
    private let rank: Int
    private let options: QueueOptions
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var connections: [Int: Connection] = [:]
    /// Readers whose connection dropped, with why; moved to `gone` once reported.
    private var lost: [Int: String] = [:]
    private var gone: Set<Int> = []
    private var closed = false

    /// One remote reader's connection. Sendable because its mutable fields are read and written
    /// only under the fanout's `monitor`.
    final class Connection: @unchecked Sendable {
        let channel: any Channel
        var queuedBytes = 0
        var alive = true
        init(channel: any Channel) { self.channel = channel }
    }

    init(readerRanks: [Int], rank: Int, options: QueueOptions) throws(CCLError) {
        self.readerRanks = readerRanks
        self.rank = rank
        self.options = options
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let token = Array(options.token.utf8)
        let ranks = Set(readerRanks)
        let box = WeakFanout()
        let logger = options.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        HandshakeHandler(token: token, readerRanks: ranks, fanout: box, logger: logger))
                }
            }
        do {
            listener = try bootstrap.bind(host: options.remoteHost, port: options.remotePort).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw CCLError(
                .system, operation: "listen for remote queue readers on \(options.remoteHost):\(options.remotePort)",
                rank: rank, "cannot bind", cause: error)
        }
        host = options.remoteHost
        port = listener.localAddress?.port ?? options.remotePort
        box.fanout = self
    }

    deinit { close() }

    // MARK: called from the event loop

    /// Registers an authenticated reader; returns the status for its ack.
    fileprivate func admit(rank reader: Int, channel: any Channel) -> RemoteWire.Status {
        monitor.withLock {
            if closed || connections[reader] != nil || lost[reader] != nil || gone.contains(reader) { return .rankTaken }
            connections[reader] = Connection(channel: channel)
            monitor.broadcast()
            return .ok
        }
    }

    fileprivate func connectionClosed(rank reader: Int, channel: any Channel, reason: String) {
        monitor.withLock {
            guard let connection = connections[reader], connection.channel === channel else { return }
            connection.alive = false
            connections[reader] = nil
            if !closed { lost[reader] = reason }
            monitor.broadcast()
        }
    }

    private func written(_ bytes: Int, to connection: Connection) {
        monitor.withLock {
            connection.queuedBytes -= bytes
            monitor.broadcast()
        }
    }

    // MARK: called from the writer's thread

    private func waitLocked(
        until done: () -> Bool, timeout: Timeout, operation: String, describe: () -> String
    ) throws(CCLError) {
        let start = monotonicNanoseconds()
        while !done() {
            let waited = monotonicNanoseconds() &- start
            if let limit = timeout.nanoseconds, waited >= limit {
                throw CCLError(.timeout, operation: operation, rank: rank, peer: describe(), "waited \(describeDuration(waited))")
            }
            if Task.isCancelled { throw CCLError(.cancelled, operation: operation, rank: rank, "cancelled") }
            var slice = options.wait.sleepSliceNanoseconds
            if let limit = timeout.nanoseconds { slice = min(slice, limit - waited) }
            monitor.wait(nanoseconds: slice)
        }
    }

    func waitUntilReady(timeout: Timeout) throws(CCLError) {
        let operation = "waitUntilReady (queue writer, remote readers)"
        let missing = { self.readerRanks.filter { self.connections[$0] == nil } }
        let channels: [any Channel] = try monitor.withLock { () throws(CCLError) in
            try waitLocked(
                until: { missing().isEmpty || !lost.isEmpty }, timeout: timeout, operation: operation,
                describe: { missing().map { "remote reader rank \($0)" }.joined(separator: ", ") + " never connected" })
            if let (reader, reason) = lost.first {
                throw CCLError(.peerDead, operation: operation, rank: rank, peer: "remote reader rank \(reader)", reason)
            }
            return connections.values.map(\.channel)
        }
        for channel in channels { sendControl(.ready, on: channel) }
    }

    private func sendControl(_ kind: RemoteWire.Kind, on channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: RemoteWire.frameHeaderBytes)
        RemoteWire.writeFrameHeader(.init(kind: kind, payloadLength: 0, messageLength: 0, offset: 0), into: &buffer)
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// Streams one message to every connected reader, fragment by fragment.
    ///
    /// A reader that cannot take the message within `timeout` (its send queue stays full) is
    /// dropped, so the others still get this message and the next ones intact; the returned
    /// `.readerLost` report names it, once. The same for a reader whose connection dropped.
    /// Each reader gets at least `minimumGraceNanoseconds`, so one stalled reader that used up
    /// the call's time does not get healthy ones dropped.
    func send(parts: [UnsafeRawBufferPointer], totalBytes: Int, timeout: Timeout, operation: String) throws(CCLError) -> CCLError? {
        let start = monotonicNanoseconds()
        let (isClosed, targets): (Bool, [(Int, Connection)]) = monitor.withLock {
            (closed, connections.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
        if isClosed { throw CCLError(.closed, operation: operation, rank: rank, "the queue was closed by this writer") }
        var dropped: CCLError?
        for (reader, connection) in targets {
            var budget = timeout.remaining(since: start)
            if let left = budget.nanoseconds, left < Self.minimumGraceNanoseconds { budget = .nanoseconds(Self.minimumGraceNanoseconds) }
            do {
                try send(parts: parts, totalBytes: totalBytes, to: connection, reader: reader, timeout: budget, operation: operation)
            } catch {
                if error.code == .cancelled { throw error }
                // What the reader's rank is doing instead, from its flight recorders (through the store).
                let activity = options.readerActivity?([reader]).map { "; flight recorders: \($0)" } ?? ""
                drop(reader, connection: connection, reason: "it fell behind: \(error.message)\(activity)")
                dropped =
                    dropped
                    ?? CCLError(
                        .readerLost, operation: operation, rank: rank, peer: error.peer,
                        "\(error.message); remote reader rank \(reader) is dropped and the queue goes on with the others\(activity)")
            }
        }
        let dead: [Int: String] = monitor.withLock {
            let found = lost
            lost = [:]
            gone.formUnion(found.keys)
            return found
        }
        if let dropped { return dropped }
        if let (reader, reason) = dead.sorted(by: { $0.key < $1.key }).first {
            return CCLError(
                .readerLost, operation: operation, rank: rank, peer: "remote reader rank \(reader)",
                "lost its connection (\(reason)); the message went to the other readers")
        }
        return nil
    }

    static let minimumGraceNanoseconds: UInt64 = 100_000_000

    private func drop(_ reader: Int, connection: Connection, reason: String) {
        monitor.withLock {
            connection.alive = false
            if connections[reader] === connection { connections[reader] = nil }
            gone.insert(reader)
        }
        connection.channel.close(promise: nil)
        options.logger.error("queue writer rank \(rank) dropped remote reader rank \(reader): \(reason)")
    }

    private func send(
        parts: [UnsafeRawBufferPointer], totalBytes: Int, to connection: Connection, reader: Int, timeout: Timeout, operation: String
    ) throws(CCLError) {
        let start = monotonicNanoseconds()
        var offset = 0
        var gather = GatherCursor(parts)
        repeat {
            let length = min(RemoteWire.maxFramePayload, totalBytes - offset)
            let frameBytes = RemoteWire.frameHeaderBytes + length
            let alive: Bool = try monitor.withLock { () throws(CCLError) in
                try waitLocked(
                    until: {
                        !connection.alive || connection.queuedBytes == 0
                            || connection.queuedBytes + frameBytes <= options.remoteBufferBytes
                    },
                    timeout: timeout.remaining(since: start), operation: operation,
                    describe: { "remote reader rank \(reader) (\(connection.queuedBytes) bytes unsent to it)" })
                if connection.alive { connection.queuedBytes += frameBytes }
                return connection.alive
            }
            if !alive { return }
            var buffer = connection.channel.allocator.buffer(capacity: frameBytes)
            RemoteWire.writeFrameHeader(
                .init(kind: .data, payloadLength: length, messageLength: UInt64(totalBytes), offset: UInt64(offset)),
                into: &buffer)
            gather.take(length) { buffer.writeBytes($0) }
            let promise = connection.channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { _ in self.written(frameBytes, to: connection) }
            connection.channel.writeAndFlush(buffer, promise: promise)
            offset += length
        } while offset < totalBytes
    }

    /// Sends every reader a closed frame and stops listening. Idempotent; safe from any thread,
    /// the event loop's included (where the last reference may drop), on which it does not block.
    func close() {
        let channels: [any Channel]? = monitor.withLock {
            if closed { return nil }
            closed = true
            return connections.values.map(\.channel)
        }
        guard let channels else { return }
        for channel in channels {
            sendControl(.closed, on: channel)
            channel.close(mode: .output, promise: nil)
        }
        if listener.eventLoop.inEventLoop {
            listener.close(promise: nil)
            group.shutdownGracefully { _ in }
            return
        }
        try? listener.close().wait()
        // Let the last frames leave before the loop stops; a reader that takes longer than the
        // queue's timeout to drain them is cut off.
        let flushed = EventLoopFuture.andAllComplete(channels.map(\.closeFuture), on: listener.eventLoop)
        let grace = TimeAmount.nanoseconds(Int64(clamping: options.timeout.nanoseconds ?? UInt64(Int64.max)))
        let deadline = listener.eventLoop.scheduleTask(in: grace) { for channel in channels { channel.close(promise: nil) } }
        try? flushed.wait()
        deadline.cancel()
        try? group.syncShutdownGracefully()
    }
}

/// Lets handlers reach the fanout without keeping it alive.
private final class WeakFanout: @unchecked Sendable {
    weak var fanout: RemoteFanout?
}

/// Reads one hello (bounded: 16 + 4096 bytes), checks token and rank, answers with an ack, and
/// closes the connection on anything else, including any byte after the hello. A peer that does
/// not finish its hello within 10 s is dropped.
private final class HandshakeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let token: [UInt8]
    private let readerRanks: Set<Int>
    private let fanout: WeakFanout
    private let logger: Logger
    private var buffer = ByteBuffer()
    private var admittedRank: Int?
    private var deadline: Scheduled<Void>?

    init(token: [UInt8], readerRanks: Set<Int>, fanout: WeakFanout, logger: Logger) {
        self.token = token
        self.readerRanks = readerRanks
        self.fanout = fanout
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard admittedRank == nil else {
            reject(context, "sent \(incoming.readableBytes) bytes after its hello")
            return
        }
        buffer.writeBuffer(&incoming)
        guard buffer.readableBytes >= Handshake.headerBytes,
            let head = buffer.getBytes(at: buffer.readerIndex, length: Handshake.headerBytes)
        else { return }
        let header: Handshake.Header
        switch Handshake.parseHeader(head, magic: RemoteWire.helloMagic) {
        case .success(let parsed): header = parsed
        case .failure(let rejection): return reject(context, "\(rejection)")
        }
        guard buffer.readableBytes >= header.totalBytes else { return }
        guard buffer.readableBytes == header.totalBytes else { return reject(context, "sent bytes after its hello") }
        let rest = buffer.getBytes(at: buffer.readerIndex + Handshake.headerBytes, length: header.totalBytes - Handshake.headerBytes) ?? []
        guard let hello = Handshake(header: header, rest: rest) else { return reject(context, "a hello cut short") }
        buffer.clear()
        deadline?.cancel()
        let rank = hello.rank ?? -1
        var status = RemoteWire.Status.ok
        if !AuthToken.matches(hello.token, token) || !hello.context.isEmpty {
            status = .badToken
        } else if !readerRanks.contains(rank) {
            status = .notAReader
        } else if let fanout = fanout.fanout {
            status = fanout.admit(rank: rank, channel: context.channel)
        } else {
            status = .rankTaken
        }
        var ack = context.channel.allocator.buffer(capacity: Handshake.ackBytes)
        ack.writeBytes(Handshake.ack(magic: RemoteWire.ackMagic, status: status.rawValue))
        if status == .ok {
            admittedRank = rank
            context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
        } else {
            logger.warning("queue writer refused a remote reader from \(describe(context)): \(status)")
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ack)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func describe(_ context: ChannelHandlerContext) -> String {
        context.remoteAddress.map { "\($0)" } ?? "an unknown address"
    }

    private func reject(_ context: ChannelHandlerContext, _ why: String) {
        logger.warning("queue writer closed the connection from \(describe(context)): \(why)")
        if let rank = admittedRank {
            fanout.fanout?.connectionClosed(rank: rank, channel: context.channel, reason: "it \(why)")
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if let rank = admittedRank {
            fanout.fanout?.connectionClosed(rank: rank, channel: context.channel, reason: "connection closed by the reader")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let rank = admittedRank {
            fanout.fanout?.connectionClosed(rank: rank, channel: context.channel, reason: "\(error)")
        }
        context.close(promise: nil)
    }
}
