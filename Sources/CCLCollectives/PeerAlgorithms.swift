import CCLCore

/// What point-to-point algorithms need from a transport: exchange one frame of the current call
/// with two peers at once (send to one, receive from another, possibly the same). The TCP mesh
/// provides it; the algorithms never see a socket.
///
/// A received frame must belong to the same call (its fingerprint) and carry exactly
/// `receive.count` bytes; anything else fails the call on every rank.
protocol PeerTransport: AnyObject {
    var peerRank: Int { get }
    var peerWorldSize: Int { get }
    /// Bytes per frame when a block is pipelined.
    var chunkBytes: Int { get }
    func exchange(send: UnsafeRawBufferPointer, to: Int?, receive: UnsafeMutableRawBufferPointer, from: Int?) throws(CCLError)
    /// Scratch memory of at least `bytes`, owned by the transport, valid until the next call.
    func scratch(_ bytes: Int) -> UnsafeMutableRawPointer
    /// Whether the current call's frames can stream (`openStream` will not return nil).
    var streamsCurrentCall: Bool { get }
    /// Starts sending `frames` to peer `to` on a thread of the transport's own (frames below
    /// `released` at once) and receiving the frames coming from `from` into `targets`, in order
    /// (on another thread, or in `FrameStream.receive`; those below `allowed` at once); nil when
    /// the transport does not stream this call.
    func openStream(
        sending frames: [UnsafeRawBufferPointer], to: Int, released: Int, receiving targets: [UnsafeMutableRawBufferPointer], from: Int,
        allowed: Int
    ) -> FrameStream?
}

/// A call's frames in flight to one peer while those of another come in (`StreamedRing`).
///
/// Threading: the caller's thread only. An outgoing frame's memory must stay as it is from its
/// release until `finish` returned (or a receive failed); an incoming frame's target must not be
/// touched from its allowance until `receive` of it returned.
protocol FrameStream: AnyObject {
    /// Lets the outgoing frames below `count` go.
    func release(upTo count: Int)
    /// Lets the incoming frames below `count` be received (their targets are free).
    func allow(upTo count: Int)
    /// Returns once incoming frame `index` (the next one not yet waited for) is in its target.
    /// On an error the stream is over: both sides stopped, and the call failed on every rank.
    func receive(_ index: Int) throws(CCLError)
    /// Waits until every frame is sent; the sending side's error, if it had one.
    func finish() throws(CCLError)
}

