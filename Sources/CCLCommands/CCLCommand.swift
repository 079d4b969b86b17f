import ArgumentParser
import CCLCore
import CCLMPI

/// `ccl`: the swift-ccl command-line tool.
public struct CCLCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ccl",
        abstract: "swift-ccl: distributed communication for LLM inference.",
        version: SwiftCCLVersion.current,
        subcommands: [
            DemoCommand.self, DemoRankCommand.self, BenchCommand.self, LaunchCommand.self, StoreCommand.self, TopologyCommand.self,
            GPUCheckCommand.self, RankExecCommand.self, TraceCommand.self, DoctorCommand.self,
        ]
    )

    public init() {}

    /// Runs the command line, and exits with its error as ArgumentParser does; a failing rank of
    /// an MPI job leaves without `MPI_Finalize` (see `MPIRuntime.markFailed`), so `mpirun` ends
    /// the job instead of waiting.
    public static func runMain() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            MPIRuntime.markFailed()
            exit(withError: error)
        }
    }
}

/// `ccl bench <what>`.
public struct BenchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure swift-ccl on this machine.",
        subcommands: [
            QueueBenchCommand.self, QueueBenchReaderCommand.self, StoreBenchCommand.self, AllReduceBenchCommand.self,
            AllGatherBenchCommand.self, ReduceScatterBenchCommand.self, BroadcastBenchCommand.self, SendRecvBenchCommand.self,
            CollectiveRankCommand.self,
        ]
    )

    public init() {}
}
