import CCLCore

/// A communicator that registers device memory for faster collectives on it: NCCL's
/// symmetric-memory windows (NCCL 2.27 and later; vLLM's `register_comm_window`).
///
/// Allocate with `allocateWindowMemory` on every rank, the same size, register it (collective),
/// run collectives on buffers inside it, then deregister (collective) and free. Where the loaded
/// library has no windows, `windowsAvailable` is false and the calls throw `.unavailable`.
/// Threading: the communicator's.
public protocol CommunicationWindows: Communicator {
    /// Whether the backend's library has windows.
    var windowsAvailable: Bool { get }
    /// `bytes` of this communicator's device memory suited to windows (`ncclMemAlloc`).
    func allocateWindowMemory(bytes: Int) throws(CCLError) -> DeviceBuffer
    /// Frees memory from `allocateWindowMemory`, once no window covers it (`ncclMemFree`).
    func freeWindowMemory(_ buffer: DeviceBuffer) throws(CCLError)
    /// Registers `buffer` as a window: collective over the group, the same size on every rank;
    /// `symmetric` when every rank's buffer came from `allocateWindowMemory`, so collectives on it
    /// may use the symmetric kernels.
    func registerWindow(_ buffer: DeviceBuffer, symmetric: Bool) throws(CCLError) -> CommunicationWindow
    /// Ends a window: collective over the group.
    func deregisterWindow(_ window: CommunicationWindow) throws(CCLError)
}

/// A registered window: the buffer it covers and the backend's handle for it.
public struct CommunicationWindow: Sendable {
    /// The memory the window covers.
    public let buffer: DeviceBuffer
    /// The backend's handle (NCCL's `ncclWindow_t`), as an address.
    package let handle: UInt

    package init(buffer: DeviceBuffer, handle: UInt) {
        self.buffer = buffer
        self.handle = handle
    }
}
