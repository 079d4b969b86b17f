/// A point on a device stream after the work enqueued before it, which the host can ask about
/// without blocking (a CUDA event): how a flight recorder learns that a device call completed.
///
/// Threading: the thread that uses its communicator. Ownership: releasing it frees the event.
package protocol StreamMarker: AnyObject {
    /// Whether the stream has run everything enqueued before the marker.
    var isReached: Bool { get }
}

/// A device communicator that can mark its streams (`StreamMarker`); host backends finish every
/// call before returning and need none.
package protocol StreamMarking: AnyObject {
    /// A marker after the work enqueued so far on `stream`; nil when none can be placed (the
    /// recorder then leaves device calls as enqueued).
    func placeMarker(on stream: DeviceStream) -> (any StreamMarker)?
    /// Whether `stream` is being captured into a graph: no marker is placed or asked about then
    /// (an event on a capturing stream would become part of the user's graph).
    func isCapturing(_ stream: DeviceStream) -> Bool
}
