import CCLCollectiveAPI
import CCLCore

/// A communicator whose every call goes through a `FlightRecorder` first: the one place that
/// records, for every backend (the registry wraps each group communicator it makes).
///
/// Threading and errors: those of the communicator it wraps; recording never fails a call.
package final class RecordingCommunicator: Communicator, @unchecked Sendable {
    /// The communicator that runs the calls.
    package let inner: any Communicator
    package let recorder: FlightRecorder

    package init(_ inner: any Communicator, recorder: FlightRecorder) {
        self.inner = inner
        self.recorder = recorder
    }

    package var rank: Int { inner.rank }
    package var worldSize: Int { inner.worldSize }
    package var backend: String { inner.backend }
    package var transportDescription: String { inner.transportDescription }
    package var device: Device { inner.device }

    package func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError)
        -> Completion
    {
        let entry = recorder.begin(call)
        do {
            let completion = try inner.execute(call, input: input, output: output, on: stream)
            recorder.end(entry, completion.state == .done ? .completed : .enqueued)
            return completion
        } catch {
            recorder.end(entry, .failed)
            throw error
        }
    }

    package func abort(_ error: CCLError) { inner.abort(error) }
}
