import CCLCore
import CCLStore
import CCLSystem
import Foundation

/// Answers `TraceExchange` requests for this process's flight recorders, through the job's store,
/// from its own thread and its own store connection: it answers while the rank is blocked in a
/// collective (or in MPI, or in NCCL).
///
/// One responder per store server per process, kept while some communicator holds it (`hold`);
/// the last `Hold` to go closes its connection, which ends its thread. A responder costs one idle
/// thread and one connection waiting in the store; it does nothing until asked.
package final class TraceResponder: @unchecked Sendable {
    /// Keeps the process's responder on one store server running while it lives.
    package final class Hold: @unchecked Sendable {
        let key: String
        init(key: String) { self.key = key }
        deinit { TraceResponder.release(key) }
    }

    private static let lock = Monitor()
    /// Guarded by `lock`: the running responders by server, with how many holds each has.
    private nonisolated(unsafe) static var running: [String: (responder: TraceResponder, holds: Int)] = [:]

    private let client: TCPStoreClient
    private var next: Int64

    private init(client: TCPStoreClient, next: Int64) {
        self.client = client
        self.next = next
    }

    /// Starts (or joins) this process's responder on the server `store` talks to, and says
    /// through `store` that global rank `rank` answers (`TraceExchange.rankKey`, held by
    /// `store`'s connection); nil when it cannot connect (the job goes on without one; a timeout
    /// then reports this node only).
    package static func hold(_ store: TCPStoreClient, rank: Int) -> Hold? {
        let key = "\(store.host):\(store.port)"
        let hold = lock.withLock { () -> Hold? in
            if let entry = running[key] {
                running[key] = (entry.responder, entry.holds + 1)
                return Hold(key: key)
            }
            guard let client = try? store.connectAgain(timeout: .seconds(10)), let issued = try? issuedRequests(client) else { return nil }
            let responder = TraceResponder(client: client, next: issued + 1)
            running[key] = (responder, 1)
            let thread = Thread { responder.serve() }
            thread.name = "ccl-trace-responder"
            thread.start()
            return Hold(key: key)
        }
        if hold != nil {
            _ = try? store.claim(TraceExchange.rankKey(rank), Array("\(NodeIdentity.hostName())-\(ProcessIdentity.current().pid)".utf8))
        }
        return hold
    }

    private static func release(_ key: String) {
        let stopping: TraceResponder? = lock.withLock {
            guard let entry = running[key] else { return nil }
            if entry.holds > 1 {
                running[key] = (entry.responder, entry.holds - 1)
                return nil
            }
            running[key] = nil
            return entry.responder
        }
        stopping?.client.close()
    }

    /// Waits for request after request until the connection closes (released, or the server is
    /// gone). A request that never appears (its maker died between counting and setting it) is
    /// skipped once a later one is counted.
    private func serve() {
        while true {
            do {
                _ = try client.get(TraceExchange.requestKey(next), timeout: .seconds(10))
            } catch  where error.code == .timeout {
                if let issued = try? Self.issuedRequests(client), issued > next { next += 1 }
                continue
            } catch {
                return
            }
            answer(next)
            next += 1
        }
    }

    /// How many requests were made so far, without making the counter (a job that never asks
    /// leaves no key behind).
    private static func issuedRequests(_ client: TCPStoreClient) throws(CCLError) -> Int64 {
        guard try client.check([TraceExchange.counterKey]) else { return 0 }
        return Int64(String(decoding: try client.get(TraceExchange.counterKey, timeout: .seconds(5)), as: UTF8.self)) ?? 0
    }

    private func answer(_ number: Int64) {
        let me = ProcessIdentity.current().pid
        let host = NodeIdentity.hostName()
        let report = TraceReport(
            host: host, pid: me, now: monotonicNanoseconds(), snapshots: TraceReader.local().filter { $0.pid == me })
        guard let bytes = try? report.encoded() else { return }
        _ = try? client.set(TraceExchange.replyPrefix(number) + "\(host)-\(me)", bytes)
    }
}
