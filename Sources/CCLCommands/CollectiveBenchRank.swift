import ArgumentParser
import CCL
import CCLSystem
import Foundation

/// `ccl bench collective-rank` (hidden): one rank of `ccl bench <collective>`.
///
/// Method (as `../shared/anchors/collectives`): each timed iteration is `barrier; t0; op; t1`,
/// its time the maximum over ranks of t1 − t0; fresh inputs before every iteration and, with
/// `--check`, every element verified after it (both outside the timed region); iteration count
/// from a warm-up estimate, for `--target-ms` per size, clamped to 3...2000 (≤ 10 at ≥ 64 MiB).
struct CollectiveRankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "collective-rank", shouldDisplay: false)

    @Option var collective: BenchCollective
    @OptionGroup var options: CollectiveBenchOptions

    func run() throws {
        let setup = try RankSetup()
        var base = CollectiveOptions()
        base.timeout = .seconds(120)
        let (communicator, decision) = try setup.communicator(base, transport: options.transport, backend: options.backend)
        guard let dtype = DType(name: options.dtype), let op = ReduceOp(name: options.redop) else {
            throw ValidationError("bad --dtype or --redop")
        }
        let sizes = try options.sizes.split(separator: ",").map { try parseSize(String($0)) }
        // --device cuda: the calls run on the GPU; the host communicator still times and checks.
        let gpu =
            options.device == "cuda"
            ? try GPUStaging(setup: setup, options: setup.collectiveOptions(base, transport: options.transport)) : nil
        let bench = CollectiveBench(
            communicator: communicator, decision: gpu?.decision ?? decision, collective: collective, op: op, options: options, gpu: gpu)
        if communicator.rank == 0 { bench.printHeader(dtype: dtype) }
        for size in sizes {
            switch dtype {
            case .float32: try bench.run(Float.self, size: size)
            case .float64: try bench.run(Double.self, size: size)
            case .float16: try bench.run(Float16.self, size: size)
            case .bfloat16: try bench.run(BFloat16.self, size: size)
            case .int8: try bench.run(Int8.self, size: size)
            case .uint8: try bench.run(UInt8.self, size: size)
            case .int32: try bench.run(Int32.self, size: size)
            case .int64: try bench.run(Int64.self, size: size)
            case .float8e4m3: try bench.run(Float8E4M3.self, size: size)
            case .float8e5m2: try bench.run(Float8E5M2.self, size: size)
            }
        }
    }
}

struct CollectiveBench {
    let communicator: any Communicator
    let decision: BackendChoice.Decision
    let collective: BenchCollective
    let op: ReduceOp
    let options: CollectiveBenchOptions
    /// With `--device cuda`: where the timed calls run.
    var gpu: GPUStaging? = nil

    var ranks: Int { communicator.worldSize }
    /// What the table calls the transport: the GPU's communicator's, or the host one's.
    var transport: String { gpu?.communicator.transportDescription ?? communicator.transportDescription }

    /// The call `collective` makes on the device.
    func deviceCall(count: Int, dtype: DType) -> CollectiveCall {
        let n = ranks, rank = communicator.rank
        switch collective {
        case .allreduce: return CollectiveCall(.allReduce(op), dtype: dtype, count: count)
        case .allgather: return CollectiveCall(.allGather, dtype: dtype, count: count)
        case .reducescatter: return CollectiveCall(.reduceScatter(op), dtype: dtype, count: count)
        case .broadcast: return CollectiveCall(.broadcast(root: 0), dtype: dtype, count: count)
        case .sendrecv: return CollectiveCall(.sendRecv(to: (rank + 1) % n, from: (rank + n - 1) % n), dtype: dtype, count: count)
        }
    }

    /// For an all-reduce on shared memory: the communicator's cost model and the options it chooses
    /// with (`CCL_ALGO`, `CCL_SHM_SLOT_BYTES` from the environment, as every rank read them).
    func sharedMemoryChoice() -> (ShmCostModel, ShmOptions)? {
        guard collective == .allreduce, gpu == nil, let costs = communicator.sharedMemoryCosts else { return nil }
        return (costs, (try? CollectiveOptions.fromEnvironment(ProcessInfo.processInfo.environment).shm) ?? ShmOptions())
    }

