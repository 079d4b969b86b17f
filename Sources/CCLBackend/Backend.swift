import CCLCollectiveAPI
import CCLCore
import CCLStore

/// One way to run collectives (shared memory, TCP, NCCL, MPI, …): it says whether it can run
/// here (`probe`) and makes a communicator for a group (`make`). Each backend carries its own
/// options. The registry (`BackendRegistry` in `CCL`) is the only place that lists them;
/// `BackendChoice.choose` picks one.
///
/// MLX's `is_available()` + `init(strict)`, keeping the reason why not.
public protocol Backend: Sendable {
    /// The name users give in `CCL_BACKEND` ("shm", "tcp", "hierarchical", "nccl", "mpi").
    var name: String { get }
    /// The buffers its communicators take.
    var serves: Device.Kind { get }
    /// Whether it can serve a group like `context` on this machine. Cheap enough to call once per
    /// group creation (a library is opened at most once per process); never throws.
    func probe(_ context: BackendContext) -> BackendProbe
    /// Makes the communicator of `group` (collective: every rank of the group calls it, with the
    /// same backend). `nodes` gives the node of each group rank; `device` is this rank's device.
    func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator
}

/// What a probe and the choice look at: the buffers' device, where the group's ranks live, and
/// how the job was launched.
public struct BackendContext: Sendable, Equatable {
    /// The kind of device whose buffers the communicator will be given.
    public var device: Device.Kind
    /// Ranks in the group.
    public var worldSize: Int
    /// Distinct nodes among the group's ranks.
    public var nodeCount: Int
    /// The launcher's convention (`LaunchEnvironment.source`); nil when unknown.
    public var launcher: LaunchEnvironment.Source?

    /// A context from counts (tests, and callers without a node layout).
    public init(device: Device.Kind, worldSize: Int, nodeCount: Int, launcher: LaunchEnvironment.Source? = nil) {
        self.device = device
        self.worldSize = worldSize
        self.nodeCount = nodeCount
        self.launcher = launcher
    }

    /// The context of a group with node layout `nodes`.
    public init(device: Device.Kind, nodes: NodeLayout, launcher: LaunchEnvironment.Source? = nil) {
        self.init(device: device, worldSize: nodes.nodeOfRank.count, nodeCount: nodes.nodeCount, launcher: launcher)
    }

    /// Every rank on a node of its own.
    public var onePerNode: Bool { nodeCount == worldSize }
    /// Started by `mpirun`/`srun` with MPI's variables.
    public var launchedByMPI: Bool { launcher == .openMPI || launcher == .pmi }
}

/// A backend's answer to `probe`.
public enum BackendProbe: Sendable, Equatable, CustomStringConvertible {
    /// It can run: the library's version (empty for built-in backends) and what it found.
    case available(version: String, details: String)
    /// It cannot: the reason, naming what was tried ("libnccl.so.2 not found (tried: …)").
    case unavailable(reason: String)

    /// Whether the backend can serve here.
    public var isAvailable: Bool {
        if case .available = self { return true }
        return false
    }

    /// "available (NCCL 2.28.3)", "unavailable: libcuda.so.1 not found (tried: …)".
    public var description: String {
        switch self {
        case .available(let version, let details):
            "available" + (version.isEmpty ? "" : " (\(version))") + (details.isEmpty ? "" : ": \(details)")
        case .unavailable(let reason): "unavailable: \(reason)"
        }
    }
}
