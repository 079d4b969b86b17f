import CCLCore

/// Recursive halving and doubling for power-of-two groups: the all-reduce (Rabenseifner's: a
/// reduce-scatter by halving, then an all-gather by doubling), the reduce-scatter and the
/// all-gather. They move what the ring moves (1 - 1/n of the data per rank and phase) in log2(n)
/// exchanges per phase instead of n-1, each with one partner rather than chained to both
/// neighbours, so mid-size calls on many ranks wait on fewer round trips
/// (`PeerAllReduce.halvingDoubling`).
///
/// The data is cut into n parts. Halving, at the step with partner `rank ^ mask` (mask n/2, n/4,
/// …, 1), a rank keeps the half of its current parts on its side of the mask and sends the other
/// half, reducing what it receives into what it keeps; it ends owning part `rank`, fully reduced.
/// Doubling retraces the steps (mask 1, 2, …, n/2), swapping owned ranges. Each part is reduced
/// on one rank only, the lower rank's data first at every step, so every rank ends with the same
/// bits.
extension PeerTransport {
    func halvingDoublingAllReduce(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        let n = peerWorldSize
        let elements = { (parts: Range<Int>) in (count * parts.lowerBound / n)..<(count * parts.upperBound / n) }
        let buffers = HalvingBuffers(input: input, partials: output, partialsBase: 0, result: output, resultBase: 0, size: dtype.size)
        try recursiveHalving(
            buffers, elements: elements, dtype: dtype, op: op, incoming: scratch(max(1, chunkBytes / dtype.size) * dtype.size))
        try recursiveDoubling(output, elements: elements, dtype: dtype)
    }

    /// Reduce-scatter of n blocks of `count` by recursive halving; partials in scratch.
    func halvingReduceScatter(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        let n = peerWorldSize, size = dtype.size, perChunk = max(1, chunkBytes / size)
        // The half of the blocks this rank keeps at the first step holds every partial it keeps.
        let partialBytes = n / 2 * count * size
        let partials = scratch(partialBytes + perChunk * size)
        let buffers = HalvingBuffers(
            input: input, partials: partials, partialsBase: (peerRank & (n >> 1) == 0 ? 0 : n / 2) * count, result: output,
            resultBase: peerRank * count, size: size)
        try recursiveHalving(
            buffers, elements: { ($0.lowerBound * count)..<($0.upperBound * count) }, dtype: dtype, op: op,
            incoming: partials + partialBytes)
    }

    /// All-gather of n blocks of `count` by recursive doubling, once this rank's block is in place.
    func doublingAllGather(_ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws(CCLError) {
        try recursiveDoubling(output, elements: { ($0.lowerBound * count)..<($0.upperBound * count) }, dtype: dtype)
    }

    /// Pieces of at most `perChunk` elements that cover the longer of two ranges: the same count
    /// on both partners, whose ranges swap roles.
    private func pieces(_ first: Range<Int>, _ second: Range<Int>, _ perChunk: Int) -> Int {
        max(1, (max(first.count, second.count) + perChunk - 1) / perChunk)
    }

    /// The halving phase; `incoming` holds one piece (`chunkBytes`).
    private func recursiveHalving(
        _ buffers: HalvingBuffers, elements: (Range<Int>) -> Range<Int>, dtype: DType, op: ReduceOp, incoming: UnsafeMutableRawPointer
    ) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        let perChunk = max(1, chunkBytes / size)
        var owned = 0..<n
        var mask = n >> 1
        while mask > 0 {
            let partner = r ^ mask, lower = r & mask == 0
            let middle = (owned.lowerBound + owned.upperBound) / 2
            let kept = lower ? owned.lowerBound..<middle : middle..<owned.upperBound
            let keep = elements(kept), give = elements(lower ? middle..<owned.upperBound : owned.lowerBound..<middle)
            // The first step reads the input as it is; later ones the partials.
            let first = owned.count == n
            let source = { (element: Int) in first ? buffers.input + element * size : UnsafeRawPointer(buffers.partial(element)) }
            for index in 0..<pieces(keep, give, perChunk) {
                let out = sub(give, index, perChunk), into = sub(keep, index, perChunk)
                try exchange(
                    send: UnsafeRawBufferPointer(start: source(out.lowerBound), count: out.count * size), to: partner,
                    receive: UnsafeMutableRawBufferPointer(start: incoming, count: into.count * size), from: partner)
                let mine = source(into.lowerBound)
                let target = mask == 1 ? buffers.result(into.lowerBound) : buffers.partial(into.lowerBound)
                withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 2) { pair in
                    pair[0] = lower ? mine : UnsafeRawPointer(incoming)
                    pair[1] = lower ? UnsafeRawPointer(incoming) : mine
                    Reduction.reduce(
                        UnsafeBufferPointer(pair), into: target, count: into.count, dtype: dtype, op: op, divisor: mask == 1 ? n : 1)
                }
            }
            owned = kept
            mask >>= 1
        }
    }

    /// The doubling phase, in place in `buffer` (the whole), from this rank's own part.
    private func recursiveDoubling(_ buffer: UnsafeMutableRawPointer, elements: (Range<Int>) -> Range<Int>, dtype: DType) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        let perChunk = max(1, chunkBytes / size)
        var owned = r..<(r + 1)
        var mask = 1
        while mask < n {
            let partner = r ^ mask, width = owned.count
            let theirs = r & mask == 0 ? owned.upperBound..<(owned.upperBound + width) : (owned.lowerBound - width)..<owned.lowerBound
            let mine = elements(owned), into = elements(theirs)
            for index in 0..<pieces(mine, into, perChunk) {
                let out = sub(mine, index, perChunk), part = sub(into, index, perChunk)
                try exchange(
                    send: UnsafeRawBufferPointer(start: buffer + out.lowerBound * size, count: out.count * size), to: partner,
                    receive: UnsafeMutableRawBufferPointer(start: buffer + part.lowerBound * size, count: part.count * size), from: partner)
            }
            owned = min(owned.lowerBound, theirs.lowerBound)..<max(owned.upperBound, theirs.upperBound)
            mask <<= 1
        }
    }
}

/// Where the elements of the whole live while halving: element e is read first from
/// `input + e·size`, its partials kept at `partials + (e - partialsBase)·size`, and the part this
/// rank ends with written to `result + (e - resultBase)·size`.
struct HalvingBuffers {
    let input: UnsafeRawPointer
    let partials: UnsafeMutableRawPointer
    let partialsBase: Int
    let result: UnsafeMutableRawPointer
    let resultBase: Int
    let size: Int

    func partial(_ element: Int) -> UnsafeMutableRawPointer { partials + (element - partialsBase) * size }
    func result(_ element: Int) -> UnsafeMutableRawPointer { result + (element - resultBase) * size }
}
