import ArgumentParser
import CCL
import Foundation

/// Options shared by `ccl bench allreduce|allgather|reducescatter|broadcast|sendrecv`.
struct CollectiveBenchOptions: ParsableArguments {
    @Option(help: "Local ranks to launch.") var nproc: Int = 2
    @Option(help: "shm, tcp or auto.") var transport: String = "auto"
    @Option(help: "Backends in order of preference (shm, tcp, hierarchical), or auto; wins over CCL_BACKEND.") var backend: String = "auto"
    @Option(
        help:
            "float32, float64, float16, bfloat16, int8, uint8, int32, int64, float8e4m3, float8e5m2 (float8: inputs of 0 and 1, so every sum is exact)."
    ) var dtype: String = "float32"
    @Option(help: "Reduce op for allreduce and reducescatter: sum, min or max (verified exactly).") var redop: String = "sum"
    @Option(
        help:
            "Bytes per rank (suffix K, M), comma separated: allreduce/broadcast/sendrecv buffer, allgather contribution, reducescatter output block."
    )
    var sizes: String = "8,1K,64K,1M,16M,64M"
    @Option(help: "Milliseconds of timed iterations per size (iterations clamped to 3...2000).") var targetMs: Double = 400
    @Flag(
        inversion: .prefixedNo,
        help: "Refill the input and verify every element at every iteration (--no-check: the warm-up only, then the call alone).")
    var check = true
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: "host, or cuda: device buffers on each rank's GPU (the local rank's), NCCL through the registry.")
    var device: String = "host"

    func validate() throws {
        guard (1...64).contains(nproc) else { throw ValidationError("--nproc must be in 1...64") }
        guard ["host", "cuda"].contains(device) else { throw ValidationError("--device must be host or cuda") }
        guard CollectiveOptions.Transport(rawValue: transport) != nil else { throw ValidationError("--transport must be shm, tcp or auto") }
        try validateBackend(backend)
        guard DType(name: dtype) != nil else { throw ValidationError("unknown --dtype '\(dtype)'") }
        guard let op = ReduceOp(name: redop), [.sum, .min, .max].contains(op) else {
            throw ValidationError("--redop must be sum, min or max")
        }
        try checkFinite(targetMs, in: 1...600_000, option: "--target-ms")
        let elementBytes = DType(name: dtype)?.size ?? 1
        for text in sizes.split(separator: ",") {
            let size = try parseSize(String(text))
            guard size % elementBytes == 0 else {
                throw ValidationError("size \(text) is not a whole number of \(dtype) elements (\(elementBytes) bytes each)")
            }
        }
    }

    var forwarded: [String] {
        [
            "--nproc", "\(nproc)", "--transport", transport, "--backend", backend, "--dtype", dtype, "--redop", redop, "--sizes", sizes,
            "--target-ms",
            "\(targetMs)",
        ]
            + (check ? [] : ["--no-check"]) + (json ? ["--json"] : []) + (device == "host" ? [] : ["--device", device])
    }
}

/// One `ccl bench <collective>` subcommand: launches `--nproc` local ranks that run
/// `ccl bench collective-rank`, which prints the nccl-tests table from rank 0.
protocol CollectiveBenchSubcommand: ParsableCommand {
    static var collective: BenchCollective { get }
    var options: CollectiveBenchOptions { get }
}

extension CollectiveBenchSubcommand {
    func run() throws {
        try LocalJob.run(
            ranks: options.nproc, arguments: ["bench", "collective-rank", "--collective", Self.collective.rawValue] + options.forwarded)
    }
}

struct AllReduceBenchCommand: CollectiveBenchSubcommand {
    static let configuration = CommandConfiguration(commandName: "allreduce", abstract: "Benchmark all-reduce across local ranks.")
    static let collective = BenchCollective.allreduce
    @OptionGroup var options: CollectiveBenchOptions
}
struct AllGatherBenchCommand: CollectiveBenchSubcommand {
    static let configuration = CommandConfiguration(commandName: "allgather", abstract: "Benchmark all-gather across local ranks.")
    static let collective = BenchCollective.allgather
    @OptionGroup var options: CollectiveBenchOptions
}
struct ReduceScatterBenchCommand: CollectiveBenchSubcommand {
    static let configuration = CommandConfiguration(commandName: "reducescatter", abstract: "Benchmark reduce-scatter across local ranks.")
    static let collective = BenchCollective.reducescatter
    @OptionGroup var options: CollectiveBenchOptions
}
struct BroadcastBenchCommand: CollectiveBenchSubcommand {
    static let configuration = CommandConfiguration(commandName: "broadcast", abstract: "Benchmark broadcast from rank 0.")
    static let collective = BenchCollective.broadcast
    @OptionGroup var options: CollectiveBenchOptions
}
struct SendRecvBenchCommand: CollectiveBenchSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "sendrecv", abstract: "Benchmark send/recv: every rank sends to the next and receives from the previous.")
    static let collective = BenchCollective.sendrecv
    @OptionGroup var options: CollectiveBenchOptions
}

enum BenchCollective: String, ExpressibleByArgument, CaseIterable {
    case allreduce, allgather, reducescatter, broadcast, sendrecv

    /// nccl-tests' bus-bandwidth factor for `n` ranks.
    func busFactor(_ n: Int) -> Double {
        switch self {
        case .allreduce: n > 1 ? 2 * Double(n - 1) / Double(n) : 1
        case .allgather, .reducescatter: n > 1 ? Double(n - 1) / Double(n) : 1
        case .broadcast, .sendrecv: 1
        }
    }

    /// Bytes the algorithm bandwidth divides by time: allgather/reducescatter move n × size.
    func algorithmBytes(size: Int, ranks: Int) -> Int {
        switch self {
        case .allgather, .reducescatter: size * ranks
        default: size
        }
    }
}

/// `--backend`: auto or names this build has.
func validateBackend(_ text: String) throws {
    let request = try BackendRequest.parse(text, origin: "--backend")
    let known = BackendRegistry().names
    if let unknown = request.preferred.first(where: { !known.contains($0) }) {
        throw ValidationError("--backend: unknown backend \"\(unknown)\"; valid: \(known.joined(separator: ", ")), auto")
    }
}
