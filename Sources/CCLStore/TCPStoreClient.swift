import CCLCore
import CCLSystem
import NIOCore
import NIOPosix

/// A connection to a `TCPStoreServer` (torch's `TCPStore` client).
///
/// Requests go one at a time: calls from several threads queue on a lock, so while one thread
/// waits in `get` or `wait`, another thread's `set` on the same client waits behind it. Give a
/// thread that must set what another waits for its own client. A `get` or `wait`
/// waits on the server; the client allows it its timeout plus `gracePeriod` before giving up
/// itself. A server that goes away fails the pending and all later calls with `.peerDead`.
public final class TCPStoreClient: Store, @unchecked Sendable {
    /// The server's host, as given.
    public let host: String
    /// The server's port.
    public let port: Int
    /// The timeout of a `get` or `wait` called without one.
    public let defaultTimeout: Timeout
    private let token: String
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let requestLock = Monitor()
    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var response: (StoreWire.Status, ByteBuffer)?
    private var failure: CCLError?
    private var shutDown = false
    private static let gracePeriod: UInt64 = 5_000_000_000

    private var peer: String { "store server \(host):\(port)" }

    /// Connects and authenticates, retrying a refused connection until `timeout` (the server
    /// may not be up yet).
    public init(host: String, port: Int, token: String, timeout: Timeout = .seconds(300)) throws(CCLError) {
        let operation = "connect to store"
        try PortNumber.check(port, in: PortNumber.connectable, operation: operation + " at \(host):\(port)")
        self.host = host
        self.port = port
        self.token = token
        defaultTimeout = timeout
        guard !token.isEmpty, token.utf8.count <= StoreWire.maxTokenBytes else {
            throw CCLError(
                .invalidArgument, operation: operation, "the store needs a token of 1 to \(StoreWire.maxTokenBytes) bytes (set CCL_TOKEN)")
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let start = monotonicNanoseconds()
        func remaining() -> UInt64? {
            timeout.nanoseconds.map { $0 > monotonicNanoseconds() &- start ? $0 - (monotonicNanoseconds() &- start) : 0 }
        }
        var accepted: (channel: any Channel, link: ClientLink)?
        var problem = "no store server answered"
        var closedBeforeHandshake = false
        var cause: (any Error & Sendable)?
        // Until the timeout: connect (the server may not be up yet), say hello, and start again
        // when the server closes before answering (it sheds connections that have not said
        // hello when too many are open).
        var first = true
        attempts: while first || remaining() != 0 {
            first = false
            let link = ClientLink()
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(StoreClientHandler(link: link)) }
                }
            let candidate: any Channel
            do {
                candidate = try bootstrap.connect(host: host, port: port).wait()
            } catch {
                cause = error
                usleepShort()
                continue
            }
            let bytes = Handshake(token: Array(token.utf8)).encode(magic: StoreWire.helloMagic)
            var hello = candidate.allocator.buffer(capacity: bytes.count)
            hello.writeBytes(bytes)
            candidate.writeAndFlush(hello, promise: nil)
            let limit = min(10_000_000_000, remaining() ?? .max)
            switch link.awaitHandshake(nanoseconds: limit) {
            case .accepted?:
                accepted = (candidate, link)
                break attempts
            case .refused?:
                candidate.close(promise: nil)
                try? group.syncShutdownGracefully()
                throw CCLError(
                    .unauthenticated, operation: operation, peer: "store server \(host):\(port)",
                    "the server refused our token (check CCL_TOKEN)")
            case .closed(let why)?:
                candidate.close(promise: nil)
                problem = "closed by the server before the handshake (\(why))"
                closedBeforeHandshake = true
                usleepShort()
            case nil:
                candidate.close(promise: nil)
                // The time ran out during a retry after the server closed on us: that close is
                // what went wrong, not a silent server.
                if closedBeforeHandshake, remaining() == 0 { break attempts }
                try? group.syncShutdownGracefully()
                throw CCLError(
                    .timeout, operation: operation, peer: "store server \(host):\(port)",
                    "the server did not answer the handshake within \(Timeout.nanoseconds(limit))")
            }
        }
        guard let accepted else {
            try? group.syncShutdownGracefully()
            throw CCLError(
                .peerDead, operation: operation, peer: "store server \(host):\(port)", "\(problem) within \(timeout)", cause: cause)
        }
        channel = accepted.channel
        accepted.link.attach(self)
    }

    deinit { close() }

    /// Whether the connection is gone or out of step (closed, lost, or an earlier request timed
    /// out on this side): every later call fails at once.
    package var isBroken: Bool { monitor.withLock { failure != nil } }

    /// A second connection to the same server with the same token (for a thread that must wait
    /// in the store while this client's thread is busy elsewhere).
    package func connectAgain(timeout: Timeout) throws(CCLError) -> TCPStoreClient {
        try TCPStoreClient(host: host, port: port, token: token, timeout: timeout)
    }

    /// Disconnects. Idempotent; safe from any thread, the event loop's included.
    public func close() {
        let first: Bool = monitor.withLock {
            if failure == nil { failure = CCLError(.closed, operation: "store", peer: peer, "the client was closed") }
            monitor.broadcast()
            defer { shutDown = true }
            return !shutDown
        }
        guard first else { return }
        closeChannel(channel, andShutDown: group)
    }

    // MARK: called from the event loop

    fileprivate func received(_ status: StoreWire.Status, _ payload: ByteBuffer) {
        monitor.withLock {
            response = (status, payload)
            monitor.broadcast()
        }
    }

    fileprivate func failed(_ message: String) {
        monitor.withLock {
            if failure == nil { failure = CCLError(.peerDead, operation: "store", peer: peer, message) }
            monitor.broadcast()
        }
    }

    // MARK: requests

    private func awaitResponse(limit: UInt64?, operation: String) throws(CCLError) -> (StoreWire.Status, ByteBuffer) {
        try monitor.withLock { () throws(CCLError) in
            let start = monotonicNanoseconds()
            while response == nil, failure == nil {
                let waited = monotonicNanoseconds() &- start
                if let limit, waited >= limit {
                    // The request may still be answered later; the connection is out of step, so
                    // it is given up (later calls fail instead of reading a stale answer).
                    if failure == nil {
                        failure = CCLError(.timeout, operation: operation, peer: peer, "an earlier request timed out; reconnect")
                    }
                    channel.close(promise: nil)
                    throw CCLError(.timeout, operation: operation, peer: peer, "the server did not answer within \(describe(limit))")
                }
                monitor.wait(nanoseconds: min(limit.map { $0 - waited } ?? .max, 100_000_000))
            }
            if let reply = response {
                response = nil
                return reply
            }
            throw (failure ?? CCLError(.peerDead, operation: operation, peer: peer, "connection lost")).context(operation: operation)
        }
    }

    /// Sends one request and waits for its response, allowing `serverTimeout` plus the grace.
    private func request(
        _ op: StoreWire.Op, operation: String, serverTimeout: Timeout? = nil, _ write: (inout ByteBuffer) -> Void
    ) throws(CCLError) -> (StoreWire.Status, ByteBuffer) {
        try requestLock.withLock { () throws(CCLError) in
            if let failure = monitor.withLock({ failure }) { throw failure.context(operation: operation) }
            let frame = StoreWire.frame(channel.allocator) { out in
                out.writeInteger(op.rawValue)
                write(&out)
            }
            channel.writeAndFlush(frame, promise: nil)
            let limit: UInt64? =
                switch serverTimeout {
                case nil: 30_000_000_000
                case .indefinite?: nil
                case .nanoseconds(let n)?: n > .max - Self.gracePeriod ? nil : n + Self.gracePeriod
                }
            let (status, payload) = try awaitResponse(limit: limit, operation: operation)
            var body = payload
            switch status {
            case .ok: return (status, body)
            case .timeout:
                let missing = (try? StoreWire.readKeys(&body)) ?? []
                throw missingKeysError(operation: operation, waited: serverTimeout?.description ?? "?", missing: missing, peer: peer)
            case .error:
                throw CCLError(.invalidArgument, operation: operation, peer: peer, body.readString(length: body.readableBytes) ?? "error")
            }
        }
    }

    private func decode<T>(_ body: ByteBuffer, operation: String, _ read: (inout ByteBuffer) throws(StoreWire.Malformed) -> T)
        throws(CCLError) -> T
    {
        var body = body
        do {
            let value = try read(&body)
            guard body.readableBytes == 0 else { throw StoreWire.Malformed(description: "trailing bytes") }
            return value
        } catch {
            close()
            throw CCLError(.malformed, operation: operation, peer: peer, "bad response: \(error)")
        }
    }

    public func set(_ key: String, _ value: [UInt8]) throws(CCLError) {
        let operation = "store set '\(key)'"
        try StoreWire.checkKey(key, operation: operation)
        try StoreWire.checkValue(value, operation: operation)
        _ = try request(.set, operation: operation) { out in
            StoreWire.writeKey(key, into: &out)
            StoreWire.writeBytes(value, into: &out)
        }
    }

    public func get(_ key: String, timeout: Timeout?) throws(CCLError) -> [UInt8] {
        let operation = "store get '\(key)'"
        try StoreWire.checkKey(key, operation: operation)
        let limit = timeout ?? defaultTimeout
        let (_, body) = try request(.get, operation: operation, serverTimeout: limit) { out in
            StoreWire.writeKey(key, into: &out)
            out.writeInteger(StoreWire.wire(limit), endianness: .little)
        }
        return try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in try StoreWire.readBytes(&b) }
    }

    public func add(_ key: String, _ delta: Int64) throws(CCLError) -> Int64 {
        let operation = "store add '\(key)'"
        try StoreWire.checkKey(key, operation: operation)
        let (_, body) = try request(.add, operation: operation) { out in
            StoreWire.writeKey(key, into: &out)
            out.writeInteger(delta, endianness: .little)
        }
        return try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in try StoreWire.readInteger(&b, as: Int64.self) }
    }

    public func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) throws(CCLError) -> [UInt8] {
        let operation = "store compareSet '\(key)'"
        try StoreWire.checkKey(key, operation: operation)
        try StoreWire.checkValue(expected, operation: operation)
        try StoreWire.checkValue(desired, operation: operation)
        let (_, body) = try request(.compareSet, operation: operation) { out in
            StoreWire.writeKey(key, into: &out)
            StoreWire.writeBytes(expected, into: &out)
            StoreWire.writeBytes(desired, into: &out)
        }
        return try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in try StoreWire.readBytes(&b) }
    }

    public func wait(_ keys: [String], timeout: Timeout?) throws(CCLError) {
        let operation = "store wait"
        for key in keys { try StoreWire.checkKey(key, operation: operation) }
        let limit = timeout ?? defaultTimeout
        _ = try request(.wait, operation: operation, serverTimeout: limit) { out in
            StoreWire.writeKeys(keys, into: &out)
            out.writeInteger(StoreWire.wire(limit), endianness: .little)
        }
    }

    public func check(_ keys: [String]) throws(CCLError) -> Bool {
        let operation = "store check"
        for key in keys { try StoreWire.checkKey(key, operation: operation) }
        let (_, body) = try request(.check, operation: operation) { StoreWire.writeKeys(keys, into: &$0) }
        return try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in try StoreWire.readInteger(&b, as: UInt8.self) }
            == 1
    }

    public func delete(_ key: String) throws(CCLError) -> Bool {
        let operation = "store delete '\(key)'"
        try StoreWire.checkKey(key, operation: operation)
        let (_, body) = try request(.delete, operation: operation) { StoreWire.writeKey(key, into: &$0) }
        return try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in try StoreWire.readInteger(&b, as: UInt8.self) }
            == 1
    }

    public func numKeys() throws(CCLError) -> Int {
        let operation = "store numKeys"
        let (_, body) = try request(.numKeys, operation: operation) { _ in }
        return Int(
            clamping: try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in
                try StoreWire.readInteger(&b, as: UInt64.self)
            })
    }

    public func keys(prefix: String) throws(CCLError) -> [String] {
        let operation = "store keys '\(prefix)'"
        try StoreWire.checkKey(prefix, operation: operation)
        var all: [String] = []
        while true {
            let after = all.last
            let (_, body) = try request(.keys, operation: operation) { out in
                StoreWire.writeKey(prefix, into: &out)
                out.writeInteger(UInt8(after == nil ? 0 : 1))
                if let after { StoreWire.writeKey(after, into: &out) }
            }
            let (more, page) = try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in
                (try StoreWire.readInteger(&b, as: UInt8.self) == 1, try StoreWire.readKeys(&b))
            }
            // A page that adds nothing while claiming more would loop for ever: a broken server.
            guard !(more && page.isEmpty) else {
                throw CCLError(.malformed, operation: operation, peer: peer, "bad response: an empty page with more to follow")
            }
            all += page
            if !more { return all }
        }
    }

    public func claim(_ key: String, _ value: [UInt8]) throws(CCLError) -> [UInt8]? {
        let operation = "store claim '\(key)'"
        try StoreWire.checkKey(key, operation: operation)
        try StoreWire.checkValue(value, operation: operation)
        let (_, body) = try request(.claim, operation: operation) { out in
            StoreWire.writeKey(key, into: &out)
            StoreWire.writeBytes(value, into: &out)
        }
        let (claimed, current) = try decode(body, operation: operation) { (b) throws(StoreWire.Malformed) in
            (try StoreWire.readInteger(&b, as: UInt8.self) == 1, try StoreWire.readBytes(&b))
        }
        return claimed ? nil : current
    }
}

