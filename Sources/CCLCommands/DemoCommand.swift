import ArgumentParser
import CCL
import CCLSystem
import Foundation

/// `ccl demo`: the main job. Launches tp × pp local ranks that serve a small model the way an
/// inference engine does: rank 0 broadcasts every step's inputs through the broadcast queue, each
/// pipeline stage runs a Megatron-sharded block (column-parallel then row-parallel linear, then
/// an all-reduce over its tensor-parallel group), stage s sends its activations to stage s + 1,
/// and the last stage checks the output against the unsharded model computed in one process.
/// Prints where each step's time went; exits non-zero on any mismatch.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run a TP × PP model across local ranks and check every step against one process.")

    @OptionGroup var options: DemoOptions

    func run() throws {
        try LocalJob.run(ranks: options.tp * options.pp, arguments: ["demo-rank"] + options.forwarded)
    }
}

struct DemoOptions: ParsableArguments {
    @Option(help: "Tensor-parallel size.") var tp: Int = 2
    @Option(help: "Pipeline-parallel size (stages).") var pp: Int = 2
    @Option(help: "Steps to run.") var steps: Int = 10
    @Option(help: "Hidden size.") var hidden: Int = 256
    @Option(help: "FFN size (divisible by --tp).") var ffn: Int = 1024
    @Option(help: "Tokens per step.") var tokens: Int = 8
    @Option(help: "CPU transport for the collectives: auto, shm or tcp.") var transport: String = "auto"
    @Option(help: "Backends in order of preference (shm, tcp, hierarchical), or auto; wins over CCL_BACKEND.") var backend: String = "auto"
    @Option(help: "host, or cuda: the tensor-parallel all-reduce on each rank's GPU (NCCL), staged from the host.")
    var device: String = "host"
    @Option(help: .hidden) var corruptStep: Int = -1

    func validate() throws {
        guard (1...64).contains(tp), (1...64).contains(pp), tp * pp <= 64 else {
            throw ValidationError("--tp and --pp must be ≥ 1 with tp × pp ≤ 64")
        }
        guard steps >= 1, hidden >= 1, tokens >= 1, ffn >= tp, ffn % tp == 0 else {
            throw ValidationError("--steps, --hidden, --tokens must be ≥ 1 and --ffn a multiple of --tp")
        }
        // |output| ≤ 2 · ffn · (2 · 2 · hidden) must stay below 2^24 for Float32 sums to be exact.
        let (area, overflow) = hidden.multipliedReportingOverflow(by: ffn)
        let (activations, overflow2) = tokens.multipliedReportingOverflow(by: hidden)
        guard !overflow, area <= 1 << 21, !overflow2, activations <= 1 << 24, steps <= 1_000_000 else {
            throw ValidationError(
                "--hidden × --ffn must be at most 2097152 (to keep the sums exact), --tokens × --hidden at most 16777216, --steps at most 1000000"
            )
        }
        guard CollectiveOptions.Transport(rawValue: transport) != nil else { throw ValidationError("--transport must be auto, shm or tcp") }
        try validateBackend(backend)
        guard ["host", "cuda"].contains(device) else { throw ValidationError("--device must be host or cuda") }
    }

    var forwarded: [String] {
        [
            "--tp", "\(tp)", "--pp", "\(pp)", "--steps", "\(steps)", "--hidden", "\(hidden)", "--ffn", "\(ffn)", "--tokens", "\(tokens)",
            "--transport", transport, "--backend", backend, "--corrupt-step=\(corruptStep)", "--device", device,
        ]
    }
}

