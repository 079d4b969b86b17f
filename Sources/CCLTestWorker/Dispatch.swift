import CCL
import Foundation

/// Per-call cost of a world-1 communicator's allReduce of 8 bytes (no other rank: the call path
/// alone).
func dispatch() throws {
    let store = InMemoryStore(timeout: .seconds(10))
    let world = try StatelessProcessGroup(rank: 0, worldSize: 1, store: store, timeout: .seconds(10))
    var options = CollectiveOptions()
    options.transport = CollectiveOptions.Transport(rawValue: arguments["transport"] ?? "shm") ?? .shm
    let communicator = try CPUCommunicatorFactory.create(group: world, nodes: NodeLayout(nodeOfRank: ["a"]), options: options)
    var values: [Float] = [1, 2]
    let calls = 5_000_000
    for round in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        try values.withUnsafeMutableBytes { raw in
            for _ in 0..<calls { try communicator.allReduce(UnsafeRawBufferPointer(raw), into: raw, count: 2, dtype: .float32, op: .sum) }
        }
        let ns = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(calls)
        say("DISPATCH round \(round) \(String(format: "%.2f", ns)) ns/call")
    }
}
