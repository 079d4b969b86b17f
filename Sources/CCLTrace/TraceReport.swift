import CCLCollectiveAPI
import CCLCore

/// What one process's flight recorders held, as it travels through the store to a rank or a
/// `ccl trace --addr` on another node: the last calls of each of its communicators, with the
/// process's own clock reading so that the receiver can turn its times into its own clock.
///
/// Bounded both ways: a process sends at most `maxSnapshots` recorders of `maxEntries` calls,
/// and a receiver refuses more, or fields no writer makes (it trusts nothing from the network).
package struct TraceReport: Codable, Sendable, Equatable {
    package static let maxSnapshots = 32
    package static let maxEntries = 32
    static let maxText = 64

    struct Entry: Codable, Sendable, Equatable {
        var number: UInt64
        var collective: UInt64
        var kind: UInt8
        var reduce: UInt8
        var dtype: UInt8
        var first: Int32
        var second: Int32
        var count: Int64
        var state: UInt8
        var start: UInt64
        var end: UInt64
    }

    struct Recorder: Codable, Sendable, Equatable {
        var group: String
        var round: String
        var backend: String
        var rank: Int32
        var groupRank: Int32
        var worldSize: Int32
        var globalRanks: [Int32]
        var entries: [Entry]
    }

    /// The answering process: its host, pid and CLOCK_MONOTONIC when it answered.
    package var host: String
    package var pid: Int32
    package var now: UInt64
    var recorders: [Recorder]

    /// The report of `snapshots` (a process's own recorders), taken at `now`.
    package init(host: String, pid: Int32, now: UInt64, snapshots: [TraceSnapshot]) {
        self.host = Self.truncated(host, bytes: Self.maxText)
        self.pid = pid
        self.now = now
        recorders = snapshots.prefix(Self.maxSnapshots).map { snapshot in
            Recorder(
                group: Self.truncated(snapshot.group, bytes: Self.maxText), round: Self.truncated(snapshot.round, bytes: Self.maxText),
                backend: Self.truncated(snapshot.backend, bytes: 32), rank: Int32(truncatingIfNeeded: snapshot.rank),
                groupRank: Int32(truncatingIfNeeded: snapshot.groupRank), worldSize: Int32(truncatingIfNeeded: snapshot.worldSize),
                globalRanks: snapshot.globalRanks.prefix(TraceLayout.maxListedRanks).map { Int32(truncatingIfNeeded: $0) },
                entries: snapshot.entries.suffix(Self.maxEntries).map { entry in
                    let (kind, reduce, first, second) = TraceOp.encode(entry.call.op)
                    return Entry(
                        number: entry.number, collective: entry.collective, kind: kind, reduce: reduce, dtype: entry.call.dtype.rawValue,
                        first: first, second: second, count: Int64(entry.call.count), state: entry.state.rawValue, start: entry.start,
                        end: entry.end ?? 0)
                })
        }
    }

    /// The bytes of this report.
    package func encoded() throws(CCLError) -> [UInt8] {
        do {
            return try CCLBinaryEncoder().encode(self)
        } catch {
            throw CCLError(.invalidArgument, operation: "encode a flight-recorder report", "\(error)")
        }
    }

    /// The report in `bytes`, refused when malformed or beyond the bounds.
    package static func decode(_ bytes: [UInt8], from peer: String) throws(CCLError) -> TraceReport {
        let operation = "read the flight-recorder report of \(peer)"
        let report: TraceReport
        do {
            report = try CCLBinaryDecoder(maxDepth: 8, maxCollectionCount: 4096).decode(TraceReport.self, from: bytes)
        } catch {
            throw CCLError(.malformed, operation: operation, peer: peer, "not a report: \(error)")
        }
        guard report.host.utf8.count <= maxText, report.recorders.count <= maxSnapshots,
            report.recorders.allSatisfy({ recorder in
                recorder.entries.count <= maxEntries && recorder.globalRanks.count <= TraceLayout.maxListedRanks
                    && (1...Int32(TraceLayout.maxGroupSize)).contains(recorder.worldSize)
                    && (0..<recorder.worldSize).contains(recorder.groupRank)
                    && [recorder.group, recorder.round, recorder.backend].allSatisfy { $0.utf8.count <= maxText }
            })
        else {
            throw CCLError(.malformed, operation: operation, peer: peer, "a report beyond its bounds (recorders, calls, ranks or names)")
        }
        var clean = report
        clean.host = printable(report.host)
        for index in clean.recorders.indices {
            clean.recorders[index].group = printable(clean.recorders[index].group)
            clean.recorders[index].round = printable(clean.recorders[index].round)
            clean.recorders[index].backend = printable(clean.recorders[index].backend)
        }
        return clean
    }

    /// The longest start of `text` (whole characters) of at most `bytes` UTF-8 bytes.
    static func truncated(_ text: String, bytes: Int) -> String {
        var result = ""
        for character in text {
            guard result.utf8.count + character.utf8.count <= bytes else { break }
            result.append(character)
        }
        return result
    }

    /// `text` with control characters replaced by "?": names from another process are printed.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
    }

    /// The recorders as snapshots whose times are on the receiver's clock: `receivedAt` is the
    /// receiver's CLOCK_MONOTONIC when it read the report (the transit, milliseconds, is
    /// ignored). Entries with fields no writer makes are dropped.
    package func snapshots(receivedAt: UInt64) -> [TraceSnapshot] {
        let shift = { (time: UInt64) -> UInt64 in
            let age = now >= time ? now - time : 0
            return receivedAt >= age ? receivedAt - age : 0
        }
        return recorders.map { recorder in
            TraceSnapshot(
                segment: "\(host):\(pid)", pid: pid, group: recorder.group, round: recorder.round, rank: Int(recorder.rank),
                groupRank: Int(recorder.groupRank), worldSize: Int(recorder.worldSize), globalRanks: recorder.globalRanks.map { Int($0) },
                backend: recorder.backend,
                entries: recorder.entries.compactMap { entry in
                    guard let op = TraceOp.decode(kind: entry.kind, reduce: entry.reduce, first: entry.first, second: entry.second),
                        let dtype = DType(rawValue: entry.dtype), let state = TraceState(rawValue: entry.state), entry.count >= 0,
                        entry.collective <= entry.number
                    else { return nil }
                    return TraceEntry(
                        number: entry.number, collective: entry.collective, call: CollectiveCall(op, dtype: dtype, count: Int(entry.count)),
                        state: state, start: shift(entry.start), end: state == .started || entry.end == 0 ? nil : shift(entry.end))
                }, host: host)
        }
    }
}
