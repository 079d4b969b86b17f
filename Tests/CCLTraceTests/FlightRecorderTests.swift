import CCLCollectiveAPI
import CCLCore
import CCLSystem
import Testing

@testable import CCLTrace

/// The flight recorder's segment read back through `TraceReader` (a real /dev/shm segment), and
/// the verdict over recorders of a group.
@Suite struct FlightRecorderTests {
    static func recorder(rank: Int, of ranks: [Int], group: String = "tp0", capacity: Int = 8) throws -> FlightRecorder {
        try FlightRecorder(
            group: group, round: "r1", rank: ranks[rank], groupRank: rank, globalRanks: ranks, backend: "shm", capacity: capacity)
    }

    @Test("every call is read back in order with its arguments and state; the ring keeps the last N")
    func roundTrip() throws {
        let recorder = try Self.recorder(rank: 1, of: [4, 5], capacity: 4)
        let calls = [
            CollectiveCall(.allReduce(.sum), dtype: .float32, count: 1024), CollectiveCall(.send(to: 0), dtype: .int8, count: 3),
            CollectiveCall(.broadcast(root: 1), dtype: .bfloat16, count: 7), CollectiveCall(.barrier, dtype: .uint8, count: 0),
            CollectiveCall(.sendRecv(to: 0, from: 0), dtype: .int64, count: 2), CollectiveCall(.allGather, dtype: .float16, count: 9),
        ]
        for (index, call) in calls.enumerated() {
            let entry = recorder.begin(call)
            if index < calls.count - 1 { recorder.end(entry, index == 2 ? .failed : .completed) }
        }
        let snapshot = try TraceReader.read(recorder.name)
        #expect(snapshot.group == "tp0" && snapshot.round == "r1" && snapshot.backend == "shm")
        #expect(snapshot.rank == 5 && snapshot.groupRank == 1 && snapshot.worldSize == 2 && snapshot.globalRanks == [4, 5])
        #expect(snapshot.pid == ProcessIdentity.current().pid)
        #expect(snapshot.entries.map(\.number) == [3, 4, 5, 6])
        #expect(snapshot.entries.map(\.call) == Array(calls[2...]))
        #expect(snapshot.entries.map(\.state) == [.failed, .completed, .completed, .started])
        // Collectives are numbered among themselves: the send (#2) and sendRecv (#5) are not.
        #expect(snapshot.entries.map(\.collective) == [2, 3, 0, 4])
        #expect(snapshot.entries.last?.end == nil && snapshot.entries.first?.end != nil)
        #expect(TraceReader.local().contains { $0.segment == recorder.name })
    }

    @Test("CCL_TRACE_BUFFER: 2048 by default, 0 turns it off, anything else is an error naming it")
    func capacity() throws {
        #expect(try FlightRecorder.capacity(in: [:]) == 2048)
        #expect(try FlightRecorder.capacity(in: ["CCL_TRACE_BUFFER": "0"]) == 0)
        #expect(try FlightRecorder.capacity(in: ["CCL_TRACE_BUFFER": "16"]) == 16)
        #expect(try FlightRecorder.capacity(in: ["CCL_TRACE_BUFFER": ""]) == 2048)
        #expect(try FlightRecorder.capacity(in: ["CCL_TRACE_BUFFER": "1048576"]) == 1_048_576)
        let long = String(repeating: "9", count: 10_000)
        for text in ["lots", "-1", "1048577", "9223372036854775807", "NaN", " 16", "1e3", long] {
            let error = #expect(throws: CCLError.self) { _ = try FlightRecorder.capacity(in: ["CCL_TRACE_BUFFER": text]) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix("CCL_TRACE_BUFFER=\(text) is not a number of calls in 0…1048576") == true)
        }
    }