    /// JSON fields for a row of `bytes` on shared memory: the algorithm the size ran and the
    /// model's inputs (none for other backends).
    func sharedMemoryFields(bytes: Int) -> String {
        guard let (costs, shm) = sharedMemoryChoice() else { return "" }
        let from = costs.twoShotFrom(worldSize: ranks, slotBytes: shm.slotBytes) ?? .max
        let algorithm = shm.allReduce ?? (bytes >= from ? .twoShot : .oneShot)
        return ",\"shm_algorithm\":\"\(algorithm.rawValue)\",\"shm_sync_ns\":\(format(costs.syncNanoseconds)),"
            + "\"shm_copy_gbps\":\(format(costs.copyBytesPerNanosecond)),\"shm_reduce_gbps\":\(format(costs.reduceBytesPerNanosecond)),"
            + "\"shm_ranks_per_cpu\":\(format(costs.ranksPerCPU))"
    }

    func printHeader(dtype: DType) {
        guard !options.json else { return }
        print(
            "# ccl bench \(collective.rawValue): \(ranks) ranks, transport \(transport), \(dtype), redop \(op), check \(options.check ? "every iteration" : "off")"
        )
        print("# backend: \(decision)")
        if let (costs, shm) = sharedMemoryChoice() {
            let from =
                costs.twoShotFrom(worldSize: ranks, slotBytes: shm.slotBytes).map { "two-shot from \($0) B" } ?? "one-shot at every size"
            print("# shm costs: \(costs); \(shm.allReduce.map { "forced \($0.rawValue)" } ?? from)")
        }
        print("# time = p50 over iterations of the slowest rank's time; avg also shown; bandwidths from p50")
        print(
            pad("size", 12) + pad("count", 12) + pad("type", 10) + pad("redop", 7) + pad("avg(us)", 11) + pad("time(us)", 11)
                + pad("algbw(GB/s)", 13) + pad("busbw(GB/s)", 13) + pad("#wrong", 8) + pad("iters", 7))
    }

