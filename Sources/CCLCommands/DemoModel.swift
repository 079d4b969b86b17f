/// The demo's model: `stages` blocks, each `y = requantize(relu(x · W1) · W2 + x)`, on a batch of
/// `tokens` rows of `hidden` values, with W1 `hidden × ffn` and W2 `ffn × hidden`.
///
/// Everything is a small integer held in Float32 (weights −2…2, activations −2…2, requantized to
/// that range after every block), so every sum is exact and a sharded run must match the
/// single-process computation bit for bit: any wrong, lost or reordered byte shows.
///
/// Megatron sharding over `tp` ranks: rank t holds columns [t·ffn/tp, (t+1)·ffn/tp) of W1
/// (column-parallel) and the same rows of W2 (row-parallel); its partial `relu(x · W1_t) · W2_t`
/// summed over the tp ranks (all-reduce) is the block's output before the residual.
struct DemoModel: Sendable {
    let hidden: Int
    let ffn: Int
    let tokens: Int
    let stages: Int

    static func weight(stage: Int, matrix: Int, row: Int, column: Int) -> Float {
        Float((stage &* 31 &+ matrix &* 17 &+ row &* 7 &+ column &* 3 &+ row &* column) % 5 - 2)
    }

    /// Step `step`'s input batch (what rank 0 broadcasts).
    func input(step: Int) -> [Float] {
        (0..<(tokens * hidden)).map { Float(($0 &* 13 &+ step &* 7) % 5 - 2) }
    }

    /// The shard of one block's weights that tp rank `shard` of `tp` holds.
    struct Shard {
        let columns: Range<Int>
        /// hidden × columns.count, row-major.
        let w1: [Float]
        /// columns.count × hidden, row-major.
        let w2: [Float]
    }

    func shard(stage: Int, index: Int, of tp: Int) -> Shard {
        let width = ffn / tp
        let columns = (index * width)..<((index + 1) * width)
        var w1 = [Float](repeating: 0, count: hidden * width)
        var w2 = [Float](repeating: 0, count: width * hidden)
        for row in 0..<hidden {
            for (j, column) in columns.enumerated() { w1[row * width + j] = Self.weight(stage: stage, matrix: 1, row: row, column: column) }
        }
        for (j, column) in columns.enumerated() {
            for out in 0..<hidden { w2[j * hidden + out] = Self.weight(stage: stage, matrix: 2, row: column, column: out) }
        }
        return Shard(columns: columns, w1: w1, w2: w2)
    }

    /// `relu(x · W1_shard) · W2_shard`: this shard's part of the block output (tokens × hidden).
    func partial(_ x: [Float], _ shard: Shard) -> [Float] {
        let width = shard.columns.count
        var h = [Float](repeating: 0, count: tokens * width)
        var out = [Float](repeating: 0, count: tokens * hidden)
        x.withUnsafeBufferPointer { x in
            shard.w1.withUnsafeBufferPointer { w1 in
                h.withUnsafeMutableBufferPointer { h in
                    for t in 0..<tokens {
                        for k in 0..<hidden {
                            let value = x[t * hidden + k]
                            if value == 0 { continue }
                            for j in 0..<width { h[t * width + j] += value * w1[k * width + j] }
                        }
                        for j in 0..<width where h[t * width + j] < 0 { h[t * width + j] = 0 }
                    }
                }
            }
            h.withUnsafeBufferPointer { h in
                shard.w2.withUnsafeBufferPointer { w2 in
                    out.withUnsafeMutableBufferPointer { out in
                        for t in 0..<tokens {
                            for j in 0..<width {
                                let value = h[t * width + j]
                                if value == 0 { continue }
                                for o in 0..<hidden { out[t * hidden + o] += value * w2[j * hidden + o] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The block's output from the reduced partials and its input.
    func finish(_ reduced: [Float], input x: [Float]) -> [Float] {
        zip(reduced, x).map { sum, residual in
            let value = Int(sum + residual)
            return Float(((value % 5) + 5) % 5 - 2)
        }
    }

    /// The whole model in one process, unsharded.
    func reference(step: Int) -> [Float] {
        var x = input(step: step)
        for stage in 0..<stages { x = finish(partial(x, shard(stage: stage, index: 0, of: 1)), input: x) }
        return x
    }
}
