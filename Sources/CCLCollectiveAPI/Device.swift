/// Where a buffer's memory lives.
public enum Device: Sendable, Hashable, CustomStringConvertible {
    /// Host memory, reachable by any CPU thread of the process.
    case host
    /// Memory of the CUDA device with this ordinal (`CUdevice`), reachable through the driver API.
    case cuda(Int)

    /// Inlinable, so the per-call checks compare devices without a call.
    @inlinable
    public static func == (lhs: Device, rhs: Device) -> Bool {
        switch (lhs, rhs) {
        case (.host, .host): true
        case (.cuda(let a), .cuda(let b)): a == b
        default: false
        }
    }

    /// True for `.host` (a pattern match, cheaper on the per-call path than `==`).
    @inlinable
    public var isHost: Bool {
        if case .host = self { return true }
        return false
    }

    /// The family of devices, without an ordinal: what a backend serves.
    public var kind: Kind {
        switch self {
        case .host: .host
        case .cuda: .cuda
        }
    }

    /// What a backend serves: host memory or CUDA devices.
    public enum Kind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case host, cuda
        /// "host", "cuda".
        public var description: String { rawValue }
    }

    /// `"host"`, `"cuda:0"`.
    public var description: String {
        switch self {
        case .host: "host"
        case .cuda(let ordinal): "cuda:\(ordinal)"
        }
    }
}

/// A region of memory on a device that one call reads or writes: its start, its size in bytes and
/// its device. It does not own the memory: the caller keeps it alive and unchanged until the call
/// completes (on return for host backends, when the stream reaches the call for device backends).
///
/// An empty buffer may have no start (`base == nil`); it is never dereferenced.
public struct DeviceBuffer: @unchecked Sendable {
    /// Where the buffer starts (nil only when empty).
    public var base: UnsafeMutableRawPointer?
    /// Its size in bytes.
    public var bytes: Int
    /// The device its memory is on.
    public var device: Device

    /// A buffer of `bytes` at `base` on `device`; the caller keeps it alive through the call
    /// (or, on a stream, until the stream has passed it).
    @inlinable
    public init(base: UnsafeMutableRawPointer?, bytes: Int, device: Device) {
        self.base = base
        self.bytes = bytes
        self.device = device
    }

    /// Host memory that the call writes (or reads).
    @inlinable
    public static func host(_ buffer: UnsafeMutableRawBufferPointer) -> DeviceBuffer {
        DeviceBuffer(base: buffer.baseAddress, bytes: buffer.count, device: .host)
    }

    /// Host memory that the call only reads (the communicator never writes through it).
    @inlinable
    public static func host(_ buffer: UnsafeRawBufferPointer) -> DeviceBuffer {
        DeviceBuffer(base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), bytes: buffer.count, device: .host)
    }

    /// No memory (the unused side of a send, a recv or a barrier).
    @inlinable
    public static var none: DeviceBuffer { DeviceBuffer(base: nil, bytes: 0, device: .host) }

    /// No negative size, and a start whenever there are bytes: what every call checks first (a
    /// buffer with bytes and no start would make a backend write somewhere else).
    @inlinable
    public var isWellFormed: Bool { bytes >= 0 && (bytes == 0 || base != nil) }

    /// The host view of a host buffer, for reading.
    @inlinable
    public var hostBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: bytes) }
    /// The host view of a host buffer, for writing.
    @inlinable
    public var mutableHostBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: bytes) }
}

/// An ordered queue of work on a device (a `CUstream` for CUDA). Host backends run every call on
/// the caller's thread before returning, so the host stream is synchronous.
///
/// Ownership: a stream does not own its handle; whoever created the CUDA stream destroys it after
/// the last call enqueued on it has completed.
public struct DeviceStream: @unchecked Sendable, Equatable {
    /// The device the stream runs on.
    public var device: Device
    /// The backend's stream handle (`CUstream`); nil for the host and for a device's default stream.
    public var handle: UnsafeMutableRawPointer?

    /// A stream of `device`; `handle` stays the caller's.
    @inlinable
    public init(device: Device, handle: UnsafeMutableRawPointer?) {
        self.device = device
        self.handle = handle
    }

    /// The caller's thread: a call on it has finished when it returns.
    @inlinable
    public static var host: DeviceStream { DeviceStream(device: .host, handle: nil) }
}
