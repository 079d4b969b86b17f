import CCL
import Foundation

// Tensor parallelism as vLLM lays it out: the world split into TP, PP and DP groups
// (`ParallelLayout`), a `GroupCoordinator` for this rank's TP group, and an all-reduce on its
// CPU communicator; then the same over a backend forced by name. Run it under a launcher, e.g.
//   ccl launch --nproc-per-node 4 -- .build/debug/TensorParallelExample
// (TP = 2 by default; CCL_EXAMPLE_TP sets it.)

func run() throws {
    let environment = ProcessInfo.processInfo.environment
    let launch = try LaunchEnvironment.parse(environment)
    let (store, server) = try Rendezvous.join(launch, environment: environment)
    let world = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store)
    let nodes = try NodeLayout(group: world, nodeID: NodeIdentity.current(environment: environment))
    let rank = launch.rank
    let tpSize = Int(environment["CCL_EXAMPLE_TP"] ?? "") ?? 2

    // README: collectives
    let layout = try ParallelLayout(world: launch.worldSize, tp: tpSize, pp: 1, dp: launch.worldSize / tpSize)
    let options = try CollectiveOptions.fromEnvironment(environment)  // CCL_BACKEND, CCL_TOKEN, …
    let tp = try GroupCoordinator.create(.tp, layout: layout, rank: rank, store: store, nodes: nodes, collectives: options)
    guard let comm = tp.cpuCommunicator else { throw CCLError(.unavailable, operation: "example", "no CPU communicator") }
    let count = 4096
    var activations = [Float](repeating: Float(rank + 1), count: count)
    try activations.withUnsafeMutableBytes {  // in place: input and output the same
        try comm.allReduce(UnsafeRawBufferPointer($0), into: $0, count: count, dtype: .float32, op: .sum)
    }
    var weights = [UInt16](repeating: rank == tp.ranks[0] ? 0x3F80 : 0, count: 1024)  // bfloat16 1.0 at the first rank
    try weights.withUnsafeMutableBytes { try comm.broadcast($0, count: 1024, dtype: .bfloat16, from: 0) }
    try comm.barrier()
    // README: end

    // README: backend
    var forced = try CollectiveOptions.fromEnvironment(environment)
    forced.request = try BackendRequest.parse("tcp", strict: true, origin: "TensorParallelExample --backend")
    let (tcp, decision) = try CPUCommunicatorFactory.make(group: world, nodes: nodes, options: forced)
    print(decision)  // "tcp (requested by TensorParallelExample --backend=tcp)"
    // README: end

    let expected = (tp.ranks.map { Float($0 + 1) }).reduce(0, +)
    print(
        "rank \(rank): tp group \(tp.ranks) over \(comm.transportDescription): sum \(activations[0]) (expected \(expected)), weights[0] \(weights[0]); world over \(tcp.transportDescription)"
    )
    try Rendezvous.finish(store: store, server: server, rank: launch.rank, worldSize: launch.worldSize)
}

do { try run() } catch {
    FileHandle.standardError.write(Data("TensorParallelExample: \(error)\n".utf8))
    exit(1)
}
