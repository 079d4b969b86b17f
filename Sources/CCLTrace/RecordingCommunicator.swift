import CCLCollectiveAPI
import CCLCore
import CCLStore

/// A communicator whose every call goes through a `FlightRecorder` first: the one place that
/// records, for every backend (the registry wraps each group communicator it makes).
///
/// When a call times out (or a peer gives up on it or dies), the error gains the verdict of the
/// group's recorders ("flight recorders on this node: allReduce(sum) float32 × 7 #1 on group
/// world [0 1 2]: rank 1 never entered it (…)"), so a rank that is alive but elsewhere is named
/// with what it did last. Ranks with no recorder on this node are asked through the job's store
/// (`TraceExchange`, at most `TraceExchange.defaultWait`), and the error then says "flight
/// recorders of the group's ranks".
///
/// Device backends (`StreamMarking`) enqueue calls; their completion is learnt from stream
/// markers (CUDA events) without blocking, in batches (`follow`).
///
/// Threading and errors: those of the communicator it wraps; recording never fails a call.
package final class RecordingCommunicator: Communicator, @unchecked Sendable {
    /// The communicator that runs the calls.
    package let inner: any Communicator
    package let recorder: FlightRecorder
    /// The group's global ranks on other nodes, the job's store to ask them, and this process's
    /// hold on its `TraceResponder` (so that others can ask it).
    private let remote: Set<Int>
    private let store: (any Store)?
    private let responder: TraceResponder.Hold?
    /// A device backend's markers, the one outstanding (with the call it follows and its
    /// stream), and calls since it was last asked about.
    private let marking: (any StreamMarking)?
    private var marker: (marker: any StreamMarker, number: UInt64, stream: UnsafeMutableRawPointer?)?
    private var sinceCheck = 0
    /// Set once calls come on a second stream: a marker says nothing of other streams' calls,
    /// so from then on device calls count as completed when enqueued (as without markers).
    private var severalStreams = false
    /// How many device calls go by between two questions to the outstanding marker.
    package static let markerInterval = 16

    package init(
        _ inner: any Communicator, recorder: FlightRecorder, remote: Set<Int> = [], store: (any Store)? = nil,
        responder: TraceResponder.Hold? = nil
    ) {
        self.inner = inner
        self.recorder = recorder
        self.remote = remote
        self.store = store
        self.responder = responder
        marking = inner as? any StreamMarking
    }

    // The marker (a CUDA event) goes before the communicator that made it (and its context).
    deinit { marker = nil }

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
            switch completion.state {
            case .done:
                recorder.end(entry, .completed)
            case .enqueued(let stream):
                recorder.end(entry, .enqueued)
                if let marking { follow(stream, marking) }
            }
            return completion
        } catch {
            // The verdict is read while this rank's entry still says it waits in the call.
            // A rank that timed out, and one told by it that it gave up (peerDead), both say who held
            // the call up.
            let verdict =
                error.code == .timeout || error.code == .peerDead
                // Only a rank that timed out asks other nodes; those told by it (peerDead) take
                // a verdict another rank is making, if any.
                ? TraceExchange.verdict(
                    group: recorder.group, round: recorder.round, remote: remote, store: store, collective: recorder.collectiveCount,
                    mayAsk: error.code == .timeout) : nil
            recorder.end(entry, .failed)
            guard let verdict else { throw error }
            var explained = error
            explained.message += "; flight recorders \(verdict.scope): \(verdict.text)"
            throw explained
        }
    }

    /// Device calls are marked completed in batches: one marker is outstanding at a time; every
    /// `markerInterval` calls it is asked (without blocking) whether the stream reached it, and
    /// when it has, the calls before it are marked completed and a new marker is placed. Nothing
    /// is placed or asked while the stream is captured into a graph. Calls on a second stream end
    /// the following: from then on they count as completed when enqueued. A stream that hangs
    /// leaves its calls enqueued, which verdicts count as in flight.
    private func follow(_ stream: DeviceStream, _ marking: any StreamMarking) {
        if severalStreams {
            recorder.complete(through: recorder.callCount)
            return
        }
        if let current = marker {
            guard current.stream == stream.handle else {
                severalStreams = true
                marker = nil
                recorder.complete(through: recorder.callCount)
                return
            }
            sinceCheck += 1
            guard sinceCheck >= Self.markerInterval else { return }
            sinceCheck = 0
            guard !marking.isCapturing(stream), current.marker.isReached else { return }
            recorder.complete(through: current.number)
        } else {
            sinceCheck += 1
            guard sinceCheck >= Self.markerInterval || recorder.callCount == 1 else { return }
            sinceCheck = 0
        }
        marker = marking.isCapturing(stream) ? nil : marking.placeMarker(on: stream).map { ($0, recorder.callCount, stream.handle) }
    }

    package func abort(_ error: CCLError) { inner.abort(error) }
}

extension Communicator {
    /// The communicator that runs the calls: this one's inner when it is a recorder, else itself.
    package var unrecorded: any Communicator { (self as? RecordingCommunicator)?.inner ?? self }
}