    @Test("a segment another process filled with nonsense is refused, never trusted")
    func malformedSegment() throws {
        for (worldSize, groupRank, capacity) in [(-1, 0, 4), (0, 0, 4), (70_000, 0, 4), (2, 2, 4), (2, -1, 4), (2, 0, 0), (2, 0, -5)] {
            let segment = try SharedMemorySegment.create(
                name: SegmentNames.trace.make(for: .current()), size: TraceLayout.bytes(capacity: 4))
            let base = segment.base
            base.storeBytes(of: TraceLayout.magic, toByteOffset: TraceLayout.magicOffset, as: UInt64.self)
            base.storeBytes(of: TraceLayout.version, toByteOffset: TraceLayout.versionOffset, as: UInt32.self)
            base.storeBytes(of: Int32(capacity), toByteOffset: TraceLayout.capacityOffset, as: Int32.self)
            base.storeBytes(of: Int32(worldSize), toByteOffset: TraceLayout.worldSizeOffset, as: Int32.self)
            base.storeBytes(of: Int32(groupRank), toByteOffset: TraceLayout.groupRankOffset, as: Int32.self)
            base.storeBytes(of: UInt64.max, toByteOffset: TraceLayout.recordedOffset, as: UInt64.self)
            let error = #expect(throws: CCLError.self) { _ = try TraceReader.read(segment.name) }
            #expect(error?.code == .malformed, "\(worldSize) \(groupRank) \(capacity)")
            #expect(!TraceReader.local().contains { $0.segment == segment.name })
        }
    }

    @Test("the verdict names the rank that never entered the oldest open call, with its last call")
    func neverEntered() throws {
        let ranks = [0, 1, 2]
        let recorders = try (0..<3).map { try Self.recorder(rank: $0, of: ranks) }
        for (rank, recorder) in recorders.enumerated() {
            recorder.end(recorder.begin(CollectiveCall(.broadcast(root: 0), dtype: .float32, count: 4)), .completed)
            if rank != 2 { _ = recorder.begin(CollectiveCall(.allReduce(.sum), dtype: .float32, count: 4096)) }
        }
        let verdict = try #require(TraceVerdict.analyse(try recorders.map { try TraceReader.read($0.name) }, now: monotonicNanoseconds()))
        #expect(verdict.collective == 2 && verdict.neverEntered == [2] && verdict.inside == [0, 1])
        #expect(
            verdict.text.hasPrefix(
                "allReduce(sum) float32 × 4096 #2 on group tp0 [0 1 2]: rank 2 never entered it (its last call, broadcast(root 0) float32 × 4 #1, completed "
            ), "\(verdict.text)")
        #expect(verdict.text.contains("; ranks 0 1 waiting since "), "\(verdict.text)")
    }

    @Test("the verdict names a rank that called something else, against what the others called")
    func mismatch() throws {
        let ranks = [0, 1, 2, 3]
        let recorders = try (0..<4).map { try Self.recorder(rank: $0, of: ranks) }
        for (rank, recorder) in recorders.enumerated() {
            let call =
                rank == 1
                ? CollectiveCall(.allGather, dtype: .float16, count: 4096) : CollectiveCall(.allReduce(.sum), dtype: .float32, count: 4096)
            _ = recorder.begin(call)
        }
        let verdict = try #require(TraceVerdict.analyse(try recorders.map { try TraceReader.read($0.name) }, now: monotonicNanoseconds()))
        #expect(
            verdict.text
                == "collective #1 on group tp0 [0 1 2 3]: rank 1 called allGather float16 × 4096 where ranks 0 2 3 called allReduce(sum) float32 × 4096"
        )
    }

    @Test("all ranks inside one call, a rank without a recorder here, and nothing in flight are each said so")
    func otherVerdicts() throws {
        let ranks = [0, 1, 2]
        let recorders = try (0..<2).map { try Self.recorder(rank: $0, of: ranks) }
        let entries = recorders.map { $0.begin(CollectiveCall(.barrier, dtype: .uint8, count: 0)) }
        var verdict = try #require(TraceVerdict.analyse(try recorders.map { try TraceReader.read($0.name) }, now: monotonicNanoseconds()))
        #expect(
            verdict.text.contains("barrier #1 on group tp0 [0 1 2]: every rank here entered it; ranks 0 1 still inside since"),
            "\(verdict.text)")
        #expect(verdict.text.hasSuffix("; rank 2 has no flight recorder on this node"), "\(verdict.text)")
        for (recorder, entry) in zip(recorders, entries) { recorder.end(entry, .completed) }
        verdict = try #require(TraceVerdict.analyse(try recorders.map { try TraceReader.read($0.name) }, now: monotonicNanoseconds()))
        #expect(verdict.collective == nil)
        #expect(
            verdict.text.hasPrefix("group tp0 [0 1 2]: no collective in flight; the last, barrier #1, completed on every rank here"),
            "\(verdict.text)")
    }
}
