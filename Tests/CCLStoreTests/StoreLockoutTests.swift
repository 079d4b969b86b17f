import CCLCore
import CCLStore
import CCLTestSupport
import Foundation
import Testing

/// Issue 9, items 1 and 2: idle sockets must not lock real clients out of the store, and a client
/// must see a close before the handshake at once and try again until its own timeout.
@Suite(.serialized) struct StoreLockoutTests {
    @Test("200 idle connections (more than the cap) do not keep a real client out")
    func idleSocketsDoNotLockOut() throws {
        let server = try TCPStoreServer(token: "lockout")
        let idle = try (0..<200).map { _ in try RawSocket.connect(port: server.port) }
        let start = Date()
        let client = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "lockout", timeout: .seconds(20))
        try client.set("k", [7])
        #expect(try client.get("k") == [7])
        #expect(Date().timeIntervalSince(start) < 10, "served while the idle sockets were still open")
        withExtendedLifetime(idle) {}
    }

    @Test("idle sockets are closed after the hello deadline")
    func helloDeadline() throws {
        let server = try TCPStoreServer(token: "lockout")
        let silent = try RawSocket.connect(port: server.port)
        silent.setReceiveTimeout(seconds: 5)
        let start = Date()
        #expect(silent.peerClosed())
        #expect(Date().timeIntervalSince(start) < 4.5, "closed by the 2 s hello deadline, not the 10 s stall timeout")
    }

    @Test("a server that closes before the handshake: the client retries until its timeout and says so")
    func closedBeforeHandshake() throws {
        let (listener, port) = try RawSocket.listen()
        let stop = Stopper()
        let closer = Thread {
            while !stop.stopped, let accepted = listener.accept() { _ = accepted }  // accept and close at once
        }
        closer.start()
        defer { stop.stop() }
        let start = Date()
        let error = #expect(throws: CCLError.self) {
            _ = try TCPStoreClient(host: "127.0.0.1", port: port, token: "t", timeout: .seconds(1))
        }
        let waited = Date().timeIntervalSince(start)
        #expect(error?.code == .peerDead)
        #expect(error?.message.hasPrefix("closed by the server before the handshake") == true, "\(String(describing: error))")
        #expect(waited >= 0.9 && waited < 5, "retried until its 1 s timeout, not 10 s: \(waited)")
    }
}

private final class Stopper: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var stopped: Bool { lock.withLock { flag } }
    func stop() { lock.withLock { flag = true } }
}
