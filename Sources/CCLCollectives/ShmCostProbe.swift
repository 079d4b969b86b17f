import CCLCore
import CCLSystem

extension ShmArena {
    /// Measures the cost model's inputs on every rank at once, in the arena just made, and returns
    /// the model every rank agrees on: each input is the median of what the ranks measured (or
    /// were configured with), read by every rank from the same published words.
    ///
    /// Collective, before any call: every rank takes the same sync points whether it measures or
    /// uses `configured`. It times 16 sync points, then (measuring) the best of three copies of
    /// its right neighbour's slot and of three float32 sums of its slot and the neighbour's, all
    /// ranks at once, as a call would run. It touches both of its slots, so no call pays their
    /// page faults. About 30 sync points and 200 µs per rank, more when ranks outnumber CPUs.
    func measureCosts(configured: ShmCostModel?, timeout: Timeout) throws(CCLError) -> ShmCostModel {
        let n = worldSize
        let ranksPerCPU = Double(n) / Double(CPUAffinity.onlineCPUs)
        guard n > 1 else {
            var model = configured ?? .typical
            model.ranksPerCPU = 1
            return model
        }
        var budget = CallBudget(timeout)
        let what = "measure shared-memory costs on group \(groupName)"
        let bytes = min(view.layout.slotBytes, 256 << 10) / 64 * 64
        let floats = bytes / MemoryLayout<Float>.size
        let mine = view.slot(rank: rank, parity: 0), spare = view.slot(rank: rank, parity: 1)
        mine.initializeMemory(as: Float.self, repeating: 1, count: floats)
        spare.initializeMemory(as: Float.self, repeating: 0, count: floats)
        try syncAll(what, budget: &budget)

        let syncRounds = 16
        let syncStart = monotonicNanoseconds()
        for _ in 0..<syncRounds { try syncAll(what, budget: &budget) }
        let syncNanoseconds = Double(monotonicNanoseconds() &- syncStart) / Double(syncRounds)

        // Each timed read finds the neighbour's slot freshly written by its core, as a call does
        // (a second read of the same lines would find them in this core's cache).
        let peer = UnsafeRawPointer(view.slot(rank: (rank + 1) % n, parity: 0))
        let sources = [UnsafeRawPointer(mine), peer]
        var copy = UInt64.max, reduce = UInt64.max
        for round in 0..<3 {
            mine.initializeMemory(as: Float.self, repeating: Float(2 * round + 2), count: floats)
            try syncAll(what, budget: &budget)
            let copyStart = monotonicNanoseconds()
            if configured == nil { spare.copyMemory(from: peer, byteCount: bytes) }
            copy = min(copy, max(1, monotonicNanoseconds() &- copyStart))
            try syncAll(what, budget: &budget)
            mine.initializeMemory(as: Float.self, repeating: Float(2 * round + 3), count: floats)
            try syncAll(what, budget: &budget)
            let reduceStart = monotonicNanoseconds()
            if configured == nil {
                sources.withUnsafeBufferPointer { Reduction.reduce($0, into: spare, count: floats, dtype: .float32, op: .sum, divisor: 1) }
            }
            reduce = min(reduce, max(1, monotonicNanoseconds() &- reduceStart))
            try syncAll(what, budget: &budget)
        }
        let measured =
            configured
            ?? ShmCostModel(
                syncNanoseconds: syncNanoseconds, copyBytesPerNanosecond: Double(bytes) / Double(copy),
                reduceBytesPerNanosecond: Double(2 * bytes) / Double(reduce))
        let words = view.costs(rank)
        words[0] = measured.syncNanoseconds
        words[1] = measured.copyBytesPerNanosecond
        words[2] = measured.reduceBytesPerNanosecond
        try syncAll(what, budget: &budget)

        func median(_ index: Int) -> Double {
            let values = (0..<n).map { view.costs($0)[index] }.sorted()
            return values[(n - 1) / 2]
        }
        return ShmCostModel(
            syncNanoseconds: median(0), copyBytesPerNanosecond: median(1), reduceBytesPerNanosecond: median(2), ranksPerCPU: ranksPerCPU)
    }
}
