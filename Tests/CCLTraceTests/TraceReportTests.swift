import CCLCollectiveAPI
import CCLCore
import Testing

@testable import CCLTrace

/// The report a process sends through the store: what goes in comes out, on the receiver's
/// clock, and hostile bytes are refused without a trap.
@Suite struct TraceReportTests {
    static let snapshot = TraceSnapshot(
        segment: "/ccl-t-x", pid: 42, group: "tp0", round: "r1", rank: 5, groupRank: 1, worldSize: 4, globalRanks: [4, 5, 6, 7],
        backend: "shm",
        entries: [
            TraceEntry(
                number: 1, collective: 1, call: CollectiveCall(.allReduce(.sum), dtype: .bfloat16, count: 4096), state: .completed,
                start: 1_000, end: 2_000),
            TraceEntry(
                number: 2, collective: 0, call: CollectiveCall(.sendRecv(to: 2, from: 0), dtype: .int8, count: 3), state: .started,
                start: 9_000, end: nil),
        ])

    @Test("a report round-trips, its times moved onto the receiver's clock")
    func roundTrip() throws {
        let report = TraceReport(host: "node-a", pid: 42, now: 10_000, snapshots: [Self.snapshot])
        let decoded = try TraceReport.decode(report.encoded(), from: "node-a-42")
        #expect(decoded == report)
        let moved = decoded.snapshots(receivedAt: 1_000_000)
        #expect(moved.count == 1)
        #expect(moved[0].host == "node-a")
        #expect(moved[0].entries.map(\.call) == Self.snapshot.entries.map(\.call))
        #expect(moved[0].entries.map(\.start) == [991_000, 999_000], "9 µs and 1 µs before the report, on the receiver's clock")
        #expect(moved[0].entries.map(\.end) == [992_000, nil])
    }

    @Test("a report keeps the last calls only, and a process's first recorders only")
    func bounded() throws {
        var long = Self.snapshot
        long.entries = (1...100).map { n in
            TraceEntry(
                number: UInt64(n), collective: UInt64(n), call: CollectiveCall(.barrier, dtype: .uint8, count: 0), state: .completed,
                start: 1, end: 2)
        }
        let report = TraceReport(host: "h", pid: 1, now: 3, snapshots: Array(repeating: long, count: 50))
        let decoded = try TraceReport.decode(report.encoded(), from: "h-1").snapshots(receivedAt: 3)
        #expect(decoded.count == TraceReport.maxSnapshots)
        #expect(decoded[0].entries.map(\.number) == Array(UInt64(100 - TraceReport.maxEntries + 1)...100))
    }

    @Test("malformed, truncated and out-of-bounds reports are refused, naming the peer")
    func hostile() throws {
        let good = try TraceReport(host: "h", pid: 1, now: 3, snapshots: [Self.snapshot]).encoded()
        for cut in [0, 1, good.count / 2, good.count - 1] {
            #expect(throws: CCLError.self) { try TraceReport.decode(Array(good.prefix(cut)), from: "h-1") }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var bytes = good
            for _ in 0..<4 { bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            _ = try? TraceReport.decode(bytes, from: "h-1").snapshots(receivedAt: 0)  // refused or read; never a trap
        }
        var wide = Self.snapshot
        wide.worldSize = 0
        let error = #expect(throws: CCLError.self) {
            try TraceReport.decode(TraceReport(host: "h", pid: 1, now: 3, snapshots: [wide]).encoded(), from: "node-b-7")
        }
        #expect(error?.message.contains("beyond its bounds") == true)
        #expect(error?.operation.contains("node-b-7") == true)
    }
}
