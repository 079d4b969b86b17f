import CCLCollectiveAPI
import CCLTrace

extension Communicator {
    /// This communicator's windows (NCCL's symmetric memory), behind its flight recorder; nil for
    /// backends without them (`CommunicationWindows.windowsAvailable` says whether the library
    /// has them).
    public var windows: (any CommunicationWindows)? {
        unrecorded as? any CommunicationWindows
    }
}
