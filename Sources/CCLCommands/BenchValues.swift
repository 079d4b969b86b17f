import CCL

/// The benchmark's input pattern and its exact expected results: small integers (1...13), exact
/// in every dtype, so sums over up to 9 ranks compare bit for bit.
protocol BenchValue: CollectiveScalar {
    init(benchInteger: Int)
    var benchInteger: Int { get }
}

extension Float: BenchValue {
    init(benchInteger: Int) { self.init(benchInteger) }
    var benchInteger: Int { Int(exactly: self) ?? Int.min }
}
extension Double: BenchValue {
    init(benchInteger: Int) { self.init(benchInteger) }
    var benchInteger: Int { Int(exactly: self) ?? Int.min }
}
extension Float16: BenchValue {
    init(benchInteger: Int) { self.init(Float(benchInteger)) }
    var benchInteger: Int { Int(exactly: Float(self)) ?? Int.min }
}
extension BFloat16: BenchValue {
    init(benchInteger: Int) { self.init(Float(benchInteger)) }
    var benchInteger: Int { Int(exactly: floatValue) ?? Int.min }
}
extension Int8: BenchValue {
    init(benchInteger: Int) { self.init(truncatingIfNeeded: benchInteger) }
    var benchInteger: Int { Int(self) }
}
extension UInt8: BenchValue {
    init(benchInteger: Int) { self.init(truncatingIfNeeded: benchInteger) }
    var benchInteger: Int { Int(self) }
}
extension Int32: BenchValue {
    init(benchInteger: Int) { self.init(truncatingIfNeeded: benchInteger) }
    var benchInteger: Int { Int(self) }
}
extension Int64: BenchValue {
    init(benchInteger: Int) { self.init(benchInteger) }
    var benchInteger: Int { Int(self) }
}

enum BenchPattern {
    /// Rank `rank`'s element `index` in iteration `iteration`.
    @inline(__always)
    static func value(rank: Int, index: Int, iteration: Int) -> Int { (rank &* 5 &+ index &+ iteration * 3) % 13 + 1 }

    /// The reduction over `ranks` ranks of element `index`.
    @inline(__always)
    static func reduced(_ op: ReduceOp, ranks: Int, index: Int, iteration: Int) -> Int {
        var result = value(rank: 0, index: index, iteration: iteration)
        for rank in 1..<max(1, ranks) {
            let next = value(rank: rank, index: index, iteration: iteration)
            switch op {
            case .min: result = min(result, next)
            case .max: result = max(result, next)
            default: result += next
            }
        }
        return result
    }

    static func fill<T: BenchValue>(
        _ buffer: UnsafeMutableRawBufferPointer, as _: T.Type, count: Int, rank: Int, first: Int, iteration: Int
    ) {
        let typed = buffer.bindMemory(to: T.self)
        for index in 0..<count { typed[index] = T(benchInteger: value(rank: rank, index: first + index, iteration: iteration)) }
    }

    /// Elements of `buffer` (count from `first`) that differ from `expected(index)`.
    static func wrong<T: BenchValue>(_ buffer: UnsafeRawBufferPointer, as _: T.Type, count: Int, first: Int, expected: (Int) -> Int) -> Int
    {
        let typed = buffer.bindMemory(to: T.self)
        var wrong = 0
        for index in 0..<count where typed[index].benchInteger != expected(first + index) { wrong += 1 }
        return wrong
    }
}