private func describe(_ nanoseconds: UInt64) -> String { Timeout.nanoseconds(nanoseconds).description }

/// 50 ms between connection attempts.
private func usleepShort() {
    let pause = Monitor()
    pause.withLock { pause.wait(nanoseconds: 50_000_000) }
}

/// Between a connection's handler (on the event loop) and its client: the handshake's outcome is
/// kept here until the client is attached, so a close that comes before is never lost; after,
/// events go to the client.
private final class ClientLink: @unchecked Sendable {
    enum Outcome {
        case accepted, refused
        case closed(String)
    }

    private let monitor = Monitor()
    /// Guarded by `monitor`.
    private var outcome: Outcome?
    private var lateFailure: String?
    private weak var client: TCPStoreClient?

    func acknowledged(_ ok: Bool) {
        monitor.withLock {
            if outcome == nil { outcome = ok ? .accepted : .refused }
            monitor.broadcast()
        }
    }

    func failed(_ message: String) {
        let target: TCPStoreClient? = monitor.withLock {
            if outcome == nil { outcome = .closed(message) }
            if client == nil, lateFailure == nil { lateFailure = message }
            monitor.broadcast()
            return client
        }
        target?.failed(message)
    }

    func received(_ status: StoreWire.Status, _ payload: ByteBuffer) {
        monitor.withLock { client }?.received(status, payload)
    }

