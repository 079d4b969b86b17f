import CCLCore
import CCLSystem
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The TCP store's server (torch's `TCPStore` master): runs inside rank 0 or standalone
/// (`ccl store serve`). Binds only the address it is given.
///
/// Every connection must first present the shared token; then it sends one request at a time
/// (see `StoreWire`). A malformed, oversized or stalled connection (half a frame left for
/// 10 s) is closed alone; everyone else is served on. `get` and `wait` park on the server until
/// their keys are set or their timeout ends, without blocking others.
///
/// Threading: all connections and the data live on one event-loop thread; `close` from any thread.
public final class TCPStoreServer: @unchecked Sendable {
    /// The address it listens on.
    public let host: String
    /// The port it listens on: the kernel's choice when 0 was asked for.
    public let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let core: StoreServerCore

    /// Starts listening on `host:port` (port 0: the kernel picks one, see `port`). A connection
    /// that leaves a request (or its hello) unfinished for `stallTimeout` is closed.
    public init(
        host: String = "127.0.0.1", port: Int = 0, token: String, stallTimeout: TimeAmount = .seconds(10),
        logger: Logger = Logger(label: "ccl.store")
    ) throws(CCLError) {
        let operation = "start store server on \(host):\(port)"
        try PortNumber.check(port, in: PortNumber.listenable, operation: operation)
        guard !token.isEmpty, token.utf8.count <= StoreWire.maxTokenBytes else {
            throw CCLError(
                .invalidArgument, operation: operation, "the store needs a token of 1 to \(StoreWire.maxTokenBytes) bytes (set CCL_TOKEN)")
        }
        // Two connections per process of the job (its own and its trace responder's): more than
        // the usual soft limit of 1024 files for a job of a few hundred ranks.
        OpenFileLimit.raiseToHardLimit()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let core = StoreServerCore(loop: loop, logger: logger, stallTimeout: stallTimeout)
        self.core = core
        let tokenBytes = Array(token.utf8)
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(StoreConnectionHandler(core: core, token: tokenBytes))
                }
            }
        do {
            listener = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw CCLError(.system, operation: operation, "cannot listen", cause: error)
        }
        self.host = host
        self.port = listener.localAddress?.port ?? port
    }

    deinit { close() }

    /// Key lookups made so far to wake parked requests (tests), read on the server's loop.
    func wakeLookups() throws -> Int {
        let core = core
        return try core.loop.submit { core.wakeLookups }.wait()
    }

    /// Sets the page size of `keys` replies (tests), on the server's loop.
    func setKeysPerPage(_ count: Int) throws {
        let core = core
        try core.loop.submit { core.keysPerPage = count }.wait()
    }

    private let closed = NIOLockedValueBox(false)

    /// Stops listening and closes every connection. Idempotent; safe from any thread, the event
    /// loop's included.
    public func close() {
        guard
            closed.withLockedValue({ old in
                defer { old = true }; return !old
            })
        else { return }
        closeChannel(listener, andShutDown: group)
    }
}

/// The store's data and parked requests; touched only on `loop`.
final class StoreServerCore: @unchecked Sendable {
    let loop: any EventLoop
    let logger: Logger
    let stallTimeout: TimeAmount
    /// At most this many keys in one page of a `keys` reply (tests page short lists).
    var keysPerPage = StoreWire.maxKeys
    private var state = StoreState()
    private var parked: [ObjectIdentifier: Parked] = [:]
    /// Connections that have not presented the token yet, oldest first, capped so idle sockets
    /// cannot use up the server's file descriptors. At the cap a new connection evicts the oldest
    /// one (not the newcomer), so a real client always gets its turn however many idle sockets an
    /// attacker keeps opening; each also has only `helloTimeout` to say hello.
    private var waitingForHello: [(owner: ObjectIdentifier, channel: any Channel)] = []
    static let maxUnauthenticated = 128
    static let helloTimeout: TimeAmount = .seconds(2)
    /// What a connection's receive buffer may keep between requests (it grows to one frame,
    /// at most `StoreWire.maxFrame`, while a request arrives).
    static let idleBufferBytes = 64 << 10

