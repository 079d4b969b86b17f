import CCLCollectiveAPI
import CCLCore
import Testing

@testable import CCLTrace

/// How the recorder learns that device calls completed: from stream markers, without blocking.
/// No GPU here, so the device communicator and its markers are stand-ins (a marker that says it
/// is reached when the test says so, as a CUDA event does when its stream passes it); the CUDA
/// event marker itself runs in scripts/gpu-check.sh.
@Suite struct DeviceCompletionTests {
    /// A stand-in for the NCCL communicator: every call "enqueued" on the stream it was given.
    final class StandInDevice: Communicator, StreamMarking, @unchecked Sendable {
        final class Marker: StreamMarker {
            let owner: StandInDevice
            init(owner: StandInDevice) { self.owner = owner }
            var isReached: Bool { owner.streamDone }
        }
        var streamDone = false
        var placed = 0
        var rank: Int { 0 }
        var worldSize: Int { 2 }
        var backend: String { "stand-in" }
        var transportDescription: String { "stand-in device" }
        var device: Device { .cuda(0) }
        func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError)
            -> Completion
        {
            Completion(sequence: 0, state: .enqueued(stream))
        }
        func abort(_ error: CCLError) {}
        func isCapturing(_ stream: DeviceStream) -> Bool { false }
        func placeMarker(on stream: DeviceStream) -> (any StreamMarker)? {
            placed += 1
            return Marker(owner: self)
        }
    }

    static let stream = DeviceStream(device: .cuda(0), handle: UnsafeMutableRawPointer(bitPattern: 0x1000))

    /// A stand-in device behind a real recorder (a /dev/shm segment) of 64 calls.
    static func recording() throws -> (StandInDevice, FlightRecorder, RecordingCommunicator) {
        let device = StandInDevice()
        let recorder = try FlightRecorder(
            group: "tp0", round: "r", rank: 0, groupRank: 0, globalRanks: [0, 1], backend: "stand-in", capacity: 64)
        return (device, recorder, RecordingCommunicator(device, recorder: recorder))
    }

    func call(_ communicator: any Communicator, times: Int) throws {
        for _ in 0..<times {
            _ = try communicator.execute(
                CollectiveCall(.allReduce(.sum), dtype: .bfloat16, count: 8), input: .none, output: .none, on: Self.stream)
        }
    }

    @Test("device calls stay enqueued until a marker after them is reached, then are completed in a batch")
    func markers() throws {
        let (device, recorder, recording) = try Self.recording()
        try call(recording, times: 20)
        var states = try TraceReader.read(recorder.name).entries.map(\.state)
        #expect(states == Array(repeating: .enqueued, count: 20), "no marker reached yet")
        #expect(device.placed == 1, "one marker outstanding at a time")
        device.streamDone = true
        try call(recording, times: RecordingCommunicator.markerInterval)
        states = try TraceReader.read(recorder.name).entries.map(\.state)
        // The first marker followed call 1; it is asked again every markerInterval calls.
        #expect(states.prefix(1) == [.completed], "\(states)")
        #expect(states.dropFirst().allSatisfy { $0 == .enqueued }, "\(states)")
        try call(recording, times: RecordingCommunicator.markerInterval)
        let entries = try TraceReader.read(recorder.name).entries
        let completed = entries.prefix { $0.state == .completed }.count
        #expect(completed > 1 && completed < entries.count, "a later marker completed a batch: \(entries.map(\.state))")
        #expect(entries.filter { $0.state == .completed }.allSatisfy { $0.end != nil })
    }

    @Test("calls on a second stream end the following: from then on device calls count as completed when enqueued")
    func severalStreams() throws {
        let (_, recorder, recording) = try Self.recording()
        try call(recording, times: 3)
        let other = DeviceStream(device: .cuda(0), handle: UnsafeMutableRawPointer(bitPattern: 0x2000))
        _ = try recording.execute(CollectiveCall(.allGather, dtype: .int8, count: 4), input: .none, output: .none, on: other)
        try call(recording, times: 2)
        #expect(try TraceReader.read(recorder.name).entries.map(\.state) == Array(repeating: .completed, count: 6))
    }

    @Test("a verdict counts enqueued device calls as in flight: the rank whose device has not completed it is inside")
    func verdict() {
        let call = CollectiveCall(.allReduce(.sum), dtype: .bfloat16, count: 8)
        func snapshot(_ rank: Int, _ states: [TraceState]) -> TraceSnapshot {
            TraceSnapshot(
                segment: "s\(rank)", pid: 1, group: "tp0", round: "r", rank: rank, groupRank: rank, worldSize: 2, globalRanks: [0, 1],
                backend: "nccl",
                entries: states.enumerated().map { index, state in
                    TraceEntry(
                        number: UInt64(index + 1), collective: UInt64(index + 1), call: call, state: state, start: 1_000,
                        end: state == .started ? nil : 2_000)
                })
        }
        let verdict = TraceVerdict.analyse(
            [snapshot(0, [.completed, .completed, .enqueued]), snapshot(1, [.completed, .completed])], now: 3_000_000_000)
        #expect(verdict?.collective == 3)
        #expect(verdict?.neverEntered == [1] && verdict?.inside == [0], "\(String(describing: verdict))")
    }
}