extension PeerTransport {
    private func send(_ base: UnsafeRawPointer, _ bytes: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: bytes)
    }
    private func receive(_ base: UnsafeMutableRawPointer, _ bytes: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: bytes)
    }
    private static var none: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: nil, count: 0) }
    func mod(_ value: Int) -> Int { ((value % peerWorldSize) + peerWorldSize) % peerWorldSize }

    /// Sub-chunks per block: the same on every rank, so neighbours exchange the same number of
    /// frames even when their blocks differ in length by one element.
    func rounds(blockElements: Int, size: Int) -> (rounds: Int, elements: Int) {
        let perChunk = max(1, chunkBytes / size)
        return (max(1, (blockElements + perChunk - 1) / perChunk), perChunk)
    }

    /// Elements [start, end) of sub-chunk `index` of a block.
    func sub(_ block: Range<Int>, _ index: Int, _ perChunk: Int) -> Range<Int> {
        let start = min(block.upperBound, block.lowerBound + index * perChunk)
        return start..<min(block.upperBound, start + perChunk)
    }

    func peerAllReduce(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp, algorithm: PeerAllReduce
    ) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        let copyFirst = n == 1 || (algorithm == .recursiveDoubling && n & (n - 1) == 0)
        if copyFirst, UnsafeRawPointer(output) != input { output.copyMemory(from: input, byteCount: count * size) }
        switch algorithm {
        case .recursiveDoubling where n & (n - 1) == 0:
            let incoming = scratch(count * size)
            var distance = 1
            while distance < n {
                let partner = r ^ distance
                try exchange(send: send(output, count * size), to: partner, receive: receive(incoming, count * size), from: partner)
                // The lower rank's data first, so both partners reduce in the same order. (An array
                // literal chosen by a ternary was a heap allocation per step.)
                withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 2) { pair in
                    pair[0] = r < partner ? UnsafeRawPointer(output) : UnsafeRawPointer(incoming)
                    pair[1] = r < partner ? UnsafeRawPointer(incoming) : UnsafeRawPointer(output)
                    Reduction.reduce(UnsafeBufferPointer(pair), into: output, count: count, dtype: dtype, op: op, divisor: 1)
                }
                distance <<= 1
            }
            if op == .avg {
                [UnsafeRawPointer(output)].withUnsafeBufferPointer {
                    Reduction.reduce($0, into: output, count: count, dtype: dtype, op: .avg, divisor: n)
                }
            }
        case .halvingDoubling where n & (n - 1) == 0 && n > 1:
            try halvingDoublingAllReduce(input, output, count: count, dtype: dtype, op: op)
        default:
            if streamsCurrentCall, try streamedRingAllReduce(input, output, count: count, dtype: dtype, op: op) { return }
            let maxBlock = (count + n - 1) / n
            let (rounds, perChunk) = rounds(blockElements: maxBlock, size: size)
            let incoming = scratch(perChunk * size)
            let left = mod(r - 1), right = mod(r + 1)
            // Reduce-scatter: after n-1 steps this rank holds block r+1 fully reduced. The input is
            // never copied: step 0 sends it as it is, and each received partial is reduced with
            // this rank's input straight into the output (every output block is written exactly
            // once here or in the all-gather, which fills block r).
            for step in 0..<(n - 1) {
                let sendBlock = partRange(mod(r - step), of: count, parts: n)
                let receiveBlock = partRange(mod(r - step - 1), of: count, parts: n)
                let sendFrom = step == 0 ? input : UnsafeRawPointer(output)
                for index in 0..<rounds {
                    let out = sub(sendBlock, index, perChunk), into = sub(receiveBlock, index, perChunk)
                    try exchange(
                        send: send(sendFrom + out.lowerBound * size, out.count * size), to: right,
                        receive: receive(incoming, into.count * size), from: left)
                    let target = output + into.lowerBound * size
                    [input + into.lowerBound * size, UnsafeRawPointer(incoming)].withUnsafeBufferPointer {
                        Reduction.reduce($0, into: target, count: into.count, dtype: dtype, op: op, divisor: step == n - 2 ? n : 1)
                    }
                }
            }
            // All-gather: pass the reduced blocks around.
            for step in 0..<(n - 1) {
                let sendBlock = partRange(mod(r + 1 - step), of: count, parts: n)
                let receiveBlock = partRange(mod(r - step), of: count, parts: n)
                for index in 0..<rounds {
                    let out = sub(sendBlock, index, perChunk), into = sub(receiveBlock, index, perChunk)
                    try exchange(
                        send: send(output + out.lowerBound * size, out.count * size), to: right,
                        receive: receive(output + into.lowerBound * size, into.count * size), from: left)
                }
            }
        }
    }

    func peerAllGather(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        let mine = output + r * count * size
        if UnsafeRawPointer(mine) != input { mine.copyMemory(from: input, byteCount: count * size) }
        if PeerAllReduce.halvesAndDoubles(worldSize: n) { return try doublingAllGather(output, count: count, dtype: dtype) }
        if streamsCurrentCall, try streamedRingAllGather(output, count: count, dtype: dtype) { return }
        let (rounds, perChunk) = rounds(blockElements: count, size: size)
        for step in 0..<(n - 1) {
            let sendBlock = mod(r - step) * count, receiveBlock = mod(r - step - 1) * count
            for index in 0..<rounds {
                let part = sub(0..<count, index, perChunk)
                try exchange(
                    send: send(output + (sendBlock + part.lowerBound) * size, part.count * size), to: mod(r + 1),
                    receive: receive(output + (receiveBlock + part.lowerBound) * size, part.count * size), from: mod(r - 1))
            }
        }
    }

    func peerReduceScatter(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize, r = peerRank
        if PeerAllReduce.halvesAndDoubles(worldSize: n) {
            return try halvingReduceScatter(input, output, count: count, dtype: dtype, op: op)
        }
        let (rounds, perChunk) = rounds(blockElements: count, size: size)
        // accumulated partial of the block being passed on, then the frame coming in.
        let partial = scratch(count * size + perChunk * size)
        let incoming = partial + count * size
        for step in 0..<(n - 1) {
            let sendBlock = mod(r - step - 1), receiveBlock = mod(r - step - 2)
            let last = step == n - 2
            for index in 0..<rounds {
                let part = sub(0..<count, index, perChunk)
                let outgoing =
                    step == 0 ? input + (sendBlock * count + part.lowerBound) * size : UnsafeRawPointer(partial + part.lowerBound * size)
                try exchange(
                    send: send(outgoing, part.count * size), to: mod(r + 1), receive: receive(incoming, part.count * size), from: mod(r - 1)
                )
                let target = last ? output + part.lowerBound * size : partial + part.lowerBound * size
                [UnsafeRawPointer(incoming), input + (receiveBlock * count + part.lowerBound) * size].withUnsafeBufferPointer {
                    Reduction.reduce($0, into: target, count: part.count, dtype: dtype, op: op, divisor: last ? n : 1)
                }
            }
        }
        if n == 1, UnsafeRawPointer(output) != input { output.copyMemory(from: input, byteCount: count * size) }
    }

    /// Binomial tree from `root`, piece by piece.
    func peerBroadcast(_ buffer: UnsafeMutableRawPointer, count: Int, dtype: DType, root: Int) throws(CCLError) {
        let size = dtype.size, n = peerWorldSize
        let relative = mod(peerRank - root)
        let (rounds, perChunk) = rounds(blockElements: count, size: size)
        for index in 0..<rounds {
            let part = sub(0..<count, index, perChunk)
            let piece = buffer + part.lowerBound * size, bytes = part.count * size
            var distance = 1
            while distance < n {
                if relative < distance, relative + distance < n {
                    try exchange(send: send(piece, bytes), to: mod(peerRank + distance), receive: Self.none, from: nil)
                } else if relative >= distance, relative < 2 * distance {
                    try exchange(send: send(piece, 0), to: nil, receive: receive(piece, bytes), from: mod(peerRank - distance))
                }
                distance <<= 1
            }
        }
    }

    /// Every rank sends straight to `root`.
    func peerGather(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer?, count: Int, dtype: DType, root: Int) throws(CCLError) {
        let size = dtype.size
        let (rounds, perChunk) = rounds(blockElements: count, size: size)
        guard peerRank == root, let output else {
            for index in 0..<rounds {
                let part = sub(0..<count, index, perChunk)
                try exchange(send: send(input + part.lowerBound * size, part.count * size), to: root, receive: Self.none, from: nil)
            }
            return
        }
        let mine = output + root * count * size
        if UnsafeRawPointer(mine) != input { mine.copyMemory(from: input, byteCount: count * size) }
        for peer in 0..<peerWorldSize where peer != root {
            for index in 0..<rounds {
                let part = sub(0..<count, index, perChunk)
                try exchange(
                    send: send(input, 0), to: nil, receive: receive(output + (peer * count + part.lowerBound) * size, part.count * size),
                    from: peer)
            }
        }
    }

    /// Dissemination barrier: ⌈log2 n⌉ empty exchanges.
    func peerBarrier() throws(CCLError) {
        var distance = 1
        while distance < peerWorldSize {
            try exchange(
                send: UnsafeRawBufferPointer(start: nil, count: 0), to: mod(peerRank + distance), receive: Self.none,
                from: mod(peerRank - distance))
            distance <<= 1
        }
    }
}