    /// Registers a connection that has not said hello, closing the oldest such one at the cap.
    func admitUnauthenticated(_ owner: ObjectIdentifier, _ channel: any Channel) {
        if waitingForHello.count >= Self.maxUnauthenticated {
            let oldest = waitingForHello.removeFirst()
            logger.warning(
                "store: closing \(oldest.channel.remoteAddress.map { "\($0)" } ?? "a client"): \(Self.maxUnauthenticated) connections are waiting to say hello, this one longest"
            )
            oldest.channel.close(promise: nil)
        }
        waitingForHello.append((owner, channel))
    }

    /// The connection said hello, or went away.
    func leftUnauthenticated(_ owner: ObjectIdentifier) {
        waitingForHello.removeAll { $0.owner == owner }
    }

    /// A `get` or `wait` waiting for keys. `firstMissing`: the keys before it were set when last
    /// looked at, so a `set` costs one lookup per parked request, not one per key it waits for.
    struct Parked {
        let keys: [String]
        let timer: Scheduled<Void>?
        let finish: (Bool) -> Void
        var firstMissing = 0
    }
    /// Key lookups made to wake parked requests (tests check that a `set` costs O(parked)).
    private(set) var wakeLookups = 0

    init(loop: any EventLoop, logger: Logger, stallTimeout: TimeAmount) {
        self.loop = loop
        self.logger = logger
        self.stallTimeout = stallTimeout
    }

    /// Serves one request; `reply` gets the response payload writer. Parked requests reply later.
    func serve(
        _ op: StoreWire.Op, _ body: inout ByteBuffer, owner: ObjectIdentifier,
        reply: @escaping (StoreWire.Status, (inout ByteBuffer) -> Void) -> Void
    )
        throws(StoreWire.Malformed)
    {
        switch op {
        case .set:
            let key = try StoreWire.readKey(&body)
            let value = try StoreWire.readBytes(&body)
            try finished(body)
            state.set(key, value)
            reply(.ok) { _ in }
            wakeParked()
        case .get:
            let key = try StoreWire.readKey(&body)
            let timeout = StoreWire.timeout(fromWire: try StoreWire.readInteger(&body, as: UInt64.self))
            try finished(body)
            park([key], timeout: timeout, owner: owner) { [unowned self] ready in
                if ready, let value = self.state.get(key) {
                    reply(.ok) { StoreWire.writeBytes(value, into: &$0) }
                } else {
                    reply(.timeout) { StoreWire.writeKeys([key], into: &$0) }
                }
            }
        case .add:
            let key = try StoreWire.readKey(&body)
            let delta = try StoreWire.readInteger(&body, as: Int64.self)
            try finished(body)
            do {
                let sum = try state.add(key, delta, operation: "store add")
                reply(.ok) { $0.writeInteger(sum, endianness: .little) }
                wakeParked()
            } catch {
                reply(.error) { $0.writeString(error.message) }
            }
        case .compareSet:
            let key = try StoreWire.readKey(&body)
            let expected = try StoreWire.readBytes(&body)
            let desired = try StoreWire.readBytes(&body)
            try finished(body)
            let result = state.compareSet(key, expected: expected, desired: desired)
            reply(.ok) { StoreWire.writeBytes(result, into: &$0) }
            wakeParked()
        case .wait:
            let keys = try StoreWire.readKeys(&body)
            let timeout = StoreWire.timeout(fromWire: try StoreWire.readInteger(&body, as: UInt64.self))
            try finished(body)
            park(keys, timeout: timeout, owner: owner) { [unowned self] ready in
                if ready {
                    reply(.ok) { _ in }
                } else {
                    let missing = self.state.missing(keys)
                    reply(.timeout) { StoreWire.writeKeys(missing, into: &$0) }
                }
            }
        case .check:
            let keys = try StoreWire.readKeys(&body)
            try finished(body)
            let present = state.missing(keys).isEmpty
            reply(.ok) { $0.writeInteger(UInt8(present ? 1 : 0)) }
        case .delete:
            let key = try StoreWire.readKey(&body)
            try finished(body)
            let removed = state.delete(key)
            reply(.ok) { $0.writeInteger(UInt8(removed ? 1 : 0)) }
        case .numKeys:
            try finished(body)
            let count = UInt64(state.count)
            reply(.ok) { $0.writeInteger(count, endianness: .little) }
        case .keys:
            let prefix = try StoreWire.readKey(&body)
            let hasAfter = try StoreWire.readInteger(&body, as: UInt8.self)
            guard hasAfter <= 1 else { throw StoreWire.Malformed(description: "keys: after-flag \(hasAfter), not 0 or 1") }
            let after = hasAfter == 1 ? try StoreWire.readKey(&body) : nil
            try finished(body)
            // One page, bounded by count and bytes so the reply always fits a frame; the client
            // asks again after the last key it got.
            var (keys, more) = state.keys(prefix: prefix, after: after, limit: keysPerPage)
            var bytes = 0
            if let cut = keys.firstIndex(where: { key in
                bytes += 4 + key.utf8.count
                return bytes > StoreWire.maxFrame / 2
            }) {
                keys.removeSubrange(cut...)
                more = true
            }
            reply(.ok) { out in
                out.writeInteger(UInt8(more ? 1 : 0))
                StoreWire.writeKeys(keys, into: &out)
            }
        case .claim:
            let key = try StoreWire.readKey(&body)
            let value = try StoreWire.readBytes(&body)
            try finished(body)
            let current = state.claim(key, value, holder: owner)
            reply(.ok) { out in
                out.writeInteger(UInt8(current == nil ? 1 : 0))
                StoreWire.writeBytes(current ?? [], into: &out)
            }
            if current == nil { wakeParked() }
        }
    }

