import CCL
import CCLNCCL
import Foundation

/// Host buffers staged through a GPU for `ccl bench <collective> --device cuda` and `ccl demo
/// --device cuda`: a device communicator (NCCL, through the registry), device copies of the
/// caller's host buffers, and a stream. Each call uploads the host input, runs the collective on
/// the stream and waits for it (what the bench times, as nccl-tests with a synchronisation), then
/// the output is downloaded for the host's check.
///
/// Ownership: frees its device memory and stream when it goes; the communicator's context stays
/// current on the calling thread throughout (one thread).
final class GPUStaging {
    let communicator: any Communicator
    let decision: BackendChoice.Decision?
    private let cuda: CUDADriver
    private let ordinal: Int
    private var stream: OpaquePointer?
    private var input: CUDADriver.DevicePointer = 0
    private var output: CUDADriver.DevicePointer = 0
    private var inputBytes = 0
    private var outputBytes = 0

    /// The CUDA driver and the GPU of local rank `localRank`: its own ordinal, or 0 when the rank
    /// sees one GPU (its own `CUDA_VISIBLE_DEVICES`).
    ///
    /// - Throws: `CCLError` naming what is missing ("libcuda.so.1 not found (tried: …)"), or the
    ///   local rank without a GPU.
    static func device(localRank: Int, rank: Int, environment: [String: String]) throws(CCLError) -> (CUDADriver, Int) {
        let cuda = try CUDADriver.load(environment: environment)
        let count = try cuda.deviceCount()
        let ordinal = count == 1 ? 0 : localRank
        guard ordinal < count else {
            throw CCLError(
                .unavailable, operation: "use the GPU (--device cuda)", rank: rank,
                "local rank \(localRank) has no GPU: \(count) visible (CUDA_VISIBLE_DEVICES, or fewer ranks per node)")
        }
        return (cuda, ordinal)
    }

    /// Staging for `communicator`, a device communicator on GPU `ordinal`.
    init(communicator: any Communicator, decision: BackendChoice.Decision?, cuda: CUDADriver, ordinal: Int) throws(CCLError) {
        self.communicator = communicator
        self.decision = decision
        self.cuda = cuda
        self.ordinal = ordinal
        try cuda.check(cuda.streamCreate(&stream, 1), "cuStreamCreate")
    }

    /// Staging for the world group of `setup`, on its local rank's GPU.
    convenience init(setup: RankSetup, options: CollectiveOptions) throws(CCLError) {
        let (cuda, ordinal) = try Self.device(
            localRank: setup.nodes.local(setup.world.rank).rank, rank: setup.world.rank, environment: setup.environment)
        let (communicator, decision) = try BackendRegistry(options: options).makeCommunicator(
            group: setup.world, nodes: setup.nodes, device: .cuda(ordinal), request: .automatic, launcher: options.launcher)
        try self.init(communicator: communicator, decision: decision, cuda: cuda, ordinal: ordinal)
    }

    deinit {
        if input != 0 { _ = cuda.memFree(input) }
        if output != 0 { _ = cuda.memFree(output) }
        _ = cuda.streamDestroy(stream)
    }

    /// Device buffers of at least these sizes (kept across sizes, grown when needed).
    func reserve(input inputNeeded: Int, output outputNeeded: Int) throws(CCLError) {
        if inputNeeded > inputBytes {
            if input != 0 { _ = cuda.memFree(input) }
            input = 0
            try cuda.check(cuda.memAlloc(&input, max(1, inputNeeded)), "cuMemAlloc(\(inputNeeded))")
            inputBytes = inputNeeded
        }
        if outputNeeded > outputBytes {
            if output != 0 { _ = cuda.memFree(output) }
            output = 0
            try cuda.check(cuda.memAlloc(&output, max(1, outputNeeded)), "cuMemAlloc(\(outputNeeded))")
            outputBytes = outputNeeded
        }
    }

    /// Copies `host` into the device input (or, `toOutput`, the device output: a broadcast's).
    func upload(_ host: UnsafeRawBufferPointer, toOutput: Bool = false) throws(CCLError) {
        guard host.count > 0 else { return }
        try cuda.check(cuda.memcpyHtoD(toOutput ? output : input, host.baseAddress, host.count), "cuMemcpyHtoD")
    }

    /// Copies the device output into `host`.
    func download(_ host: UnsafeMutableRawBufferPointer) throws(CCLError) {
        guard host.count > 0 else { return }
        try cuda.check(cuda.memcpyDtoH(host.baseAddress, output, host.count), "cuMemcpyDtoH")
    }

    /// Runs `call` on the device buffers on the stream and waits for it.
    func run(_ call: CollectiveCall, inputBytes: Int, outputBytes: Int) throws(CCLError) {
        let device = Device.cuda(ordinal)
        _ = try communicator.execute(
            call, input: DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(input)), bytes: inputBytes, device: device),
            output: DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(output)), bytes: outputBytes, device: device),
            on: DeviceStream(device: device, handle: UnsafeMutableRawPointer(stream)))
        try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
    }
}
