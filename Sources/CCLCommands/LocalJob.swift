import ArgumentParser
import CCL
import CCLSystem
import Foundation

/// Runs this executable again as `ranks` local processes (`ccl <subcommand> ...`), with a store
/// here, the way `ccl launch` does: used by `ccl bench <collective>` and `ccl demo`.
///
/// Ranks are pinned to one CPU each (`CCL_CPU`) when there are no more ranks than CPUs.
/// Rank 0's output is copied as is (it prints the report); other ranks' lines get `[rank R]`.
/// Exits non-zero (ExitCode) when a rank fails, after the launcher's summary.
///
/// Under `mpirun` (or `srun` with MPI's variables) nothing is launched: this process is one rank
/// of the job `mpirun` started, and runs the rank's subcommand itself (`ranks` is ignored).
enum LocalJob {
    static func run(ranks: Int, arguments: [String], environment extra: [String: String] = [:]) throws {
        if MPIBackend.launchedByMPI(ProcessInfo.processInfo.environment) {
            var rank = try CCLCommand.parseAsRoot(arguments)
            try rank.run()
            return
        }
        let secret = LaunchCommand.randomToken()
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: secret)
        defer { server.close() }
        let base = ProcessInfo.processInfo.environment
        // Like Open MPI: one core per rank when there are enough (CCL_BIND=0 turns it off).
        let cpus = CPUAffinity.allowedCPUs()
        let bind = base["CCL_BIND"] != "0" && ranks > 1 && ranks <= cpus.count
        var environments = LaunchCommand.rankEnvironments(
            base: base.merging(extra) { _, new in new }, nprocPerNode: ranks, nnodes: 1, nodeRank: 0, masterAddress: "127.0.0.1",
            port: server.port, token: secret)
        if bind {
            for rank in 0..<ranks { environments[rank]["CCL_CPU"] = "\(cpus[rank])" }
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let launcher = Launcher(program: [executable] + arguments, environments: environments, unprefixedRanks: [0])
        try LaunchCommand.runRanks(launcher) {}
    }
}