/// `ccl demo-rank` (hidden): one rank of `ccl demo`.
struct DemoRankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo-rank", shouldDisplay: false)

    @OptionGroup var options: DemoOptions

    /// Where one step's time went on one rank, in nanoseconds.
    struct StepTimes: Codable {
        var broadcast: UInt64 = 0
        var compute: UInt64 = 0
        var allReduce: UInt64 = 0
        var sendRecv: UInt64 = 0
        var total: UInt64 = 0
    }

    func run() throws {
        let setup = try RankSetup()
        let rank = setup.launch.rank
        let layout = try ParallelLayout(world: setup.launch.worldSize, tp: options.tp, pp: options.pp)
        var collectives = try setup.collectiveOptions(CollectiveOptions(), transport: options.transport, backend: options.backend)
        collectives.timeout = .seconds(60)
        // --device cuda: the tensor-parallel group also gets a device communicator on this rank's
        // GPU, and its all-reduce goes through it (staged from and back to the host).
        let gpu =
            options.device == "cuda"
            ? try GPUStaging.device(localRank: setup.nodes.local(rank).rank, rank: rank, environment: setup.environment) : nil
        let tpGroup = try GroupCoordinator.create(
            .tp, layout: layout, rank: rank, store: setup.store, nodes: setup.nodes, collectives: collectives,
            device: gpu.map { .cuda($0.1) })
        let staging = try gpu.map { (cuda, ordinal) throws(CCLError) -> GPUStaging in
            guard let communicator = tpGroup.deviceCommunicator else {
                throw CCLError(.unavailable, operation: "demo --device cuda", rank: rank, "the tp group has no device communicator")
            }
            return try GPUStaging(communicator: communicator, decision: tpGroup.deviceChoice, cuda: cuda, ordinal: ordinal)
        }
        let ppGroup = try GroupCoordinator.create(
            .pp, layout: layout, rank: rank, store: setup.store, nodes: setup.nodes, collectives: collectives)
        var queueOptions = QueueOptions()
        queueOptions.token = setup.launch.token ?? ""
        let inputs = try MessageQueueEnd.create(from: setup.world, writer: 0, nodes: setup.nodes, options: queueOptions)
        guard let tensorParallel = tpGroup.cpuCommunicator, let pipeline = ppGroup.cpuCommunicator else {
            throw CCLError(.invalidArgument, operation: "demo", rank: rank, "groups were made without communicators")
        }
        let model = DemoModel(hidden: options.hidden, ffn: options.ffn, tokens: options.tokens, stages: options.pp)
        let stage = ppGroup.rankInGroup
        let shard = model.shard(stage: stage, index: tpGroup.rankInGroup, of: options.tp)
        let elements = options.tokens * options.hidden
        var times: [StepTimes] = []
        var mismatches = [Int](repeating: 0, count: options.steps)
        for step in 0..<options.steps {
            var time = StepTimes()
            let stepStart = monotonicNanoseconds()
            // 1. The driver's inputs reach every rank through the broadcast queue.
            var start = monotonicNanoseconds()
            var x: [Float]
            switch inputs {
            case .writer(let writer):
                x = model.input(step: step)
                try x.withUnsafeBytes { try writer.enqueue($0) }
            case .reader(let reader):
                let bytes = try reader.dequeue()
                x = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            time.broadcast = monotonicNanoseconds() - start
            // 2. Later stages take their input from the previous stage instead.
            if stage > 0 {
                start = monotonicNanoseconds()
                try x.withUnsafeMutableBytes { try pipeline.recv(into: $0, count: elements, dtype: .float32, from: stage - 1) }
                time.sendRecv += monotonicNanoseconds() - start
            }
            // 3. This rank's shard of the block.
            start = monotonicNanoseconds()
            var partial = model.partial(x, shard)
            time.compute = monotonicNanoseconds() - start
            // 4. Sum the shards over the tensor-parallel group.
            start = monotonicNanoseconds()
            if let staging {
                let bytes = elements * MemoryLayout<Float>.stride
                try staging.reserve(input: bytes, output: bytes)
                try partial.withUnsafeBytes { try staging.upload($0) }
                try staging.run(CollectiveCall(.allReduce(.sum), dtype: .float32, count: elements), inputBytes: bytes, outputBytes: bytes)
                try partial.withUnsafeMutableBytes { try staging.download($0) }
            } else {
                try partial.withUnsafeMutableBytes {
                    try tensorParallel.allReduce(UnsafeRawBufferPointer($0), into: $0, count: elements, dtype: .float32, op: .sum)
                }
            }
            time.allReduce = monotonicNanoseconds() - start
            var y = model.finish(partial, input: x)
            // Tests: one wrong value on one rank must fail the run.
            if step == options.corruptStep, stage == options.pp - 1, tpGroup.rankInGroup == 0 { y[0] += 1 }
            // 5. Pass the activations on, or check the result.
            if stage < options.pp - 1 {
                start = monotonicNanoseconds()
                try y.withUnsafeBytes { try pipeline.send($0, count: elements, dtype: .float32, to: stage + 1) }
                time.sendRecv += monotonicNanoseconds() - start
            }
            time.total = monotonicNanoseconds() - stepStart
            if stage == options.pp - 1, y != model.reference(step: step) {
                mismatches[step] = 1
                print("step \(step): rank \(rank) output differs from the single-process model")
            }
            times.append(time)
        }
        let all = try setup.world.allGatherObject(times)
        let flags = try setup.world.allGatherObject(mismatches)
        let failedSteps = (0..<options.steps).map { step in flags.contains { $0[step] != 0 } }
        let failed = failedSteps.filter { $0 }.count
        if rank == 0 {
            let backends = [("tp", tpGroup.cpuChoice), ("pp", ppGroup.cpuChoice)].map { "\($0) \($1.map { "\($0)" } ?? "none")" }
            report(all, failedSteps: failedSteps, transport: tensorParallel.transportDescription, backends: backends)
        }
        try setup.world.barrier()
        if case .writer(let writer) = inputs { writer.close() }
        // Rank 0 alone reports the failure, after its report is out: a launcher stops every rank
        // as soon as one fails, and a rank stopped early could cut the report short.
        if failed > 0, rank == 0 {
            fflush(nil)
            throw ExitCode(1)
        }
    }

    /// Per step, the slowest rank's time in each phase.
    private func report(_ all: [[StepTimes]], failedSteps: [Bool], transport: String, backends: [String]) {
        print(
            "# ccl demo: tp \(options.tp) × pp \(options.pp) = \(all.count) ranks, hidden \(options.hidden), ffn \(options.ffn), "
                + "\(options.tokens) tokens/step, collectives on \(transport)")
        print("# backends (rank 0's groups): " + backends.joined(separator: "; "))
        print("# µs per step, slowest rank in each column (send/recv includes waiting for the previous stage; total excludes")
        print("# the check against the unsharded model computed in one process)")
        print("step  broadcast    compute  all-reduce  send/recv      total  check")
        func us(_ value: UInt64) -> String { String(format: "%10.1f", Double(value) / 1000) }
        for step in 0..<(all.first?.count ?? 0) {
            let column = all.map { $0[step] }
            print(
                String(format: "%4d", step) + " " + us(column.map(\.broadcast).max() ?? 0) + " " + us(column.map(\.compute).max() ?? 0)
                    + "  " + us(column.map(\.allReduce).max() ?? 0) + " " + us(column.map(\.sendRecv).max() ?? 0) + " "
                    + us(column.map(\.total).max() ?? 0) + (failedSteps[step] ? "  MISMATCH" : "  ok"))
        }
        let failed = failedSteps.filter { $0 }.count
        print(
            failed == 0
                ? "all \(options.steps) steps match the single-process model" : "MISMATCH: \(failed) of \(options.steps) steps differ")
    }
}
