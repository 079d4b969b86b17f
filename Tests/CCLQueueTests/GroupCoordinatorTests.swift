import CCL
import Foundation
import Testing

/// Every rank of W=8 (TP=2, PP=2, DP=2), as threads over one in-memory store, builds its TP, PP
/// and DP coordinators; the TP groups get broadcast queues (shared memory: one node).
@Suite struct GroupCoordinatorTests {
    @Test("coordinators follow the layout, talk inside their groups, and broadcast through their queue")
    func coordinators() throws {
        let layout = try ParallelLayout(world: 8, tp: 2, pp: 2, dp: 2)
        let store = InMemoryStore(timeout: .seconds(20))
        let nodes = NodeLayout(nodeOfRank: Array(repeating: "one", count: 8))
        let outcomes = Outcomes()
        let done = DispatchGroup()
        for rank in 0..<8 {
            done.enter()
            Thread {
                defer { done.leave() }
                let outcome: String
                do {
                    var options = QueueOptions()
                    options.chunkBytes = 4096
                    options.chunkCount = 4
                    let tp = try GroupCoordinator.create(
                        .tp, layout: layout, rank: rank, store: store, nodes: nodes, withQueue: true, options: options)
                    let pp = try GroupCoordinator.create(.pp, layout: layout, rank: rank, store: store, nodes: nodes)
                    let dp = try GroupCoordinator.create(.dp, layout: layout, rank: rank, store: store, nodes: nodes)
                    let tpRanks = try tp.group.allGatherObject(rank)
                    let ppRanks = try pp.group.allGatherObject(rank)
                    let dpRanks = try dp.group.allGatherObject(rank)
                    var step = "?"
                    switch tp.queue {
                    case .writer(let writer)?:
                        try writer.enqueue(encoding: "step from \(rank)")
                        step = "wrote"
                    case .reader(let reader)?:
                        step = try reader.dequeue(decoding: String.self)
                    case nil: break
                    }
                    outcome = "\(tp.name) \(tpRanks) \(pp.name) \(ppRanks) \(dp.name) \(dpRanks) \(step)"
                } catch {
                    outcome = "error: \(error)"
                }
                outcomes.set(rank, outcome)
            }.start()
        }
        done.wait()
        #expect(outcomes[0] == "tp0 [0, 1] pp0 [0, 2] dp0 [0, 4] wrote")
        #expect(outcomes[1] == "tp0 [0, 1] pp1 [1, 3] dp2 [1, 5] step from 0")
        #expect(outcomes[5] == "tp2 [4, 5] pp3 [5, 7] dp2 [1, 5] step from 4")
        #expect(outcomes[6] == "tp3 [6, 7] pp2 [4, 6] dp1 [2, 6] wrote")
    }
}

/// Each rank thread's result.
private final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: String] = [:]
    func set(_ rank: Int, _ value: String) { lock.withLock { values[rank] = value } }
    subscript(rank: Int) -> String? { lock.withLock { values[rank] } }
}