    /// The handshake's outcome, or nil after `nanoseconds` without one.
    func awaitHandshake(nanoseconds: UInt64) -> Outcome? {
        monitor.withLock {
            let start = monotonicNanoseconds()
            while outcome == nil {
                let waited = monotonicNanoseconds() &- start
                guard waited < nanoseconds else { return nil }
                monitor.wait(nanoseconds: min(nanoseconds - waited, 100_000_000))
            }
            return outcome
        }
    }

    /// Hands later events to `client`, with a failure that came between the ack and now.
    func attach(_ client: TCPStoreClient) {
        let late: String? = monitor.withLock {
            self.client = client
            return lateFailure
        }
        if let late { client.failed(late) }
    }
}

/// Reads the ack, then response frames, and hands them to the client.
private final class StoreClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let link: ClientLink
    private var buffer = ByteBuffer()
    private var acknowledged = false

    init(link: ClientLink) { self.link = link }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        if !acknowledged {
            guard buffer.readableBytes >= Handshake.ackBytes, let bytes = buffer.readBytes(length: Handshake.ackBytes) else { return }
            guard let status = Handshake.parseAck(bytes, magic: StoreWire.ackMagic) else {
                link.failed("the peer is not a swift-ccl store server")
                context.close(promise: nil)
                return
            }
            acknowledged = true
            link.acknowledged(status == 0)
        }
        do {
            while let frame = try StoreWire.nextFrame(from: &buffer) {
                var body = frame
                guard let raw = body.readInteger(as: UInt8.self), let status = StoreWire.Status(rawValue: raw) else {
                    throw StoreWire.Malformed(description: "bad response status")
                }
                link.received(status, body)
            }
            buffer.discardReadBytes()
        } catch {
            link.failed("malformed response: \(error)")
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.failed("the store server closed the connection")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        link.failed("connection error: \(error)")
        context.close(promise: nil)
    }
}
