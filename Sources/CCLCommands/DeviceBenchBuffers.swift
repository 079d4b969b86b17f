import CCL
import CCLNCCL
import Foundation

/// The GPU side of `ccl bench <collective> --device cuda`: the rank's device communicator (NCCL,
/// through the registry), device copies of the bench's host buffers, and a stream. Each iteration
/// uploads the host input, runs the call on the stream and waits for it (the timed part, as
/// nccl-tests with a synchronisation), then downloads the output for the host's check.
///
/// Ownership: frees its device memory and stream when it goes; the communicator's context stays
/// current on the calling thread throughout (one thread).
final class DeviceBenchBuffers {
    let communicator: any Communicator
    let decision: BackendChoice.Decision
    private let cuda: CUDADriver
    private let ordinal: Int
    private var stream: OpaquePointer?
    private var input: CUDADriver.DevicePointer = 0
    private var output: CUDADriver.DevicePointer = 0
    private var inputBytes = 0
    private var outputBytes = 0

    /// Opens the driver and makes the group's device communicator on the local rank's GPU.
    ///
    /// - Throws: `CCLError` naming what is missing ("libcuda.so.1 not found (tried: …)") or why
    ///   the communicator could not be made.
    init(setup: RankSetup, options: CollectiveOptions) throws(CCLError) {
        cuda = try CUDADriver.load(environment: setup.environment)
        let count = try cuda.deviceCount()
        let local = setup.nodes.local(setup.world.rank).rank
        ordinal = count == 1 ? 0 : local
        guard ordinal < count else {
            throw CCLError(
                .unavailable, operation: "ccl bench --device cuda", rank: setup.world.rank,
                "local rank \(local) has no GPU: \(count) visible (CUDA_VISIBLE_DEVICES, or fewer ranks per node)")
        }
        (communicator, decision) = try BackendRegistry(options: options).makeCommunicator(
            group: setup.world, nodes: setup.nodes, device: .cuda(ordinal), request: .automatic, launcher: options.launcher)
        try cuda.check(cuda.streamCreate(&stream, 1), "cuStreamCreate")
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
