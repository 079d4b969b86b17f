import CCLCore

/// The ring all-reduce and all-gather with their frames streamed (`FrameStream`): the
/// transport's thread sends each frame as soon as its data is final while the caller receives
/// and reduces the frames coming in, so sending, receiving and reducing overlap and no rank
/// waits for its neighbours step by step (Gloo's pipelining).
///
/// Frames are numbered in sending order (and, on the neighbour, in receiving order): each ring
/// step has `rounds` frames. Incoming reduce-scatter frames land in `incomingSlots` rotating
/// slots, all-gather frames in place; a transport with a receive thread fills them ahead while
/// the caller reduces. What frame k + rounds sends is exactly what receiving frame k made
/// final (the reduce-scatter's partial, then the all-gather's block), so after frame k the caller
/// releases every frame below k + 1 + rounds; the first step's frames send the input as it is.
///
/// No frame's memory changes while it may be in flight: a block this rank sends in the
/// reduce-scatter is overwritten only by the all-gather's final value of that block, which
/// cannot arrive before the neighbour received (so this rank finished sending) the partial; a
/// block received in the all-gather is only read afterwards.
extension PeerTransport {
    /// Frames the reduce-scatter may have in hand before the caller reduced them (a receive
    /// thread fills these while the caller reduces an earlier one).
    static var incomingSlots: Int { 4 }

    /// The ring all-reduce, streamed; false (nothing done) when the transport cannot stream it.
    func streamedRingAllReduce(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) -> Bool {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        guard n > 1 else { return false }
        let (rounds, perChunk) = rounds(blockElements: (count + n - 1) / n, size: size)
        let reduceScatterBlock = { (step: Int) in partRange(self.mod(r - step), of: count, parts: n) }
        let allGatherBlock = { (step: Int) in partRange(self.mod(r + 1 - step), of: count, parts: n) }
        let slots = scratch(Self.incomingSlots * perChunk * size)
        var frames: [UnsafeRawBufferPointer] = [], targets: [UnsafeMutableRawBufferPointer] = []
        frames.reserveCapacity(2 * (n - 1) * rounds)
        targets.reserveCapacity(2 * (n - 1) * rounds)
        // Reduce-scatter: what arrives (into a slot) is the left neighbour's partial of the block
        // this rank sends next; it is reduced with this rank's input straight into the output.
        for step in 0..<(n - 1) {
            let base = step == 0 ? input : UnsafeRawPointer(output)
            for index in 0..<rounds {
                frames.append(bytes(base, sub(reduceScatterBlock(step), index, perChunk), size))
                let slot = slots + (targets.count % Self.incomingSlots) * perChunk * size
                targets.append(
                    UnsafeMutableRawBufferPointer(start: slot, count: sub(reduceScatterBlock(step + 1), index, perChunk).count * size))
            }
        }
        // All-gather: the reduced blocks arrive straight into place, and go on from there.
        for step in 0..<(n - 1) {
            for index in 0..<rounds {
                frames.append(bytes(UnsafeRawPointer(output), sub(allGatherBlock(step), index, perChunk), size))
                targets.append(place(output, sub(allGatherBlock(step + 1), index, perChunk), size))
            }
        }
        let reduceScatterFrames = (n - 1) * rounds
        guard
            let stream = openStream(
                sending: frames, to: mod(r + 1), released: rounds, receiving: targets, from: mod(r - 1),
                allowed: min(Self.incomingSlots, reduceScatterFrames))
        else { return false }
        var received = 0
        for step in 0..<(n - 1) {
            for index in 0..<rounds {
                let into = sub(reduceScatterBlock(step + 1), index, perChunk)
                try stream.receive(received)
                let slot = UnsafeRawPointer(targets[received].baseAddress ?? slots)
                [input + into.lowerBound * size, slot].withUnsafeBufferPointer {
                    Reduction.reduce(
                        $0, into: output + into.lowerBound * size, count: into.count, dtype: dtype, op: op, divisor: step == n - 2 ? n : 1)
                }
                received += 1
                stream.release(upTo: received + rounds)
                stream.allow(upTo: min(received + Self.incomingSlots, reduceScatterFrames))
            }
        }
        stream.allow(upTo: targets.count)
        while received < targets.count {
            try stream.receive(received)
            received += 1
            stream.release(upTo: received + rounds)
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
        var frames: [UnsafeRawBufferPointer] = [], targets: [UnsafeMutableRawBufferPointer] = []
        frames.reserveCapacity((n - 1) * rounds)
        targets.reserveCapacity((n - 1) * rounds)
        for step in 0..<(n - 1) {
            for index in 0..<rounds {
                frames.append(bytes(UnsafeRawPointer(output), sub(block(step), index, perChunk), size))
                targets.append(place(output, sub(block(step + 1), index, perChunk), size))
            }
        }
        guard
            let stream = openStream(
                sending: frames, to: mod(r + 1), released: rounds, receiving: targets, from: mod(r - 1), allowed: targets.count)
        else { return false }
        for received in targets.indices {
            try stream.receive(received)
            stream.release(upTo: received + 1 + rounds)
        }
        try stream.finish()
        return true
    }

    /// Elements `range` of `base` as a target.
    private func place(_ base: UnsafeMutableRawPointer, _ range: Range<Int>, _ size: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + range.lowerBound * size, count: range.count * size)
    }

    /// Elements `range` of `base` as bytes.
    private func bytes(_ base: UnsafeRawPointer, _ range: Range<Int>, _ size: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + range.lowerBound * size, count: range.count * size)
    }
}
