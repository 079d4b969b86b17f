import ArgumentParser
import CCL
import CCLBackend
import CCLNCCL
import CCLSystem
import CCLTrace
import Foundation

/// `ccl gpu-check`: the GPU backend on this machine, end to end, as JSON lines (for
/// `scripts/gpu-check.sh` on the device machine): versions; every op × dtype at world size 1,
/// verified; a split of the world's communicator (`ncclCommSplit`), verified; an all-reduce in a
/// symmetric-memory window (NCCL 2.27+), verified; a CUDA graph of 10
/// all-reduces replayed 100 times, verified; the per-call cost of an all-reduce enqueued back to
/// back and with a sync; communicator creation time; two ranks on one GPU (our error on both, via
/// `--ranks 2`); and with `--shared-gpu` (NCCL ≥ 2.30.7, `NCCL_MULTI_RANK_GPU_ENABLE=1`) N ranks
/// on the one GPU all-reducing, then split into pairs (`GPUMultiRankCheck`).
struct GPUCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check", abstract: "Check the NCCL backend on this machine's GPU; prints JSON lines.")

    @Option(help: "Ranks to start on GPU 0 (2: the two-ranks-on-one-GPU check).") var ranks: Int = 1
    @Flag(help: "With --ranks N: N ranks share GPU 0 (NCCL ≥ 2.30.7 with NCCL_MULTI_RANK_GPU_ENABLE=1) and all-reduce, then split.")
    var sharedGpu = false
    @Option(help: .hidden) var role: String = "main"

    func validate() throws {
        guard (1...8).contains(ranks) else { throw ValidationError("--ranks must be in 1...8") }
    }

    func run() throws {
        if ranks > 1, role == "main" {
            try LocalJob.run(
                ranks: ranks, arguments: ["gpu-check", "--ranks", "\(ranks)", "--role", "rank"] + (sharedGpu ? ["--shared-gpu"] : []))
            return
        }
        let environment = ProcessInfo.processInfo.environment
        let cuda = try CUDADriver.load(environment: environment)
        let nccl = try NCCLLibrary.load(environment: environment)
        GPUCheck.emit(["check": "versions", "nccl": "\(nccl.version)", "nccl_path": nccl.path, "cuda_driver": "\(cuda.driverVersion)"])
        if role == "rank", sharedGpu {
            try GPUMultiRankCheck(cuda: cuda, environment: environment).run()
            return
        }
        if role == "rank" {
            // Every rank on device 0: creation must fail on each with our error.
            let setup = try RankSetup()
            do {
                _ = try NCCLBackend(environment: environment, timeout: .seconds(60)).make(
                    group: setup.world, nodes: setup.nodes, device: .cuda(0))
                GPUCheck.emit(["check": "duplicate_gpu", "rank": "\(setup.world.rank)", "ok": "false", "error": "created"])
            } catch {
                let ours = error.message.contains("are both on the GPU at PCI bus")
                GPUCheck.emit(["check": "duplicate_gpu", "rank": "\(setup.world.rank)", "ok": "\(ours)", "error": error.message])
            }
            return
        }
        try GPUCheck(cuda: cuda, nccl: nccl, environment: environment).run()
    }
}

/// The world-size-1 checks of `ccl gpu-check`.
struct GPUCheck {
    let cuda: CUDADriver
    let nccl: NCCLLibrary
    let environment: [String: String]

    static func emit(_ fields: [String: String]) {
        let body = fields.sorted { $0.key < $1.key }.map { key, value in
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(key)\":\"\(escaped)\""
        }
        print("{" + body.joined(separator: ",") + "}")
        fflush(nil)
    }

