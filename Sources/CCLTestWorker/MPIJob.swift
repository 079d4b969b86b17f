import CCL
import CCLMPI
import Foundation

/// The worker's `mpi` mode, one rank of a job started by `mpirun`: the store through
/// `Rendezvous.joinJob` (no address given), the world's communicator from the backend `backend=`
/// asks for (strict), every op × dtype verified on `counts=`, then the same on the tensor-parallel
/// groups of a layout with `tp=` (made by their own members, one group at a time), and a barrier.
/// `killself=R` kills rank R with SIGKILL after its first checks; `stall=R` keeps rank R out of
/// the all-reduce that follows a ring sendRecv (the others wait in MPI; the watchdog reports them).
/// `shortrecv=N`: rank 0 sends N float32 to rank 1, which receives N + 6 and prints `SHORT` and
/// the error, then both end.
func mpiJob() throws {
    let environment = ProcessInfo.processInfo.environment
    let launch = try LaunchEnvironment.parse(environment)
    let (store, server) = try Rendezvous.joinJob(launch, environment: environment, timeout: .seconds(60))
    let world = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store, timeout: .seconds(60))
    let nodes = try NodeLayout(group: world, nodeID: arguments["node"] ?? NodeIdentity.current(environment: environment))
    var options = CollectiveOptions()
    options.timeout = .seconds(Double(int("timeout", 60)))
    options.launcher = launch.source
    options.request = try BackendRequest.parse(arguments["backend"] ?? "mpi", strict: true, origin: "CCL_BACKEND")
    let (communicator, decision) = try CPUCommunicatorFactory.make(group: world, nodes: nodes, options: options)
    say("RANK \(launch.rank) TRANSPORT \(communicator.transportDescription) BACKEND \(decision.backend)")
    if launch.rank == 0, let runtime = MPIRuntime.existing {
        say(
            "MPI \(runtime.library.family.rawValue) \(runtime.library.shortVersion) initialisedHere=\(runtime.initializedHere) thread=\(runtime.threadLevel)"
        )
    }
    if let sent = arguments["shortrecv"].flatMap(Int.init) {
        var buffer = [Float](repeating: 1, count: sent + 6)
        if launch.rank == 0 {
            try buffer.withUnsafeBytes { try communicator.send($0, count: sent, dtype: .float32, to: 1) }
            say("RANK 0 SENT \(sent)")
        } else if launch.rank == 1 {
            do {
                try buffer.withUnsafeMutableBytes { try communicator.recv(into: $0, count: sent + 6, dtype: .float32, from: 0) }
                say("RANK 1 RECEIVED")
            } catch {
                say("SHORT \(error)")
            }
        }
        return
    }
    let counts = arguments["counts"].map { _ in ints("counts") } ?? [0, 1, 7, 1023]
    let dtypes = (arguments["dtypes"] ?? "").split(separator: ",").compactMap { DType(name: String($0)) }
    var checks = CollectiveChecks(communicator: communicator)
    var values: [Float] = [1]
    if int("stall", -1) >= 0 {
        // A point-to-point call first: the watchdog must still see the stalled call after it.
        var token = [Float(launch.rank)]
        var received: [Float] = [0]
        let n = launch.worldSize
        try token.withUnsafeBytes { source in
            try received.withUnsafeMutableBytes {
                try communicator.sendRecv(
                    source, to: (launch.rank + 1) % n, into: $0, from: (launch.rank + n - 1) % n, count: 1, dtype: .float32)
            }
        }
    }
    if int("stall", -1) == launch.rank {
        say("STALLING")
        sleep(UInt32(int("timeout", 60) * 2))
    }
    try values.withUnsafeMutableBytes {
        try communicator.allReduce(UnsafeRawBufferPointer($0), into: $0, count: 1, dtype: .float32, op: .sum)
    }
    for dtype in dtypes.isEmpty ? DType.allCases : dtypes {
        for count in counts { try checks.run(dtype, count: count) }
        if int("killself", -1) == launch.rank {
            say("KILLING pid \(getpid())")
            kill(getpid(), SIGKILL)
        }
    }
    say("RANK \(launch.rank) WORLD \(checks.checks)")
    let tp = int("tp", 1)
    if tp > 1 {
        let layout = try ParallelLayout(world: launch.worldSize, tp: tp, pp: launch.worldSize / tp)
        let group = try GroupCoordinator.create(.tp, layout: layout, rank: launch.rank, store: store, nodes: nodes, collectives: options)
        guard let tensorParallel = group.cpuCommunicator else {
            throw CCLError(.invalidArgument, operation: "mpi job", rank: launch.rank, "the tp group has no communicator")
        }
        var groupChecks = CollectiveChecks(communicator: tensorParallel)
        for dtype in dtypes.isEmpty ? DType.allCases : dtypes {
            for count in counts { try groupChecks.run(dtype, count: count) }
        }
        say("RANK \(launch.rank) TP \(group.ranks) \(tensorParallel.backend) \(groupChecks.checks)")
    }
    try communicator.barrier()
    world.close()
    try Rendezvous.finish(store: store, server: server, rank: launch.rank, worldSize: launch.worldSize)
    say("RANK \(launch.rank) DONE")
}
