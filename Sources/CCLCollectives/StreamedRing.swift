import CCLCore

/// The ring all-reduce and all-gather with their frames streamed (`FrameStream`): the
/// transport's thread sends each frame as soon as its data is final while the caller receives
/// and reduces the frames coming in, so sending, receiving and reducing overlap and no rank
/// waits for its neighbours step by step (Gloo's pipelining).
///
/// Frames are numbered in sending order (and, on the neighbour, in receiving order): each ring
/// step has `rounds` frames. What frame k + rounds sends is exactly what receiving frame k made
/// final (the reduce-scatter's partial, then the all-gather's block), so after frame k the caller
/// releases every frame below k + 1 + rounds; the first step's frames send the input as it is.
///
/// No frame's memory changes while it may be in flight: a block this rank sends in the
/// reduce-scatter is overwritten only by the all-gather's final value of that block, which
/// cannot arrive before the neighbour received (so this rank finished sending) the partial; a
/// block received in the all-gather is only read afterwards.
extension PeerTransport {
    /// The ring all-reduce, streamed; false (nothing done) when the transport cannot stream it.
    func streamedRingAllReduce(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) -> Bool {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        guard n > 1 else { return false }
        let (rounds, perChunk) = rounds(blockElements: (count + n - 1) / n, size: size)
        let reduceScatterBlock = { (step: Int) in partRange(self.mod(r - step), of: count, parts: n) }
        let allGatherBlock = { (step: Int) in partRange(self.mod(r + 1 - step), of: count, parts: n) }
        var frames: [UnsafeRawBufferPointer] = []
        frames.reserveCapacity(2 * (n - 1) * rounds)
        for step in 0..<(n - 1) {
            let base = step == 0 ? input : UnsafeRawPointer(output)
            for index in 0..<rounds { frames.append(bytes(base, sub(reduceScatterBlock(step), index, perChunk), size)) }
        }
        for step in 0..<(n - 1) {
            for index in 0..<rounds { frames.append(bytes(UnsafeRawPointer(output), sub(allGatherBlock(step), index, perChunk), size)) }
        }
        guard let stream = openStream(sending: frames, to: mod(r + 1), released: rounds, receivingFrom: mod(r - 1)) else { return false }
        let incoming = scratch(perChunk * size)
        var received = 0
        // Reduce-scatter: what arrives is the left neighbour's partial of the block this rank
        // sends next; it is reduced with this rank's input straight into the output.
        for step in 0..<(n - 1) {
            for index in 0..<rounds {
                let into = sub(reduceScatterBlock(step + 1), index, perChunk)
                try stream.receive(UnsafeMutableRawBufferPointer(start: incoming, count: into.count * size))
                [input + into.lowerBound * size, UnsafeRawPointer(incoming)].withUnsafeBufferPointer {
                    Reduction.reduce(
                        $0, into: output + into.lowerBound * size, count: into.count, dtype: dtype, op: op, divisor: step == n - 2 ? n : 1)
                }
                received += 1
                stream.release(upTo: received + rounds)
            }
        }
        // All-gather: the reduced blocks arrive straight into place, and go on from there.
        for step in 0..<(n - 1) {
            for index in 0..<rounds {
                let into = sub(allGatherBlock(step + 1), index, perChunk)
                try stream.receive(UnsafeMutableRawBufferPointer(start: output + into.lowerBound * size, count: into.count * size))
                received += 1
                stream.release(upTo: received + rounds)
            }
        }
        try stream.finish()
        return true
    }

    /// The ring all-gather, streamed, once this rank's block is in place in `output`; false
    /// (nothing done) when the transport cannot stream it.
    func streamedRingAllGather(_ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws(CCLError) -> Bool {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        guard n > 1 else { return false }
        let (rounds, perChunk) = rounds(blockElements: count, size: size)
        let block = { (step: Int) in (self.mod(r - step) * count)..<(self.mod(r - step) * count + count) }
        var frames: [UnsafeRawBufferPointer] = []
        frames.reserveCapacity((n - 1) * rounds)
        for step in 0..<(n - 1) {
            for index in 0..<rounds { frames.append(bytes(UnsafeRawPointer(output), sub(block(step), index, perChunk), size)) }
        }
        guard let stream = openStream(sending: frames, to: mod(r + 1), released: rounds, receivingFrom: mod(r - 1)) else { return false }
        var received = 0
        for step in 0..<(n - 1) {
            for index in 0..<rounds {
                let into = sub(block(step + 1), index, perChunk)
                try stream.receive(UnsafeMutableRawBufferPointer(start: output + into.lowerBound * size, count: into.count * size))
                received += 1
                stream.release(upTo: received + rounds)
            }
        }
        try stream.finish()
        return true
    }

    /// Elements `range` of `base` as bytes.
    private func bytes(_ base: UnsafeRawPointer, _ range: Range<Int>, _ size: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + range.lowerBound * size, count: range.count * size)
    }
}
