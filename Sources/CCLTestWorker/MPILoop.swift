import CCL
import CCLMPI
import CCLSystem
import Foundation

/// The worker's `mpiloop` mode (a measurement, not a test): 8-byte all-reduces timed as
/// `../shared/anchors/collectives/mpi_bench.c` times them (barrier; t0; op; t1; max over ranks;
/// p50), through MPI directly (`via=raw`), or through the MPI communicator (`via=communicator`,
/// which needs the store: `Rendezvous.joinJob`). `store=1` joins the store in raw mode too.
func mpiLoop() throws {
    let environment = ProcessInfo.processInfo.environment
    let via = arguments["via"] ?? "raw"
    var keep: [AnyObject] = []
    var communicator: (any Communicator)?
    if via == "communicator" || arguments["store"] == "1" {
        let launch = try LaunchEnvironment.parse(environment)
        let (store, server) = try Rendezvous.joinJob(launch, environment: environment, timeout: .seconds(60))
        let world = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store, timeout: .seconds(60))
        keep += [store, world] + (server.map { [$0] } ?? [])
        if via == "communicator" {
            communicator = try MPIBackend(environment: environment).make(
                group: world, nodes: NodeLayout(nodeOfRank: Array(repeating: "a", count: launch.worldSize)), device: .host)
        }
    }
    let runtime = try MPIRuntime.shared(environment: environment)
    let mpi = runtime.library, world = mpi.constants.commWorld
    var input: [Float] = [1, 2]
    var output: [Float] = [0, 0]
    let iterations = int("iterations", 2000)
    var times = [Double](repeating: 0, count: iterations)
    for round in 0..<(iterations + 200) {
        _ = mpi.calls.barrier(world)
        let start = monotonicNanoseconds()
        if let communicator {
            try input.withUnsafeBytes { source in
                try output.withUnsafeMutableBytes { try communicator.allReduce(source, into: $0, count: 2, dtype: .float32, op: .sum) }
            }
        } else {
            _ = mpi.calls.allreduce(&input, &output, 2, mpi.constants.float, mpi.constants.sum, world)
        }
        if round >= 200 { times[round - 200] = Double(monotonicNanoseconds() - start) }
    }
    var slowest = times
    _ = mpi.calls.allreduce(&times, &slowest, Int32(iterations), mpi.constants.double, mpi.constants.max, world)
    slowest.sort()
    if runtime.worldRank == 0 { say("MPILOOP via=\(via) store=\(arguments["store"] ?? "0") p50_us=\(slowest[iterations / 2] / 1000)") }
    withExtendedLifetime(keep) {}
}