    private func finished(_ body: ByteBuffer) throws(StoreWire.Malformed) {
        guard body.readableBytes == 0 else { throw StoreWire.Malformed(description: "\(body.readableBytes) bytes after the request") }
    }

    private func park(_ keys: [String], timeout: Timeout, owner: ObjectIdentifier, finish: @escaping (Bool) -> Void) {
        if state.missing(keys).isEmpty { return finish(true) }
        let timer = timeout.nanoseconds.map { limit in
            loop.scheduleTask(in: .nanoseconds(Int64(clamping: limit))) { [weak self] in
                guard let self, let parked = self.parked.removeValue(forKey: owner) else { return }
                parked.finish(false)
            }
        }
        parked[owner] = Parked(keys: keys, timer: timer, finish: finish)
    }

    private func wakeParked() {
        for owner in Array(parked.keys) {
            guard var request = parked[owner] else { continue }
            while request.firstMissing < request.keys.count {
                wakeLookups += 1
                guard state.get(request.keys[request.firstMissing]) != nil else { break }
                request.firstMissing += 1
            }
            if request.firstMissing == request.keys.count {
                // A key counted before may have been deleted since: check them all, once.
                wakeLookups += request.keys.count
                if let missing = state.missing(request.keys).first, let index = request.keys.firstIndex(of: missing) {
                    request.firstMissing = index
                } else {
                    parked[owner] = nil
                    request.timer?.cancel()
                    request.finish(true)
                    continue
                }
            }
            parked[owner] = request
        }
    }

    /// A connection went away: forget its parked request, delete the keys it still claims.
    func forget(_ owner: ObjectIdentifier) {
        parked.removeValue(forKey: owner)?.timer?.cancel()
        let released = state.releaseClaims(of: owner)
        if released > 0 { logger.debug("store: a client went away; deleted the \(released) keys it claimed") }
    }
}

