import CCL
import CCLSystem
import Foundation

/// The worker's `restart` mode: a rank that forms the world group, checks that the all-gather
/// sees exactly this round's ranks, makes a communicator of `transport` (and with `queue=N` the
/// group's broadcast queue, N messages from rank 0), and runs `iterations` verified all-reduces.
///
///   restart port=P token=T rank=R world=W transport=shm|tcp [iterations=N] [die=K] [queue=N]
///           [rejoin=1] [timeout=SECONDS]
///
/// `die=K`: SIGKILL itself before all-reduce K (a rank that dies inside the job). `rejoin=1`:
/// when the job fails (a peer died), make the group again once and run it again: the survivor
/// meeting a restarted rank. Prints `FORMED <round>` when the group and communicator are made,
/// `LOST <code> <error>` when it rejoins, `DONE <round>` at the end.
func restartingRank() throws {
    let store = try TCPStoreClient(
        host: arguments["host"] ?? "127.0.0.1", port: int("port", 0), token: arguments["token"] ?? "", timeout: .seconds(30))
    var attemptsLeft = arguments["rejoin"] == "1" ? 2 : 1
    while true {
        attemptsLeft -= 1
        do {
            try runJob(store)
            return
        } catch let error as CCLError where attemptsLeft > 0 {
            say("LOST \(error.code.name) \(error)")
        }
    }
}

private func runJob(_ store: TCPStoreClient) throws {
    let rank = int("rank", 0)
    let worldSize = int("world", 2)
    let timeout = Timeout.seconds(Double(int("timeout", 30)))
    let group = try StatelessProcessGroup(rank: rank, worldSize: worldSize, store: store, timeout: timeout)
    defer { group.close() }
    let ranks = try group.allGatherObject(rank)
    guard ranks == Array(0..<worldSize) else {
        throw CCLError(.malformed, operation: "restart check", rank: rank, "the all-gather saw \(ranks), not this round's ranks")
    }
    let nodes = try NodeLayout(group: group, nodeID: "node0")
    var options = CollectiveOptions()
    options.transport = CollectiveOptions.Transport(rawValue: arguments["transport"] ?? "shm") ?? .shm
    options.timeout = timeout
    options.tcp.token = arguments["token"] ?? ""
    let communicator = try CPUCommunicatorFactory.create(group: group, nodes: nodes, options: options)
    say("FORMED \(group.roundID)")
    let die = int("die", -1)
    let count = 1024
    for iteration in 0..<int("iterations", 20) {
        if iteration == die { kill(getpid(), SIGKILL) }
        var values = [Float](repeating: Float(rank + 1 + iteration), count: count)
        try values.withUnsafeMutableBytes { bytes in
            try communicator.allReduce(UnsafeRawBufferPointer(bytes), into: bytes, count: count, dtype: .float32, op: .sum)
        }
        let expected = Float(worldSize * (1 + iteration) + worldSize * (worldSize - 1) / 2)
        guard values.allSatisfy({ $0 == expected }) else {
            throw CCLError(.malformed, operation: "restart check", rank: rank, "all-reduce \(iteration) gave \(values[0]), not \(expected)")
        }
        usleep(20_000)  // so that a rank killed mid-job finds the others inside a call
    }
    let messages = int("queue", 0)
    if messages > 0 {
        var queueOptions = QueueOptions()
        queueOptions.timeout = timeout
        switch try MessageQueueEnd.create(from: group, writer: 0, nodes: nodes, options: queueOptions) {
        case .writer(let writer):
            for index in 0..<messages { try writer.enqueue(Array("message \(index) of round \(group.roundID)".utf8)) }
            writer.close()
        case .reader(let reader):
            for index in 0..<messages {
                let expected = Array("message \(index) of round \(group.roundID)".utf8)
                guard try reader.dequeue() == expected else {
                    throw CCLError(.malformed, operation: "restart check", rank: rank, "queue message \(index) differs")
                }
            }
        }
    }
    try group.barrier()
    say("DONE \(group.roundID)")
}
