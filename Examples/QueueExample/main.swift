import CCL
import Foundation

// The broadcast queue: rank 0 writes, every other rank reads; readers on rank 0's node through
// shared memory, readers on other nodes over TCP. Run it under a launcher, e.g.
//   ccl launch --nproc-per-node 3 -- .build/debug/QueueExample
// or as separate processes with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT) and CCL_TOKEN; CCL_NODE_ID gives a process another node, so its reader is remote.

struct StepInput: Codable, Equatable {
    var step: Int
    var tokens: [Int]
}

/// What a reader got, for the smoke test.
func report(_ rank: Int, _ handle: MessageQueueHandle, _ bytes: [UInt8], _ input: StepInput, _ tensor: [UInt8]) {
    let path = handle.localReaderRanks.contains(rank) ? "shared memory" : "TCP"
    let intact = tensor.prefix(2) == [9, 9] && tensor.dropFirst(2).allSatisfy { $0 == 4 }
    print(
        "rank \(rank) read over \(path): \(bytes), step \(input.step) tokens \(input.tokens), \(tensor.count) bytes \(intact ? "intact" : "CORRUPT")"
    )
}

func run() throws {
    let environment = ProcessInfo.processInfo.environment
    let launch = try LaunchEnvironment.parse(environment)
    let (store, server) = try Rendezvous.join(launch, environment: environment, timeout: .seconds(60))
    let world = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store)
    let nodes = try NodeLayout(group: world, nodeID: NodeIdentity.current(environment: environment))

    // README: queue
    var options = QueueOptions()
    options.token = environment["CCL_TOKEN"] ?? ""
    options.remoteHost = environment["CCL_QUEUE_HOST"] ?? "127.0.0.1"  // where remote readers connect
    if world.rank == 0 {
        let local = nodes.ranksOnSameNode(as: 0).filter { $0 != 0 }
        let remote = (1..<world.worldSize).filter { !local.contains($0) }
        let writer = try MessageQueueWriter(localReaders: local, remoteReaders: remote, rank: 0, options: options)
        _ = try world.broadcastObject(writer.handle, from: 0)  // a MessageQueueHandle is Codable
        try writer.waitUntilReady(timeout: .seconds(60))
        try writer.enqueue([1, 2, 3] as [UInt8])  // bytes
        try writer.enqueue(encoding: StepInput(step: 7, tokens: [5, 6]))  // any Codable value
        let header: [UInt8] = [9, 9], body = [UInt8](repeating: 4, count: 3 << 20)
        try header.withUnsafeBytes { h in
            try body.withUnsafeBytes { b in try writer.enqueue(parts: [h, b]) }  // gathered: each part copied once
        }
        writer.close()  // readers drain, then get .closed
    } else {
        let handle: MessageQueueHandle = try world.broadcastObject(nil, from: 0)
        let reader = try MessageQueueReader(handle: handle, rank: world.rank, options: options)
        try reader.waitUntilReady()
        let bytes: [UInt8] = try reader.dequeue()
        let input = try reader.dequeue(decoding: StepInput.self)
        var tensor = [UInt8](repeating: 0, count: 2 + (3 << 20))
        try tensor.withUnsafeMutableBytes { target in
            try reader.dequeueFragments { piece, offset, _ in  // a large message, in place,
                UnsafeMutableRawBufferPointer(rebasing: target[offset..<offset + piece.count]).copyMemory(from: piece)
            }  // slice by slice, as the writer fills the ring
        }
        report(world.rank, handle, bytes, input, tensor)
    }
    // README: end

    try Rendezvous.finish(store: store, server: server, rank: launch.rank, worldSize: launch.worldSize)
}

do { try run() } catch {
    FileHandle.standardError.write(Data("QueueExample: \(error)\n".utf8))
    exit(1)
}
