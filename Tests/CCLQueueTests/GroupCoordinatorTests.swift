import CCL
import CCLBackend
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

    @Test("a coordinator holds a CPU and a device communicator from the registry; host buffers share one")
    func communicators() throws {
        let layout = try ParallelLayout(world: 2, tp: 2, pp: 1, dp: 1)
        let store = InMemoryStore(timeout: .seconds(20))
        let nodes = NodeLayout(nodeOfRank: ["one", "one"])
        let outcomes = onEveryRank(2) { rank in
            do {
                let tp = try GroupCoordinator.create(
                    .tp, layout: layout, rank: rank, store: store, nodes: nodes, collectives: CollectiveOptions(), device: .host)
                guard let cpu = tp.cpuCommunicator, let device = tp.deviceCommunicator else { return "missing" }
                var value: [Int64] = [Int64(rank + 1)]
                try value.withUnsafeMutableBytes {
                    try device.allReduce(UnsafeRawBufferPointer($0), into: $0, count: 1, dtype: .int64, op: .sum)
                }
                return "\(cpu.backend) \(cpu === device) \(value[0])"
            } catch {
                return "error: \(error)"
            }
        }
        #expect(outcomes[0] == "shm true 3")
        #expect(outcomes[1] == "shm true 3")
    }

    @Test("a device communicator needs the collective options (token, address, request)")
    func deviceNeedsOptions() throws {
        let layout = try ParallelLayout(world: 1, tp: 1, pp: 1, dp: 1)
        let error = #expect(throws: CCLError.self) {
            _ = try GroupCoordinator.create(
                .tp, layout: layout, rank: 0, store: InMemoryStore(), nodes: NodeLayout(nodeOfRank: ["one"]), device: .host)
        }
        #expect(error?.code == .invalidArgument && error?.message.hasPrefix("a device communicator needs collectives:") == true)
    }

    @Test("a CUDA device on a machine without the CUDA driver (CI) fails with NCCL's probe's reason")
    func cudaWithoutBackend() throws {
        let layout = try ParallelLayout(world: 1, tp: 1, pp: 1, dp: 1)
        let error = #expect(throws: CCLError.self) {
            _ = try GroupCoordinator.create(
                .tp, layout: layout, rank: 0, store: InMemoryStore(), nodes: NodeLayout(nodeOfRank: ["one"]),
                collectives: CollectiveOptions(), device: .cuda(0))
        }
        #expect(error?.code == .unavailable)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("no backend can serve cuda buffers on one node: nccl: libcuda.so.1 not found (tried: "), "\(message)")
    }
}

/// Splitting sub-groups out of the world's device communicator (NCCL's `ncclCommSplit`). No GPU
/// here, so the world communicator is a stand-in that records the colors and keys it is asked
/// for; the NCCL split itself runs in scripts/gpu-check.sh (`split` row).
@Suite struct GroupSplitTests {
    /// A stand-in for the world's NCCL communicator of one rank; its children are stand-ins too.
    final class StandInWorld: SplittableCommunicator, @unchecked Sendable {
        let rank: Int
        let worldSize: Int
        let label: String
        private let lock = NSLock()
        private var asked: [String] = []
        init(rank: Int, worldSize: Int, label: String = "world") {
            self.rank = rank
            self.worldSize = worldSize
            self.label = label
        }
        var splits: [String] { lock.withLock { asked } }
        var backend: String { "stand-in" }
        var transportDescription: String { "stand-in \(label)" }
        var device: Device { .cuda(0) }
        func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream) throws(CCLError)
            -> Completion
        {
            Completion(sequence: 0, state: .enqueued(stream))
        }
        func abort(_ error: CCLError) {}
        func split(into group: StatelessProcessGroup, color: Int, key: Int) throws(CCLError) -> any Communicator {
            lock.withLock { asked.append("\(group.name) color \(color) key \(key)") }
            return StandInWorld(rank: group.rank, worldSize: group.worldSize, label: "\(group.name) split")
        }
    }

    @Test("every rank's TP and PP device communicators are split from the world's, colored by the layout's group index")
    func split() throws {
        let layout = try ParallelLayout(world: 4, tp: 2, pp: 2, dp: 1)
        let store = InMemoryStore(timeout: .seconds(20))
        let nodes = NodeLayout(nodeOfRank: Array(repeating: "one", count: 4))
        let options = {
            var options = CollectiveOptions()
            options.transport = .tcp  // the CPU communicators are not what this test is about: keep them light
            options.tcp.host = "127.0.0.1"
            return options
        }()
        let outcomes = onEveryRank(4) { rank in
            let world = StandInWorld(rank: rank, worldSize: 4)
            do {
                var lines: [String] = []
                for kind in [ParallelLayout.Kind.tp, .pp] {
                    let group = try GroupCoordinator.create(
                        kind, layout: layout, rank: rank, store: store, nodes: nodes, collectives: options, device: .cuda(0),
                        splitting: world)
                    let device = group.deviceCommunicator
                    lines.append("\(device?.transportDescription ?? "none") \(device?.worldSize ?? 0) \(group.deviceChoice?.reason ?? "")")
                }
                return (world.splits + lines).joined(separator: "; ")
            } catch {
                return "error: \(error)"
            }
        }
        // tp groups [0 1] [2 3], pp groups [0 2] [1 3] (vLLM's layout).
        let reason = "split from group world's communicator"
        #expect(
            outcomes[0]
                == "tp0 color 0 key 0; pp0 color 0 key 0; stand-in tp0 split 2 \(reason); stand-in pp0 split 2 \(reason)")
        #expect(
            outcomes[3]
                == "tp1 color 1 key 1; pp1 color 1 key 1; stand-in tp1 split 2 \(reason); stand-in pp1 split 2 \(reason)")
        #expect(outcomes[2]?.hasPrefix("tp1 color 1 key 0; pp0 color 0 key 1;") == true, "\(outcomes[2] ?? "")")
    }

    @Test("splitting from a communicator that is not the world's on that device is refused, naming both")
    func wrongParent() throws {
        let layout = try ParallelLayout(world: 1, tp: 1, pp: 1, dp: 1)
        let error = #expect(throws: CCLError.self) {
            _ = try GroupCoordinator.create(
                .tp, layout: layout, rank: 0, store: InMemoryStore(), nodes: NodeLayout(nodeOfRank: ["one"]),
                collectives: CollectiveOptions(), device: .cuda(0), splitting: StandInWorld(rank: 0, worldSize: 2))
        }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message.contains("needs the world's communicator on cuda:0 (1 ranks), got one of 2 ranks") == true,
            "\(error?.message ?? "")")
    }
}

/// Runs `body(rank)` for `ranks` ranks, each on a thread of its own, and collects what each said.
private func onEveryRank(_ ranks: Int, _ body: @escaping @Sendable (Int) -> String) -> Outcomes {
    let outcomes = Outcomes()
    let done = DispatchGroup()
    for rank in 0..<ranks {
        done.enter()
        Thread {
            defer { done.leave() }
            outcomes.set(rank, body(rank))
        }.start()
    }
    done.wait()
    return outcomes
}

/// Each rank thread's result.
private final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: String] = [:]
    func set(_ rank: Int, _ value: String) { lock.withLock { values[rank] = value } }
    subscript(rank: Int) -> String? { lock.withLock { values[rank] } }
}
