import CCLCore

/// Rabenseifner's all-reduce for power-of-two groups: a reduce-scatter by recursive halving, then
/// an all-gather by recursive doubling. It moves what the ring moves (2(n-1)/n of the data per
/// rank) in 2·log2(n) exchanges instead of 2(n-1), so mid-size calls on many ranks wait on
/// fewer round trips (`PeerAllReduce.halvingDoubling`).
///
/// The data is cut into n parts (`partRange`). At the step with partner `rank ^ mask` (mask n/2,
/// n/4, …, 1) a rank keeps the half of its current parts on its side of the mask and sends the
/// other half, reducing what it receives into what it keeps; it ends owning part `rank`, fully
/// reduced. The all-gather retraces the steps (mask 1, 2, …, n/2), swapping owned ranges. Each
/// part is reduced on one rank only, the lower rank's data first at every step, so every rank
/// ends with the same bits.
extension PeerTransport {
    func halvingDoublingAllReduce(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        let perChunk = max(1, chunkBytes / size)
        let incoming = scratch(perChunk * size)
        /// Elements of parts `parts`.
        func elements(_ parts: Range<Int>) -> Range<Int> { (count * parts.lowerBound / n)..<(count * parts.upperBound / n) }
        /// Pieces of at most `perChunk` elements that cover the longer of two ranges.
        func pieces(_ first: Range<Int>, _ second: Range<Int>) -> Int { max(1, (max(first.count, second.count) + perChunk - 1) / perChunk) }
        var owned = 0..<n
        var mask = n >> 1
        while mask > 0 {
            let partner = r ^ mask, lower = r & mask == 0
            let middle = (owned.lowerBound + owned.upperBound) / 2
            let kept = lower ? owned.lowerBound..<middle : middle..<owned.upperBound
            let keep = elements(kept), give = elements(lower ? middle..<owned.upperBound : owned.lowerBound..<middle)
            // The first step reads the input as it is; later ones the partials in the output.
            let source = owned.count == n ? input : UnsafeRawPointer(output)
            for index in 0..<pieces(keep, give) {
                let out = sub(give, index, perChunk), into = sub(keep, index, perChunk)
                try exchange(
                    send: UnsafeRawBufferPointer(start: source + out.lowerBound * size, count: out.count * size), to: partner,
                    receive: UnsafeMutableRawBufferPointer(start: incoming, count: into.count * size), from: partner)
                let mine = source + into.lowerBound * size
                withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 2) { pair in
                    pair[0] = lower ? mine : UnsafeRawPointer(incoming)
                    pair[1] = lower ? UnsafeRawPointer(incoming) : mine
                    Reduction.reduce(
                        UnsafeBufferPointer(pair), into: output + into.lowerBound * size, count: into.count, dtype: dtype, op: op,
                        divisor: mask == 1 ? n : 1)
                }
            }
            owned = kept
            mask >>= 1
        }
        mask = 1
        while mask < n {
            let partner = r ^ mask, width = owned.count
            let theirs = r & mask == 0 ? owned.upperBound..<(owned.upperBound + width) : (owned.lowerBound - width)..<owned.lowerBound
            let mine = elements(owned), into = elements(theirs)
            for index in 0..<pieces(mine, into) {
                let out = sub(mine, index, perChunk), part = sub(into, index, perChunk)
                try exchange(
                    send: UnsafeRawBufferPointer(start: output + out.lowerBound * size, count: out.count * size), to: partner,
                    receive: UnsafeMutableRawBufferPointer(start: output + part.lowerBound * size, count: part.count * size), from: partner)
            }
            owned = min(owned.lowerBound, theirs.lowerBound)..<max(owned.upperBound, theirs.upperBound)
            mask <<= 1
        }
    }
}
