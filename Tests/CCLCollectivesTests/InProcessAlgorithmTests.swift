import CCL
import Foundation
import Testing

@testable import CCLCollectives

/// Every algorithm over the in-process transport (ranks as threads), at world sizes 1–8 including
/// non-powers of two, with slots and chunks small enough that every call is pipelined in pieces.
/// Values are small integers, so every summation order gives the same exact result and the
/// reference can combine in rank order.
@Suite struct InProcessAlgorithmTests {
    /// Runs `body` on one thread per rank; returns each rank's result (or its error) in rank order.
    static func onRanks<T: Sendable>(_ worldSize: Int, _ body: @escaping @Sendable (Int) throws -> T) -> [Result<T, any Error>] {
        let results = Results<T>(worldSize)
        let done = DispatchGroup()
        for rank in 0..<worldSize {
            done.enter()
            let thread = Thread {
                results.set(rank, Result { try body(rank) })
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        done.wait()
        return results.all
    }

    /// Small integers of `dtype` for `rank`, element `i`: exact under any summation order.
    static func elements(_ dtype: DType, count: Int, rank: Int, salt: Int = 0) -> [UInt8] {
        let values = (0..<count).map { (($0 * 7 + rank * 3 + salt) % 5) - 1 }  // -1...3
        switch dtype {
        case .float32: return bytes(of: values.map { Float($0) })
        case .float64: return bytes(of: values.map { Double($0) })
        case .float16: return bytes(of: values.map { Float16(Float($0)).bitPattern })
        case .bfloat16: return bytes(of: values.map { BFloat16(Float($0)).bitPattern })
        case .int8: return bytes(of: values.map { Int8($0) })
        case .uint8: return bytes(of: values.map { UInt8($0 + 1) })
        case .int32: return bytes(of: values.map { Int32($0) })
        case .int64: return bytes(of: values.map { Int64($0) })
        // −1…1: sums over up to 8 ranks stay exact in e5m2 whatever the order.
        case .float8e4m3: return bytes(of: values.map { Float8E4M3(Float(($0 + 1) % 3 - 1)).bitPattern })
        case .float8e5m2: return bytes(of: values.map { Float8E5M2(Float(($0 + 1) % 3 - 1)).bitPattern })
        }
    }

    struct Config: Sendable, CustomTestStringConvertible {
        let family: InProcessCommunicator.Family
        let slot: SlotAllReduce?
        let peer: PeerAllReduce?
        var testDescription: String { "\(family) \(slot?.rawValue ?? peer?.rawValue ?? "")" }
    }

    static let allReduceConfigs = [
        Config(family: .slots, slot: .oneShot, peer: nil), Config(family: .slots, slot: .twoShot, peer: nil),
        Config(family: .peers, slot: nil, peer: .ring), Config(family: .peers, slot: nil, peer: .recursiveDoubling),
        Config(family: .peers, slot: nil, peer: .halvingDoubling),
    ]
    static let counts = [0, 1, 7, 1023]

    static func group(_ worldSize: Int) -> InProcessGroup {
        InProcessGroup(worldSize: worldSize, slotBytes: 256, chunkBytes: 96, timeout: .seconds(20))
    }

    @Test("all-reduce: one-shot, two-shot, ring, recursive doubling and halving-doubling at world sizes 1–8", arguments: allReduceConfigs)
    func allReduce(_ config: Config) throws {
        for worldSize in 1...8 where config.peer == .ring || config.peer == nil || worldSize & (worldSize - 1) == 0 {
            let group = Self.group(worldSize)
            let cases: [(DType, ReduceOp)] = [
                (.float32, .sum), (.float32, .avg), (.int32, .max), (.int64, .prod), (.bfloat16, .sum), (.float16, .min),
                (.int8, .sum), (.uint8, .max), (.float64, .sum),
            ]
            let results = Self.onRanks(worldSize) { rank -> [String] in
                let communicator = group.endpoint(rank: rank, family: config.family, slotAllReduce: config.slot, peerAllReduce: config.peer)
                var wrong: [String] = []
                for (dtype, op) in cases {
                    for count in Self.counts {
                        let input = Self.elements(dtype, count: count, rank: rank)
                        var output = [UInt8](repeating: 0xEE, count: input.count)
                        try input.withUnsafeBytes { source in
                            try output.withUnsafeMutableBytes {
                                try communicator.allReduce(source, into: $0, count: count, dtype: dtype, op: op)
                            }
                        }
                        let all = (0..<worldSize).map { Self.elements(dtype, count: count, rank: $0) }
                        let expected = Reference.reduce(all, count: count, dtype: dtype, op: op, divisor: worldSize)
                        if let index = firstMismatch(output, expected, dtype) { wrong.append("\(dtype) \(op) count \(count) at \(index)") }
                    }
                }
                return wrong
            }
            for (rank, result) in results.enumerated() {
                let wrong = try result.get()
                #expect(wrong.isEmpty, "world \(worldSize) rank \(rank): \(wrong)")
            }
        }
    }

    @Test(
        "all-gather, reduce-scatter, broadcast from every root, gather, barrier, ring shift",
        arguments: InProcessCommunicator.Family.allCases)
    func otherCollectives(_ family: InProcessCommunicator.Family) throws {
        for worldSize in 1...8 {
            let group = Self.group(worldSize)
            let results = Self.onRanks(worldSize) { rank -> [String] in
                let communicator = group.endpoint(rank: rank, family: family)
                var wrong: [String] = []
                for dtype in [DType.float32, .int8, .bfloat16] {
                    for count in Self.counts {
                        let size = dtype.size
                        let mine = Self.elements(dtype, count: count, rank: rank)
                        let everyone = (0..<worldSize).map { Self.elements(dtype, count: count, rank: $0) }
                        // all-gather
                        var gathered = [UInt8](repeating: 0, count: worldSize * count * size)
                        try mine.withUnsafeBytes { source in
                            try gathered.withUnsafeMutableBytes { try communicator.allGather(source, into: $0, count: count, dtype: dtype) }
                        }
                        if gathered != everyone.flatMap({ $0 }) { wrong.append("allGather \(dtype) \(count)") }
                        // reduce-scatter of worldSize blocks
                        let blocks = (0..<worldSize).map { Self.elements(dtype, count: worldSize * count, rank: $0, salt: 1) }
                        var block = [UInt8](repeating: 0, count: count * size)
                        try blocks[rank].withUnsafeBytes { source in
                            try block.withUnsafeMutableBytes {
                                try communicator.reduceScatter(source, into: $0, count: count, dtype: dtype, op: .sum)
                            }
                        }
                        let sums = Reference.reduce(blocks, count: worldSize * count, dtype: dtype, op: .sum, divisor: 1)
                        if block != Array(sums[(rank * count * size)..<((rank + 1) * count * size)]) {
                            wrong.append("reduceScatter \(dtype) \(count)")
                        }
                        // broadcast and gather from every root
                        for root in 0..<worldSize {
                            var buffer = rank == root ? mine : [UInt8](repeating: 0, count: count * size)
                            try buffer.withUnsafeMutableBytes { try communicator.broadcast($0, count: count, dtype: dtype, from: root) }
                            if buffer != everyone[root] { wrong.append("broadcast root \(root) \(dtype) \(count)") }
                            var atRoot = [UInt8](repeating: 0, count: rank == root ? worldSize * count * size : 0)
                            try mine.withUnsafeBytes { source in
                                try atRoot.withUnsafeMutableBytes {
                                    try communicator.gather(source, into: $0, count: count, dtype: dtype, to: root)
                                }
                            }
                            if rank == root, atRoot != everyone.flatMap({ $0 }) { wrong.append("gather root \(root) \(dtype) \(count)") }
                        }
                        try communicator.barrier()
                        // ring shift: send to the next rank, receive from the previous one
                        var shifted = [UInt8](repeating: 0, count: count * size)
                        try mine.withUnsafeBytes { source in
                            try shifted.withUnsafeMutableBytes {
                                try communicator.sendRecv(
                                    source, to: (rank + 1) % worldSize, into: $0, from: (rank + worldSize - 1) % worldSize, count: count,
                                    dtype: dtype)
                            }
                        }
                        if shifted != everyone[(rank + worldSize - 1) % worldSize] { wrong.append("sendRecv \(dtype) \(count)") }
                    }
                }
                return wrong
            }
            for (rank, result) in results.enumerated() {
                let wrong = try result.get()
                #expect(wrong.isEmpty, "world \(worldSize) rank \(rank): \(wrong)")
            }
        }
    }

    @Test("a rank that never arrives: the others time out naming it; abort reaches every waiting rank")
    func timeoutAndAbort() throws {
        let group = InProcessGroup(worldSize: 3, timeout: .milliseconds(300))
        let results = Self.onRanks(3) { rank -> String in
            guard rank != 2 else { return "absent" }
            do {
                try group.endpoint(rank: rank, family: .slots).barrier()
                return "returned"
            } catch {
                return "\(error)"
            }
        }
        for rank in 0..<2 {
            let text = try results[rank].get()
            #expect(text.contains("rank 2 never arrived"), "\(text)")
        }
        let aborted = InProcessGroup(worldSize: 2, timeout: .seconds(20))
        let outcome = Self.onRanks(2) { rank -> String in
            let communicator = aborted.endpoint(rank: rank, family: .peers)
            if rank == 1 {
                Thread.sleep(forTimeInterval: 0.05)
                communicator.abort(CCLError(.invalidArgument, operation: "test", rank: 1, "rank 1 gave up"))
                return "aborted"
            }
            do {
                var value: Int32 = 0
                try withUnsafeMutableBytes(of: &value) { try communicator.recv(into: $0, count: 1, dtype: .int32, from: 1) }
                return "received"
            } catch {
                return "\(error)"
            }
        }
        let text = try outcome[0].get()
        #expect(text.contains("rank 1 gave up"), "\(text)")
    }

    @Test(
        "hierarchical over two in-process tiers: nodes of 1–3 ranks, every collective",
        arguments: [[0, 0, 1, 1], [0, 1, 0, 1, 2], [0, 0, 0, 1]])
    func hierarchical(_ nodeOfRank: [Int]) throws {
        let worldSize = nodeOfRank.count
        let store = InMemoryStore(timeout: .seconds(20))
        let tiers = TierGroups()
        let nodes = NodeLayout(nodeOfRank: nodeOfRank.map { "n\($0)" })
        let results = Self.onRanks(worldSize) { rank -> [String] in
            let world = try StatelessProcessGroup(rank: rank, worldSize: worldSize, store: store, name: "h", timeout: .seconds(20))
            let communicator = try HierarchicalCommunicator(
                group: world, nodes: nodes,
                intraNode: { (sub, _) throws(CCLError) in tiers.group(sub.name, sub.worldSize).endpoint(rank: sub.rank, family: .slots) },
                interNode: { (sub, _) throws(CCLError) in tiers.group(sub.name, sub.worldSize).endpoint(rank: sub.rank, family: .peers) })
            var wrong: [String] = []
            #expect(communicator.transportDescription.hasPrefix("hierarchical (\(Set(nodeOfRank).count) nodes: inprocess-slots inside"))
            for count in Self.counts {
                let mine = Self.elements(.int32, count: count, rank: rank)
                let everyone = (0..<worldSize).map { Self.elements(.int32, count: count, rank: $0) }
                var sum = [UInt8](repeating: 0, count: mine.count)
                try mine.withUnsafeBytes { source in
                    try sum.withUnsafeMutableBytes { try communicator.allReduce(source, into: $0, count: count, dtype: .int32, op: .sum) }
                }
                if sum != Reference.reduce(everyone, count: count, dtype: .int32, op: .sum, divisor: 1) {
                    wrong.append("allReduce \(count)")
                }
                var gathered = [UInt8](repeating: 0, count: worldSize * mine.count)
                try mine.withUnsafeBytes { source in
                    try gathered.withUnsafeMutableBytes { try communicator.allGather(source, into: $0, count: count, dtype: .int32) }
                }
                if gathered != everyone.flatMap({ $0 }) { wrong.append("allGather \(count)") }
                for root in 0..<worldSize {
                    var buffer = rank == root ? mine : [UInt8](repeating: 0, count: mine.count)
                    try buffer.withUnsafeMutableBytes { try communicator.broadcast($0, count: count, dtype: .int32, from: root) }
                    if buffer != everyone[root] { wrong.append("broadcast root \(root) \(count)") }
                }
                var shifted = [UInt8](repeating: 0, count: mine.count)
                try mine.withUnsafeBytes { source in
                    try shifted.withUnsafeMutableBytes {
                        try communicator.sendRecv(
                            source, to: (rank + 1) % worldSize, into: $0, from: (rank + worldSize - 1) % worldSize, count: count,
                            dtype: .int32)
                    }
                }
                if shifted != everyone[(rank + worldSize - 1) % worldSize] { wrong.append("sendRecv \(count)") }
                for root in 0..<worldSize {
                    var atRoot = [UInt8](repeating: 0, count: rank == root ? worldSize * mine.count : 0)
                    try mine.withUnsafeBytes { source in
                        try atRoot.withUnsafeMutableBytes {
                            try communicator.gather(source, into: $0, count: count, dtype: .int32, to: root)
                        }
                    }
                    if rank == root, atRoot != everyone.flatMap({ $0 }) { wrong.append("gather root \(root) \(count)") }
                }
                let blocks = (0..<worldSize).map { Self.elements(.int32, count: worldSize * count, rank: $0, salt: 2) }
                var block = [UInt8](repeating: 0, count: mine.count)
                try blocks[rank].withUnsafeBytes { source in
                    try block.withUnsafeMutableBytes {
                        try communicator.reduceScatter(source, into: $0, count: count, dtype: .int32, op: .sum)
                    }
                }
                let sums = Reference.reduce(blocks, count: worldSize * count, dtype: .int32, op: .sum, divisor: 1)
                if block != Array(sums[(rank * mine.count)..<((rank + 1) * mine.count)]) { wrong.append("reduceScatter \(count)") }
                try communicator.barrier()
            }
            return wrong
        }
        for (rank, result) in results.enumerated() {
            let wrong = try result.get()
            #expect(wrong.isEmpty, "rank \(rank): \(wrong)")
        }
    }
}

/// Each rank thread's result.
private final class Results<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Result<T, any Error>?]
    init(_ count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Result<T, any Error>) { lock.withLock { values[index] = value } }
    var all: [Result<T, any Error>] {
        lock.withLock { values.map { $0 ?? .failure(CCLError(.invalidArgument, operation: "test", "no result")) } }
    }
}

/// The in-process group of each tier sub-group, made by the first of its ranks to ask.
private final class TierGroups: @unchecked Sendable {
    private let lock = NSLock()
    private var groups: [String: InProcessGroup] = [:]
    func group(_ name: String, _ worldSize: Int) -> InProcessGroup {
        lock.withLock {
            if let group = groups[name] { return group }
            let group = InProcessGroup(worldSize: worldSize, name: name, slotBytes: 256, chunkBytes: 96, timeout: .seconds(20))
            groups[name] = group
            return group
        }
    }
}