    func run() throws {
        let group = try StatelessProcessGroup(rank: 0, worldSize: 1, store: InMemoryStore(), name: "gpu", timeout: .seconds(60))
        let started = DispatchTime.now().uptimeNanoseconds
        let communicator = try NCCLBackend(environment: environment, timeout: .seconds(60)).make(
            group: group, nodes: NodeLayout(nodeOfRank: ["here"]), device: .cuda(0))
        let created = DispatchTime.now().uptimeNanoseconds - started
        Self.emit(["check": "create", "world": "1", "seconds": String(format: "%.3f", Double(created) / 1e9)])
        var stream: OpaquePointer?
        try cuda.check(cuda.streamCreate(&stream, 1), "cuStreamCreate")
        defer { _ = cuda.streamDestroy(stream) }
        let deviceStream = DeviceStream(device: .cuda(0), handle: UnsafeMutableRawPointer(stream))
        for dtype in DType.allCases {
            for op in Self.operations {
                let verdict = verify(op, dtype: dtype, count: 1031, communicator: communicator, stream: stream, on: deviceStream)
                Self.emit([
                    "check": "op", "op": "\(op)", "dtype": "\(dtype)", "ok": verdict == nil ? "true" : "false", "error": verdict ?? "",
                ])
            }
        }
        Self.emit(splitCheck(communicator, stream: stream, on: deviceStream))
        Self.emit(windowCheck(communicator, stream: stream, on: deviceStream))
        Self.emit(graphCheck(communicator, stream: stream, on: deviceStream))
        Self.emit(perCallCost(communicator, stream: stream, on: deviceStream))
        // The same behind the flight recorder, as every group communicator is: its cost, and
        // device calls marked completed from CUDA events.
        let recorder = try FlightRecorder(
            group: "gpu", round: group.roundID, rank: 0, groupRank: 0, globalRanks: [0], backend: "nccl", capacity: 4096)
        let recorded = RecordingCommunicator(communicator, recorder: recorder)
        var cost = perCallCost(recorded, stream: stream, on: deviceStream)
        cost["check"] = "per_call_recorded"
        Self.emit(cost)
        Self.emit(deviceCompletion(recorded, recorder: recorder, stream: stream, on: deviceStream))
    }

    /// After the stream has run everything, two marker intervals of calls later the recorder
    /// must have marked the earlier calls completed (from a CUDA event, without blocking).
    func deviceCompletion(_ recorded: any Communicator, recorder: FlightRecorder, stream: OpaquePointer?, on deviceStream: DeviceStream)
        -> [String: String]
    {
        withSmallAllReduce(check: "trace_device") { buffer, call in
            try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
            for _ in 0..<(2 * RecordingCommunicator.markerInterval + 1) {
                _ = try recorded.execute(call, input: buffer, output: buffer, on: deviceStream)
            }
            let states = try TraceReader.read(recorder.name).entries.map(\.state)
            let completed = states.filter { $0 == .completed }.count
            let enqueued = states.filter { $0 == .enqueued }.count
            return [
                "check": "trace_device", "ok": completed > 0 && enqueued <= 3 * RecordingCommunicator.markerInterval ? "true" : "false",
                "completed": "\(completed)", "enqueued": "\(enqueued)",
            ]
        }
    }

