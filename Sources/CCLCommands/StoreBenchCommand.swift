import ArgumentParser
import CCL
import CCLSystem
import Foundation

/// `ccl bench store`: set and get throughput of the TCP store with 1 and 8 concurrent clients
/// (each a thread with its own connection; the server runs in this process on its own thread).
struct StoreBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Benchmark the TCP store.")

    @Option(help: "Client counts, comma separated.") var clients: String = "1,8"
    @Option(help: "Seconds per measurement.") var seconds: Double = 1
    @Option(help: "Value size in bytes.") var valueBytes: Int = 64
    @Flag(help: "One JSON object per line.") var json = false

    func run() throws {
        let counts = try clients.split(separator: ",").map { text -> Int in
            guard let n = Int(text), (1...256).contains(n) else { throw ValidationError("bad client count '\(text)'") }
            return n
        }
        let token = "bench-\(UInt64.random(in: 0...UInt64.max))"
        let server = try TCPStoreServer(token: token)
        if !json { print("clients  op     ops/s   p50 (µs)   p99 (µs)") }
        for count in counts {
            for op in ["set", "get"] {
                let result = try measure(clients: count, op: op, port: server.port, token: token)
                if json {
                    print(
                        "{\"clients\": \(count), \"op\": \"\(op)\", \"ops_per_s\": \(Int(result.opsPerSecond)), "
                            + "\"p50_ns\": \(result.p50), \"p99_ns\": \(result.p99)}")
                } else {
                    print(
                        String(
                            format: "%7d  %-4@ %9.0f %10.1f %10.1f", count, op, result.opsPerSecond, Double(result.p50) / 1e3,
                            Double(result.p99) / 1e3))
                }
            }
        }
        server.close()
    }

    func measure(clients: Int, op: String, port: Int, token: String) throws -> (opsPerSecond: Double, p50: UInt64, p99: UInt64) {
        let value = [UInt8](repeating: 7, count: valueBytes)
        let connections = try (0..<clients).map { _ in try TCPStoreClient(host: "127.0.0.1", port: port, token: token) }
        for (c, client) in connections.enumerated() { try client.set("bench/\(c)", value) }
        let samples = Samples()
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        for (c, client) in connections.enumerated() {
            group.enter()
            Thread {
                var local: [UInt64] = []
                var failure: (any Error)?
                while monotonicNanoseconds() < deadline {
                    let start = monotonicNanoseconds()
                    do {
                        if op == "set" { try client.set("bench/\(c)", value) } else { _ = try client.get("bench/\(c)") }
                    } catch {
                        failure = error
                        break
                    }
                    local.append(monotonicNanoseconds() - start)
                }
                samples.add(local, failure)
                group.leave()
            }.start()
        }
        group.wait()
        if let failure = samples.failure { throw failure }
        let all = samples.values.sorted()
        return (Double(all.count) / seconds, percentile(all, 0.5), percentile(all, 0.99))
    }
}

/// Latencies gathered from client threads.
private final class Samples: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [UInt64] = []
    private(set) var failure: (any Error)?

    func add(_ more: [UInt64], _ error: (any Error)?) {
        lock.withLock {
            values += more
            failure = failure ?? error
        }
    }
}
