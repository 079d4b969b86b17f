import CCLCore

/// What the shared-slot algorithms need from a transport: one slot per rank that every rank can
/// read, a round counter that flips between two sets of slots, and sync points. The shared-memory
/// arena provides it; the algorithms never see the segment.
///
/// Per round: each rank writes only its own slot, then `sync`; then any rank reads any slot.
/// A rank may write its slot of round k + 1 while others still read round k (two sets).
protocol SlotTransport: AnyObject {
    var slotRank: Int { get }
    var slotWorldSize: Int { get }
    var slotBytes: Int { get }
    /// Starts the next round: `slot(of:)` now gives that round's slots.
    /// Scratch for one source pointer per rank (owned by the transport).
    var sources: UnsafeMutableBufferPointer<UnsafeRawPointer> { get }
    func nextRound()
    func slot(of rank: Int) -> UnsafeMutableRawPointer
    /// Every rank reached this point (the first sync of a call also compares the calls).
    func sync() throws(CCLError)
}

/// Element ranges of a piece: [start, end) of part `index` of `count` elements in `parts`.
@inline(__always)
func partRange(_ index: Int, of count: Int, parts: Int) -> Range<Int> {
    (count * index / parts)..<(count * (index + 1) / parts)
}

extension SlotTransport {
    /// Runs `body(offset, count)` over pieces of at most `capacity` elements; at least one piece,
    /// so a zero-count call still meets the others (and compares calls).
    @inline(__always)
    private func forEachPiece(count: Int, capacity: Int, _ body: (Int, Int) throws(CCLError) -> Void) throws(CCLError) {
        var offset = 0
        repeat {
            let length = min(capacity, count - offset)
            try body(offset, length)
            offset += length
        } while offset < count
    }

    func slotAllReduce(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp, algorithm: SlotAllReduce
    ) throws(CCLError) {
        let size = dtype.size
        let n = slotWorldSize
        do {
            try forEachPiece(count: count, capacity: slotBytes / size) { (offset, length) throws(CCLError) in
                nextRound()
                slot(of: slotRank).copyMemory(from: input + offset * size, byteCount: length * size)
                try sync()
                switch algorithm {
                case .oneShot:
                    for r in 0..<n { sources[r] = UnsafeRawPointer(slot(of: r)) }
                    Reduction.reduce(
                        UnsafeBufferPointer(sources), into: output + offset * size, count: length, dtype: dtype, op: op, divisor: n)
                case .twoShot:
                    let mine = partRange(slotRank, of: length, parts: n)
                    for r in 0..<n { sources[r] = UnsafeRawPointer(slot(of: r) + mine.lowerBound * size) }
                    Reduction.reduce(
                        UnsafeBufferPointer(sources), into: slot(of: slotRank) + mine.lowerBound * size, count: mine.count,
                        dtype: dtype, op: op, divisor: n)
                    try sync()
                    for r in 0..<n {
                        let part = partRange(r, of: length, parts: n)
                        (output + (offset + part.lowerBound) * size).copyMemory(
                            from: slot(of: r) + part.lowerBound * size, byteCount: part.count * size)
                    }
                }
            }
        }
    }

    func slotAllGather(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws(CCLError) {
        let size = dtype.size
        try forEachPiece(count: count, capacity: slotBytes / size) { (offset, length) throws(CCLError) in
            nextRound()
            slot(of: slotRank).copyMemory(from: input + offset * size, byteCount: length * size)
            try sync()
            for r in 0..<slotWorldSize {
                let target = output + (r * count + offset) * size
                let source = r == slotRank ? input + offset * size : UnsafeRawPointer(slot(of: r))
                if UnsafeRawPointer(target) != source { target.copyMemory(from: source, byteCount: length * size) }
            }
        }
    }

    func slotReduceScatter(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        let size = dtype.size
        let n = slotWorldSize
        do {
            try forEachPiece(count: count, capacity: slotBytes / size / n) { (offset, length) throws(CCLError) in
                nextRound()
                let mine = slot(of: slotRank)
                for block in 0..<n {
                    (mine + block * length * size).copyMemory(from: input + (block * count + offset) * size, byteCount: length * size)
                }
                try sync()
                for r in 0..<n { sources[r] = UnsafeRawPointer(slot(of: r) + slotRank * length * size) }
                Reduction.reduce(
                    UnsafeBufferPointer(sources), into: output + offset * size, count: length, dtype: dtype, op: op, divisor: n)
            }
        }
    }

    func slotBroadcast(_ buffer: UnsafeMutableRawPointer, count: Int, dtype: DType, root: Int) throws(CCLError) {
        let size = dtype.size
        try forEachPiece(count: count, capacity: slotBytes / size) { (offset, length) throws(CCLError) in
            nextRound()
            if slotRank == root { slot(of: root).copyMemory(from: buffer + offset * size, byteCount: length * size) }
            try sync()
            if slotRank != root { (buffer + offset * size).copyMemory(from: slot(of: root), byteCount: length * size) }
        }
    }

    func slotGather(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer?, count: Int, dtype: DType, root: Int) throws(CCLError) {
        let size = dtype.size
        try forEachPiece(count: count, capacity: slotBytes / size) { (offset, length) throws(CCLError) in
            nextRound()
            slot(of: slotRank).copyMemory(from: input + offset * size, byteCount: length * size)
            try sync()
            guard slotRank == root, let output else { return }
            for r in 0..<slotWorldSize {
                (output + (r * count + offset) * size).copyMemory(from: slot(of: r), byteCount: length * size)
            }
        }
    }
}
