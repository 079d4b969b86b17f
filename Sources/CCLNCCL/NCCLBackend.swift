import CCLBackend
import CCLCollectiveAPI
import CCLCore
import CCLStore

/// NCCL on CUDA buffers (vLLM's `PyNcclCommunicator`): the CUDA driver and NCCL are opened at run
/// time, so a machine without them builds and runs everything else; its probe says why not.
public struct NCCLBackend: Backend {
    /// The environment the libraries' variables are read from (`CCL_NCCL_SO_PATH`,
    /// `VLLM_NCCL_SO_PATH`, `CCL_CUDA_SO_PATH`, `PATH` for the pip layout), and
    /// `NCCL_MULTI_RANK_GPU_ENABLE=1` (with NCCL ≥ 2.30.7: several ranks may share a GPU).
    public let environment: [String: String]
    /// How long creating a communicator may take (the group's timeout).
    public let timeout: Timeout

    /// A backend that opens NCCL and the CUDA driver as `environment` says (`CCL_NCCL_SO_PATH`, `VLLM_NCCL_SO_PATH`, `CCL_CUDA_SO_PATH`); `timeout` bounds communicator creation.
    public init(environment: [String: String], timeout: Timeout = .seconds(300)) {
        self.environment = environment
        self.timeout = timeout
    }

    public var name: String { "nccl" }
    public var serves: Device.Kind { .cuda }

    /// Available when the CUDA driver loads and initialises, sees at least one device, and NCCL
    /// loads with every symbol at a version swift-ccl accepts.
    public func probe(_ context: BackendContext) -> BackendProbe {
        let cuda: CUDADriver
        do { cuda = try CUDADriver.load(environment: environment) } catch { return .unavailable(reason: error.message) }
        let devices: Int
        do { devices = try cuda.deviceCount() } catch { return .unavailable(reason: error.message) }
        guard devices > 0 else { return .unavailable(reason: "the CUDA driver sees no device (CUDA_VISIBLE_DEVICES?)") }
        do {
            let nccl = try NCCLLibrary.load(environment: environment)
            return .available(version: "NCCL \(nccl.version)", details: "\(nccl.path); \(devices) CUDA device\(devices == 1 ? "" : "s")")
        } catch {
            return .unavailable(reason: error.message)
        }
    }

    public func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator {
        guard case .cuda(let ordinal) = device else {
            throw CCLError(
                .invalidArgument, operation: "create NCCL communicator for group \(group.name)", "NCCL needs a CUDA device, got \(device)")
        }
        let nccl = try NCCLLibrary.load(environment: environment)
        return try NCCLCommunicator(
            group: group, nodes: nodes, ordinal: ordinal, cuda: CUDADriver.load(environment: environment), nccl: nccl, timeout: timeout,
            sharedGPUs: nccl.sharesGPUs(environment: environment))
    }
}
