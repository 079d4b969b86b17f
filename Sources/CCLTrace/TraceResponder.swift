import CCLCore
import CCLStore
import CCLSystem
import Foundation

/// Answers `TraceExchange` requests for this process's flight recorders, through the job's store,
/// from its own thread and its own store connection: it answers while the rank is blocked in a
/// collective (or in MPI, or in NCCL).
///
/// One responder per store server per process, kept while some communicator holds it (`hold`);
/// the last `Hold` to go closes its connection, which ends its thread, and deletes the ranks'
/// claims (`TraceExchange.rankKey`). A responder costs one idle thread and one connection waiting
/// in the store; it does nothing until asked. A connection that breaks (the server gone or
/// stalled past the client's limit) ends it the same way, and the next communicator starts a
/// new one.
package final class TraceResponder: @unchecked Sendable {
    /// Keeps the process's responder on one store server running while it lives.
    package final class Hold: @unchecked Sendable {
        let key: String
        init(key: String) { self.key = key }
        deinit { TraceResponder.release(key, responder: nil) }
    }

    private static let lock = Monitor()
    /// Guarded by `lock`: the running responders by server, with how many holds each has.
    private nonisolated(unsafe) static var running: [String: (responder: TraceResponder, holds: Int)] = [:]

    private let key: String
    private let client: TCPStoreClient
    /// The job's client that holds this process's rank claims (deleted when the responder ends).
    private let claims: TCPStoreClient
    /// Guarded by `lock`.
    private var ranks: Set<Int> = []
    private var next: Int64
    /// How long one wait for the next request lasts before the counter is read again.
    static let pollTimeout: Timeout = .seconds(30)

    private init(key: String, client: TCPStoreClient, claims: TCPStoreClient, next: Int64) {
        self.key = key
        self.client = client
        self.claims = claims
        self.next = next
    }

    /// Starts (or joins) this process's responder on the server `store` talks to, and says
    /// through `store` that global rank `rank` answers (`TraceExchange.rankKey`, held by
    /// `store`'s connection); nil when it cannot connect (the job goes on without one; a timeout
    /// then reports this node only).
    package static func hold(_ store: TCPStoreClient, rank: Int) -> Hold? {
        let key = "\(store.host):\(store.port)"
        var responder = lock.withLock { running[key]?.responder }
        if responder == nil {
            // Connected outside the lock: other communicators are not held up by a slow server.
            guard let client = try? store.connectAgain(timeout: .seconds(10)), let issued = try? issuedRequests(client) else { return nil }
            let started = TraceResponder(key: key, client: client, claims: store, next: issued + 1)
            let raced: TraceResponder? = lock.withLock {
                if let other = running[key]?.responder { return other }
                running[key] = (started, 0)
                return nil
            }
            if let raced {
                client.close()
                responder = raced
            } else {
                responder = started
                let thread = Thread { started.serve() }
                thread.name = "ccl-trace-responder"
                thread.start()
            }
        }
        guard let responder else { return nil }
        let counted: Bool = lock.withLock {
            guard let entry = running[key], entry.responder === responder else { return false }
            running[key] = (responder, entry.holds + 1)
            responder.ranks.insert(rank)
            return true
        }
        guard counted else { return nil }
        _ = try? store.claim(TraceExchange.rankKey(rank), Array("\(NodeIdentity.hostName())-\(ProcessIdentity.current().pid)".utf8))
        return Hold(key: key)
    }

    /// One hold fewer (`responder` nil), or the responder ended (its connection broke): the last
    /// hold, or the end, stops it and deletes its ranks' claims.
    private static func release(_ key: String, responder ended: TraceResponder?) {
        let stopping: TraceResponder? = lock.withLock {
            guard let entry = running[key] else { return nil }
            if let ended {
                guard entry.responder === ended else { return nil }
            } else if entry.holds > 1 {
                running[key] = (entry.responder, entry.holds - 1)
                return nil
            }
            running[key] = nil
            return entry.responder
        }
        guard let stopping else { return }
        stopping.client.close()
        let ranks = lock.withLock { stopping.ranks }
        for rank in ranks { _ = try? stopping.claims.delete(TraceExchange.rankKey(rank)) }
    }

    /// Waits for request after request. A request marked done (its maker has what it wanted)
    /// or for ranks this process does not hold is skipped; one that never appears (its maker
    /// died between counting and setting it) is skipped once the wait times out. Ends when the
    /// connection closes or breaks.
    private func serve() {
        while true {
            let request: [UInt8]
            do {
                request = try client.get(TraceExchange.requestKey(next), timeout: Self.pollTimeout)
            } catch  where error.code == .timeout && !client.isBroken {
                if let issued = try? Self.issuedRequests(client), issued > next { next += 1 }
                continue
            } catch {
                Self.release(key, responder: self)
                return
            }
            if TraceExchange.wants(request, any: Self.lock.withLock({ ranks })) {
                answer(next)
            }
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
            host: host, pid: me, now: monotonicNanoseconds(), snapshots: TraceReader.local(pid: me))
        guard let bytes = try? report.encoded() else { return }
        _ = try? client.set(TraceExchange.replyPrefix(number) + "\(host)-\(me)", bytes)
    }
}