    func run<T: BenchValue>(_ type: T.Type, size: Int) throws {
        let count = size / MemoryLayout<T>.stride
        let n = ranks, rank = communicator.rank
        let inputCount = collective == .reducescatter ? n * count : count
        let outputCount = collective == .allgather ? n * count : count
        // Page-aligned, as the C anchors' buffers (posix_memalign 4096).
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, inputCount * MemoryLayout<T>.stride), alignment: 4096)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, outputCount * MemoryLayout<T>.stride), alignment: 4096)
        defer {
            input.deallocate()
            output.deallocate()
        }
        let dtype = T.dtype
        try gpu?.reserve(input: input.count, output: output.count)
        let call = deviceCall(count: count, dtype: dtype)
        // Checked iterations refill the input with this iteration's values first (a stale result
        // cannot pass); unchecked ones (--no-check) time the call alone on the buffers as they
        // are, as the C anchors do.
        func iteration(_ number: Int, check: Bool) throws -> (UInt64, Int) {
            if check {
                if collective == .broadcast {
                    if rank == 0 {
                        BenchPattern.fill(output, as: T.self, count: count, rank: 0, first: 0, iteration: number)
                    } else {
                        output.initializeMemory(as: UInt8.self, repeating: 0)
                    }
                } else {
                    BenchPattern.fill(input, as: T.self, count: inputCount, rank: rank, first: 0, iteration: number)
                }
                if let gpu {
                    if collective == .broadcast {
                        try gpu.upload(UnsafeRawBufferPointer(output), toOutput: true)
                    } else {
                        try gpu.upload(UnsafeRawBufferPointer(input))
                    }
                }
            }
            try communicator.barrier()
            let start = monotonicNanoseconds()
            if let gpu {
                try gpu.run(call, inputBytes: input.count, outputBytes: output.count)
                let elapsed = monotonicNanoseconds() - start
                guard check else { return (elapsed, 0) }
                try gpu.download(output)
                return (elapsed, wrongElements(number))
            }
            switch collective {
            case .allreduce:
                try communicator.allReduce(UnsafeRawBufferPointer(input), into: output, count: count, dtype: dtype, op: op)
            case .allgather:
                try communicator.allGather(UnsafeRawBufferPointer(input), into: output, count: count, dtype: dtype)
            case .reducescatter:
                try communicator.reduceScatter(UnsafeRawBufferPointer(input), into: output, count: count, dtype: dtype, op: op)
            case .broadcast:
                try communicator.broadcast(output, count: count, dtype: dtype, from: 0)
            case .sendrecv:
                try communicator.sendRecv(
                    UnsafeRawBufferPointer(input), to: (rank + 1) % n, into: output, from: (rank + n - 1) % n, count: count, dtype: dtype)
            }
            let elapsed = monotonicNanoseconds() - start
            guard check else { return (elapsed, 0) }
            return (elapsed, wrongElements(number))
        }

        // Elements of the output that differ from what iteration `number` must give.
        func wrongElements(_ number: Int) -> Int {
            let result = UnsafeRawBufferPointer(output)
            let wrong: Int
            switch collective {
            case .allreduce:
                wrong = BenchPattern.wrong(result, as: T.self, count: count, first: 0) {
                    BenchPattern.reduced(T.self, op, ranks: n, index: $0, iteration: number)
                }
            case .allgather:
                wrong = BenchPattern.wrong(result, as: T.self, count: n * count, first: 0) {
                    BenchPattern.value(T.self, rank: $0 / max(1, count), index: $0 % max(1, count), iteration: number)
                }
            case .reducescatter:
                wrong = BenchPattern.wrong(result, as: T.self, count: count, first: rank * count) {
                    BenchPattern.reduced(T.self, op, ranks: n, index: $0, iteration: number)
                }
            case .broadcast:
                wrong = BenchPattern.wrong(result, as: T.self, count: count, first: 0) {
                    BenchPattern.value(T.self, rank: 0, index: $0, iteration: number)
                }
            case .sendrecv:
                wrong = BenchPattern.wrong(result, as: T.self, count: count, first: 0) {
                    BenchPattern.value(T.self, rank: (rank + n - 1) % n, index: $0, iteration: number)
                }
            }
            return wrong
        }

        let warmup = size <= 64 << 10 ? 50 : size <= 1 << 20 ? 10 : size <= 16 << 20 ? 3 : 2
        var wrong = 0
        var warmupNanoseconds: Double = 0
        for number in 0..<warmup {
            let (elapsed, bad) = try iteration(number, check: true)
            warmupNanoseconds += Double(elapsed)
            wrong += bad
        }
        var estimate = [warmupNanoseconds / Double(warmup)]
        try allReduce(&estimate, op: .max)
        let limit = size >= 64 << 20 ? 10 : 2000
        let iterations = min(limit, max(3, Int(options.targetMs * 1e6 / max(1, estimate[0]))))
        var times = [Double](repeating: 0, count: iterations)
        for number in 0..<iterations {
            let (elapsed, bad) = try iteration(warmup + number, check: options.check)
            times[number] = Double(elapsed)
            wrong += bad
        }
        try allReduce(&times, op: .max)
        var wrongTotal = [Int64(wrong)]
        try allReduce(&wrongTotal, op: .sum)
        guard rank == 0 else { return }
        let sorted = times.sorted()
        let p50 = sorted[sorted.count / 2] / 1000
        let average = times.reduce(0, +) / Double(times.count) / 1000
        let algorithmBandwidth = Double(collective.algorithmBytes(size: count * MemoryLayout<T>.stride, ranks: n)) / (p50 * 1000)
        let busBandwidth = algorithmBandwidth * collective.busFactor(n)
        let bytes = count * MemoryLayout<T>.stride
        let redop = [.allreduce, .reducescatter].contains(collective) ? "\(op)" : "none"
        if options.json {
            print(
                "{\"op\":\"\(collective.rawValue)\",\"nproc\":\(n),\"transport\":\"\(transport)\",\"backend\":\"\(gpu?.communicator.backend ?? communicator.backend)\",\"dtype\":\"\(dtype)\","
                    + "\"size\":\(bytes),\"count\":\(count),\"time_us\":\(format(p50)),\"avg_us\":\(format(average)),"
                    + "\"algbw_gbps\":\(format(algorithmBandwidth)),\"busbw_gbps\":\(format(busBandwidth)),\"wrong\":\(wrongTotal[0]),"
                    + "\"iterations\":\(iterations)\(sharedMemoryFields(bytes: bytes))}")
        } else {
            print(
                pad("\(bytes)", 12) + pad("\(count)", 12) + pad("\(dtype)", 10) + pad(redop, 7) + pad(format(average), 11)
                    + pad(format(p50), 11) + pad(format(algorithmBandwidth), 13) + pad(format(busBandwidth), 13)
                    + pad("\(wrongTotal[0])", 8) + pad("\(iterations)", 7))
        }
    }

    private func allReduce<T: CollectiveScalar>(_ values: inout [T], op: ReduceOp) throws {
        try values.withUnsafeMutableBytes { bytes in
            try communicator.allReduce(
                UnsafeRawBufferPointer(bytes), into: bytes, count: bytes.count / MemoryLayout<T>.stride, dtype: T.dtype, op: op)
        }
    }
}

private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? " " + text : String(repeating: " ", count: width - text.count) + text
}

private func format(_ value: Double) -> String {
    if value >= 100 { return String(format: "%.0f", value) }
    if value >= 1 { return String(format: "%.2f", value) }
    return String(format: "%.3f", value)
}