    /// `body`'s row, given 8 device bytes and an 8-byte all-reduce on them (freed after); a
    /// failure is the row `check` with its error.
    func withSmallAllReduce(check: String, _ body: (DeviceBuffer, CollectiveCall) throws -> [String: String]) -> [String: String] {
        var pointer: CUDADriver.DevicePointer = 0
        defer { if pointer != 0 { _ = cuda.memFree(pointer) } }
        do {
            try cuda.check(cuda.memAlloc(&pointer, 8), "cuMemAlloc")
            let buffer = DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(pointer)), bytes: 8, device: .cuda(0))
            return try body(buffer, CollectiveCall(.allReduce(.sum), dtype: .float32, count: 2))
        } catch {
            return ["check": check, "ok": "false", "error": "\(error)"]
        }
    }

    static let operations: [CollectiveOp] = [
        .allReduce(.sum), .allReduce(.max), .allReduce(.avg), .allGather, .reduceScatter(.sum), .broadcast(root: 0), .gather(root: 0),
        .sendRecv(to: 0, from: 0),
    ]

    /// One op at world size 1: the output must equal the input (every reduction of one rank is
    /// its input), byte for byte after a round trip through the GPU. Nil when it holds.
    func verify(
        _ op: CollectiveOp, dtype: DType, count: Int, communicator: any Communicator, stream: OpaquePointer?, on deviceStream: DeviceStream
    )
        -> String?
    {
        let bytes = count * dtype.size
        var input = [UInt8](repeating: 0, count: bytes)
        for index in input.indices { input[index] = UInt8(truncatingIfNeeded: index &* 7 &+ 3) }
        if [.float16, .bfloat16, .float32, .float64, .float8e4m3, .float8e5m2].contains(dtype) {
            // Small integers (float8 rounds some of them, the same on input and output; every op over one rank is exact).
            for element in 0..<count { write(Double(element % 13), into: &input, element: element, dtype: dtype) }
        }
        var inputPointer: CUDADriver.DevicePointer = 0, outputPointer: CUDADriver.DevicePointer = 0
        defer {
            if inputPointer != 0 { _ = cuda.memFree(inputPointer) }
            if outputPointer != 0 { _ = cuda.memFree(outputPointer) }
        }
        do {
            try cuda.check(cuda.memAlloc(&inputPointer, bytes), "cuMemAlloc")
            try cuda.check(cuda.memAlloc(&outputPointer, bytes), "cuMemAlloc")
            try cuda.check(input.withUnsafeBytes { cuda.memcpyHtoD(inputPointer, $0.baseAddress, bytes) }, "cuMemcpyHtoD")
            try cuda.check(cuda.memsetD8(outputPointer, 0xEE, bytes), "cuMemsetD8")
            let inputBuffer = DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(inputPointer)), bytes: bytes, device: .cuda(0))
            let outputBuffer = DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(outputPointer)), bytes: bytes, device: .cuda(0))
            if case .broadcast = op {
                try cuda.check(input.withUnsafeBytes { cuda.memcpyHtoD(outputPointer, $0.baseAddress, bytes) }, "cuMemcpyHtoD")
            }
            _ = try communicator.execute(
                CollectiveCall(op, dtype: dtype, count: count), input: inputBuffer, output: outputBuffer, on: deviceStream)
            try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
            var output = [UInt8](repeating: 0, count: bytes)
            try cuda.check(output.withUnsafeMutableBytes { cuda.memcpyDtoH($0.baseAddress, outputPointer, bytes) }, "cuMemcpyDtoH")
            guard output == input else {
                let first = zip(output, input).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
                return "byte \(first) differs"
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    func write(_ value: Double, into bytes: inout [UInt8], element: Int, dtype: DType) {
        bytes.withUnsafeMutableBytes { raw in
            switch dtype {
            case .float32: raw.storeBytes(of: Float(value), toByteOffset: element * 4, as: Float.self)
            case .float64: raw.storeBytes(of: value, toByteOffset: element * 8, as: Double.self)
            case .float16: raw.storeBytes(of: Float16(Float(value)).bitPattern, toByteOffset: element * 2, as: UInt16.self)
            case .bfloat16: raw.storeBytes(of: BFloat16(Float(value)).bitPattern, toByteOffset: element * 2, as: UInt16.self)
            case .float8e4m3: raw.storeBytes(of: Float8E4M3(Float(value)).bitPattern, toByteOffset: element, as: UInt8.self)
            case .float8e5m2: raw.storeBytes(of: Float8E5M2(Float(value)).bitPattern, toByteOffset: element, as: UInt8.self)
            default: break
            }
        }
    }

    /// The world communicator split into a group of its one rank (`ncclCommSplit`, color 0): the
    /// split's time, and a bfloat16 all-reduce on the child verified.
    func splitCheck(_ world: any Communicator, stream: OpaquePointer?, on deviceStream: DeviceStream) -> [String: String] {
        guard let splittable = world as? any SplittableCommunicator else {
            return ["check": "split", "ok": "false", "error": "not splittable"]
        }
        do {
            let group = try StatelessProcessGroup(rank: 0, worldSize: 1, store: InMemoryStore(), name: "gpu-tp0", timeout: .seconds(60))
            let started = DispatchTime.now().uptimeNanoseconds
            let child = try splittable.split(into: group, color: 0, key: 0)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let verdict = verify(.allReduce(.sum), dtype: .bfloat16, count: 1031, communicator: child, stream: stream, on: deviceStream)
            return [
                "check": "split", "seconds": String(format: "%.3f", seconds), "ok": verdict == nil ? "true" : "false",
                "error": verdict ?? "",
            ]
        } catch {
            return ["check": "split", "ok": "false", "error": "\(error)"]
        }
    }

    /// Symmetric-memory windows (NCCL 2.27+): memory from `ncclMemAlloc`, registered symmetric, a
    /// float32 all-reduce in it verified, deregistered and freed; "skipped" when this NCCL has none.
    func windowCheck(_ communicator: any Communicator, stream: OpaquePointer?, on deviceStream: DeviceStream) -> [String: String] {
        guard let windows = communicator.windows, windows.windowsAvailable else {
            return ["check": "window", "ok": "skipped", "error": "this NCCL has no symmetric-memory windows"]
        }
        let count = 4096, bytes = count * 4
        var memory: DeviceBuffer?
        var window: CommunicationWindow?
        defer {
            if let window { try? windows.deregisterWindow(window) }
            if let memory { try? windows.freeWindowMemory(memory) }
        }
        do {
            let buffer = try windows.allocateWindowMemory(bytes: bytes)
            memory = buffer
            window = try windows.registerWindow(buffer, symmetric: true)
            let values = (0..<count).map { Float($0 % 89) }
            let pointer = CUDADriver.DevicePointer(UInt(bitPattern: buffer.base))
            try cuda.check(values.withUnsafeBytes { cuda.memcpyHtoD(pointer, $0.baseAddress, bytes) }, "cuMemcpyHtoD")
            _ = try communicator.execute(
                CollectiveCall(.allReduce(.sum), dtype: .float32, count: count), input: buffer, output: buffer, on: deviceStream)
            try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
            var back = [Float](repeating: -1, count: count)
            try cuda.check(back.withUnsafeMutableBytes { cuda.memcpyDtoH($0.baseAddress, pointer, bytes) }, "cuMemcpyDtoH")
            return ["check": "window", "symmetric": "true", "ok": back == values ? "true" : "false"]
        } catch {
            return ["check": "window", "ok": "false", "error": "\(error)"]
        }
    }

    /// 10 all-reduces (sum, float32, in place) captured into a graph, replayed 100 times: the
    /// buffer must come back unchanged (a sum over one rank).
    func graphCheck(_ communicator: any Communicator, stream: OpaquePointer?, on deviceStream: DeviceStream) -> [String: String] {
        let count = 4096, bytes = count * 4
        var pointer: CUDADriver.DevicePointer = 0
        var graph: OpaquePointer?, executable: OpaquePointer?
        defer {
            if executable != nil { _ = cuda.graphExecDestroy(executable) }
            if graph != nil { _ = cuda.graphDestroy(graph) }
            if pointer != 0 { _ = cuda.memFree(pointer) }
        }
        do {
            let values = (0..<count).map { Float($0 % 97) }
            try cuda.check(cuda.memAlloc(&pointer, bytes), "cuMemAlloc")
            try cuda.check(values.withUnsafeBytes { cuda.memcpyHtoD(pointer, $0.baseAddress, bytes) }, "cuMemcpyHtoD")
            let buffer = DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(pointer)), bytes: bytes, device: .cuda(0))
            try cuda.check(cuda.streamBeginCapture(stream, CUDADriver.captureThreadLocal), "cuStreamBeginCapture")
            for _ in 0..<10 {
                _ = try communicator.execute(
                    CollectiveCall(.allReduce(.sum), dtype: .float32, count: count), input: buffer, output: buffer, on: deviceStream)
            }
            try cuda.check(cuda.streamEndCapture(stream, &graph), "cuStreamEndCapture")
            try cuda.check(cuda.graphInstantiate(&executable, graph, 0), "cuGraphInstantiateWithFlags")
            for _ in 0..<100 { try cuda.check(cuda.graphLaunch(executable, stream), "cuGraphLaunch") }
            try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
            var back = [Float](repeating: -1, count: count)
            try cuda.check(back.withUnsafeMutableBytes { cuda.memcpyDtoH($0.baseAddress, pointer, bytes) }, "cuMemcpyDtoH")
            return ["check": "graph", "captured": "10", "replays": "100", "ok": back == values ? "true" : "false"]
        } catch {
            return ["check": "graph", "ok": "false", "error": "\(error)"]
        }
    }

    /// Microseconds per 8-byte all-reduce: enqueued back to back (2000), and each followed by a
    /// stream synchronisation (500); like `nccl_floor.c`.
    func perCallCost(_ communicator: any Communicator, stream: OpaquePointer?, on deviceStream: DeviceStream) -> [String: String] {
        withSmallAllReduce(check: "per_call") { buffer, call in
            for _ in 0..<20 { _ = try communicator.execute(call, input: buffer, output: buffer, on: deviceStream) }
            try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<2000 { _ = try communicator.execute(call, input: buffer, output: buffer, on: deviceStream) }
            let enqueued = DispatchTime.now().uptimeNanoseconds
            try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
            var synced: UInt64 = 0
            for _ in 0..<500 {
                let before = DispatchTime.now().uptimeNanoseconds
                _ = try communicator.execute(call, input: buffer, output: buffer, on: deviceStream)
                try cuda.check(cuda.streamSynchronize(stream), "cuStreamSynchronize")
                synced += DispatchTime.now().uptimeNanoseconds - before
            }
            return [
                "check": "per_call", "size": "8", "enqueue_us": String(format: "%.3f", Double(enqueued - start) / 2000 / 1000),
                "enqueue_sync_us": String(format: "%.3f", Double(synced) / 500 / 1000),
            ]
        }
    }
}
