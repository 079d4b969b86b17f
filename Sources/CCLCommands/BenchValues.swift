import CCL

/// The benchmark's input pattern and its exact expected results: small integers (1...13), exact
/// in every dtype of 16 bits or more, so sums over up to 9 ranks compare bit for bit; the float8
/// types take a sparse pattern (`sparse`).
protocol BenchValue: CollectiveScalar {
    init(benchInteger: Int)
    var benchInteger: Int { get }
    /// Inputs of 0 and 1, with at most 8 ranks giving 1 to any element: every partial sum, in any
    /// order of reduction, is then exact in float8 (e5m2 holds the integers up to 8).
    static var sparse: Bool { get }
}

extension BenchValue {
    static var sparse: Bool { false }
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
extension Float8E4M3: BenchValue {
    init(benchInteger: Int) { self.init(Float(benchInteger)) }
    var benchInteger: Int { Int(exactly: floatValue) ?? Int.min }
    static var sparse: Bool { true }
}
extension Float8E5M2: BenchValue {
    init(benchInteger: Int) { self.init(Float(benchInteger)) }
    var benchInteger: Int { Int(exactly: floatValue) ?? Int.min }
    static var sparse: Bool { true }
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
    /// Rank `rank`'s element `index` in iteration `iteration`, for elements of `T`.
    @inline(__always)
    static func value<T: BenchValue>(_: T.Type, rank: Int, index: Int, iteration: Int) -> Int {
        T.sparse ? ((rank &+ index &+ iteration) % 8 == 0 ? 1 : 0) : (rank &* 5 &+ index &+ iteration * 3) % 13 + 1
    }

    /// The reduction over `ranks` ranks of element `index`.
    @inline(__always)
    static func reduced<T: BenchValue>(_: T.Type, _ op: ReduceOp, ranks: Int, index: Int, iteration: Int) -> Int {
        var result = value(T.self, rank: 0, index: index, iteration: iteration)
        for rank in 1..<max(1, ranks) {
            let next = value(T.self, rank: rank, index: index, iteration: iteration)
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
        for index in 0..<count { typed[index] = T(benchInteger: value(T.self, rank: rank, index: first + index, iteration: iteration)) }
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