/// One client connection: handshake, then frames, bounded and checked.
private final class StoreConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: StoreServerCore
    private let token: [UInt8]
    private var buffer = ByteBuffer()
    private var authenticated = false
    private var busy = false
    private var stallTimer: Scheduled<Void>?

    init(core: StoreServerCore, token: [UInt8]) {
        self.core = core
        self.token = token
    }

    func channelActive(context: ChannelHandlerContext) {
        core.admitUnauthenticated(ObjectIdentifier(self), context.channel)
        armStallTimer(context, limit: StoreServerCore.helloTimeout)
        context.fireChannelActive()
    }

    private func authenticatedOrGone() { core.leftUnauthenticated(ObjectIdentifier(self)) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        do {
            try process(context)
        } catch {
            drop(context, because: error.description)
            return
        }
        if buffer.readableBytes == 0 {
            stallTimer?.cancel()
            stallTimer = nil
            // Give back what a large request grew the buffer to: between requests a connection
            // holds at most `idleBufferBytes`.
            if buffer.capacity > StoreServerCore.idleBufferBytes { buffer = ByteBuffer() } else { buffer.discardReadBytes() }
        } else if stallTimer == nil {
            armStallTimer(context)
        }
    }

    /// Closes the connection if what it started sending (or, before the hello, the hello itself)
    /// is not complete within `limit` (default: the server's stall timeout).
    private func armStallTimer(_ context: ChannelHandlerContext, limit: TimeAmount? = nil) {
        let channel = context.channel
        let core = core
        let limit = limit ?? core.stallTimeout
        stallTimer = context.eventLoop.scheduleTask(in: limit) {
            core.logger.warning("store: closing \(channel.remoteAddress.map { "\($0)" } ?? "a client"): incomplete request for \(limit)")
            channel.close(promise: nil)
        }
    }

    private func process(_ context: ChannelHandlerContext) throws(StoreWire.Malformed) {
        if !authenticated {
            guard buffer.readableBytes >= Handshake.headerBytes,
                let head = buffer.getBytes(at: buffer.readerIndex, length: Handshake.headerBytes)
            else { return }
            let header: Handshake.Header
            switch Handshake.parseHeader(head, magic: StoreWire.helloMagic) {
            case .success(let parsed): header = parsed
            case .failure(.notThisService): throw StoreWire.Malformed(description: "not a store client (bad hello)")
            case .failure(let rejection): throw StoreWire.Malformed(description: "\(rejection)")
            }
            guard buffer.readableBytes >= header.totalBytes else { return }
            buffer.moveReaderIndex(forwardBy: Handshake.headerBytes)
            guard let hello = Handshake(header: header, rest: buffer.readBytes(length: header.totalBytes - Handshake.headerBytes) ?? [])
            else { throw StoreWire.Malformed(description: "a hello cut short") }
            let accepted = AuthToken.matches(hello.token, token) && hello.context.isEmpty
            var ack = context.channel.allocator.buffer(capacity: Handshake.ackBytes)
            ack.writeBytes(Handshake.ack(magic: StoreWire.ackMagic, status: accepted ? 0 : 1))
            guard accepted else {
                core.logger.warning("store: refused \(context.remoteAddress.map { "\($0)" } ?? "a client"): wrong token")
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(ack)).whenComplete { _ in channel.close(promise: nil) }
                buffer.clear()
                return
            }
            authenticated = true
            authenticatedOrGone()
            // The hello deadline is over; what follows gets the normal stall limit.
            stallTimer?.cancel()
            stallTimer = nil
            context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
        }
        while let frame = try StoreWire.nextFrame(from: &buffer) {
            guard !busy else { throw StoreWire.Malformed(description: "a second request while one is pending") }
            var body = frame
            let rawOp = try StoreWire.readInteger(&body, as: UInt8.self)
            guard let op = StoreWire.Op(rawValue: rawOp) else { throw StoreWire.Malformed(description: "unknown op \(rawOp)") }
            busy = true
            let channel = context.channel
            try core.serve(op, &body, owner: ObjectIdentifier(self)) { [weak self] status, write in
                self?.busy = false
                let response = StoreWire.frame(channel.allocator) { out in
                    out.writeInteger(status.rawValue)
                    write(&out)
                }
                channel.writeAndFlush(response, promise: nil)
            }
        }
    }

    private func drop(_ context: ChannelHandlerContext, because reason: String) {
        core.logger.warning("store: closing \(context.remoteAddress.map { "\($0)" } ?? "a client"): \(reason)")
        buffer.clear()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stallTimer?.cancel()
        authenticatedOrGone()
        core.forget(ObjectIdentifier(self))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
