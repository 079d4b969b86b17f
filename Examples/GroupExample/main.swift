import CCL
import Foundation

// Rendezvous and a process group: every rank finds the store from its launch environment (ours,
// torchrun's, Open MPI's or Slurm's), forms the world group, learns which ranks share its node,
// and exchanges small Codable values. Run it under a launcher, e.g.
//   ccl launch --nproc-per-node 4 -- .build/debug/GroupExample

struct Endpoint: Codable {
    var rank: Int
    var host: String
    var port: Int
}

func run() throws {
    let environment = ProcessInfo.processInfo.environment
    // README: group
    let launch = try LaunchEnvironment.parse(environment)  // CCL_*, torchrun, Open MPI, PMI, Slurm
    let (store, server) = try Rendezvous.join(launch, environment: environment)  // rank 0 serves it under torchrun
    let world = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store)
    let nodes = try NodeLayout(group: world, nodeID: NodeIdentity.current(environment: environment))
    let mine = Endpoint(rank: world.rank, host: NodeIdentity.hostName(), port: 40_000 + world.rank)
    let everyone = try world.allGatherObject(mine)  // any Codable; a timeout names the missing ranks
    let config: [String: String] = try world.broadcastObject(world.rank == 0 ? ["model": "llama"] : nil, from: 0)
    try world.barrier()
    // README: end
    print(
        "rank \(world.rank) of \(world.worldSize): \(nodes.nodeCount) node(s), local rank \(nodes.local(world.rank).rank), peers \(everyone.map(\.port)), \(config)"
    )
    // README: finish
    world.close()  // leaves the group; the last one out deletes its keys
    try Rendezvous.finish(store: store, server: server, rank: launch.rank, worldSize: launch.worldSize)
    // README: end
}

do { try run() } catch {
    FileHandle.standardError.write(Data("GroupExample: \(error)\n".utf8))
    exit(1)
}
