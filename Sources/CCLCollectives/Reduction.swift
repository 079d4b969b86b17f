/// Element-wise reduction of equally sized buffers: the arithmetic under all-reduce and reduce-scatter.
///
/// The contract, the same for every dtype:
/// - Sources combine strictly left to right, `((s0 ∘ s1) ∘ s2) ∘ …`, per element, so ranks that reduce the same
///   sources in the same order get bit-identical results (except which NaN payload survives; see below).
/// - `.avg` sums, then divides by `divisor`; a divisor of 1 skips the division (intermediate ring steps). Other
///   ops ignore `divisor`.
/// - Integers wrap on overflow (`&+`, `&*`); `.avg` divides the wrapped sum, truncating toward zero.
/// - float32 and float64 compute in their own type, IEEE round-to-nearest-even; `.avg` divides by the divisor
///   converted to that type (a true division, not a multiplication by the reciprocal).
/// - float16, bfloat16 and the float8 types widen to Float32, combine all sources (and divide) there, and round
///   once to the storage type, to nearest, ties to even (float8 e4m3fn: what rounds above 448 is NaN, as in torch).
/// - Floating-point `.min` and `.max` propagate NaN: any NaN operand makes the result NaN (like
///   `torch.minimum`, unlike `Float.minimum`, which ignores a quiet NaN). When several NaN meet, or NaN meets a
///   sum or product, which payload survives is unspecified. Of two equal operands the later source's value is
///   kept, which only matters for zeros: `min(-0, +0)` is `+0`, `min(+0, -0)` is `-0`.
/// - One source without a division is a byte copy (signaling NaN, payloads and `-0` preserved).
/// - Aliasing: `dst` may be exactly any source pointer (in place); otherwise it must not overlap any source.
///   Sources may overlap each other.
/// - Alignment: none is required. Elements are read with `loadUnaligned` and written with `storeBytes`, which
///   on x86-64 and arm64 compile to the same vector loads and stores as aligned access, so aligned buffers pay
///   nothing for this and there is no separate slow path.
package enum Reduction {
    /// The size of the scratch accumulator. More than four sources (or more than two when `dst` is one of
    /// them) are reduced block by block, so that the accumulator stays in L1 while each source streams through
    /// once.
    static let blockBytes = 8192

    /// `dst[i] = sources[0][i] ∘ sources[1][i] ∘ … ∘ sources[k-1][i]` for `i` in `0..<count`, elements of
    /// `dtype`, under the contract above.
    ///
    /// - Precondition: `sources` is not empty, `count >= 0`, `divisor >= 1`, and every buffer holds `count`
    ///   elements.
    package static func reduce(
        _ sources: UnsafeBufferPointer<UnsafeRawPointer>, into dst: UnsafeMutableRawPointer, count: Int,
        dtype: DType, op: ReduceOp, divisor: Int
    ) {
        precondition(!sources.isEmpty, "Reduction.reduce needs at least one source")
        precondition(count >= 0, "Reduction.reduce: negative count \(count)")
        precondition(divisor >= 1, "Reduction.reduce: divisor \(divisor) is less than 1")
        guard count > 0 else { return }
        let divisor = op == .avg && divisor != 1 ? divisor : nil
        if sources.count == 1 && divisor == nil {
            if UnsafeRawPointer(dst) != sources[0] {
                dst.copyMemory(from: sources[0], byteCount: count * dtype.size)
            }
            return
        }
        switch dtype {
        case .float32: reduce(NativeLane<Float>.self, sources, dst, count, op, divisor)
        case .float64: reduce(NativeLane<Double>.self, sources, dst, count, op, divisor)
        case .int8: reduce(NativeLane<Int8>.self, sources, dst, count, op, divisor)
        case .uint8: reduce(NativeLane<UInt8>.self, sources, dst, count, op, divisor)
        case .int32: reduce(NativeLane<Int32>.self, sources, dst, count, op, divisor)
        case .int64: reduce(NativeLane<Int64>.self, sources, dst, count, op, divisor)
        case .float16: reduce(HalfLane<IEEEHalfFormat>.self, sources, dst, count, op, divisor)
        case .bfloat16: reduce(HalfLane<BFloat16Format>.self, sources, dst, count, op, divisor)
        case .float8e4m3: reduce(Float8Lane<E4M3Format>.self, sources, dst, count, op, divisor)
        case .float8e5m2: reduce(Float8Lane<E5M2Format>.self, sources, dst, count, op, divisor)
        }
    }

    private static func reduce<L: Lane>(
        _: L.Type, _ sources: UnsafeBufferPointer<UnsafeRawPointer>, _ dst: UnsafeMutableRawPointer, _ count: Int,
        _ op: ReduceOp, _ divisor: Int?
    ) {
        let keep = Keep<L.Value>()
        switch op {
        case .sum: reduce(L.self, Sum<L.Value>.self, sources, dst, count, keep)
        case .avg:
            if let divisor {
                let finish = Divide<L.Value>(divisor: L.Value.reductionDivisor(divisor))
                reduce(L.self, Sum<L.Value>.self, sources, dst, count, finish)
            } else {
                reduce(L.self, Sum<L.Value>.self, sources, dst, count, keep)
            }
        case .prod: reduce(L.self, Product<L.Value>.self, sources, dst, count, keep)
        case .min: reduce(L.self, Minimum<L.Value>.self, sources, dst, count, keep)
        case .max: reduce(L.self, Maximum<L.Value>.self, sources, dst, count, keep)
        }
    }

    /// Two sources, or up to four when `dst` is none of them: one fused pass into `dst`. Otherwise block by
    /// block: the first four sources fold into a scratch block of `L.Value`, then up to three more per pass,
    /// and the last pass finishes and stores into `dst`. When `dst` is one of the sources (and there are more
    /// than two), the last pass also goes to the scratch block, which is then finished into `dst`, so that no
    /// source is overwritten before it is read.
    private static func reduce<L: Lane, C: Combiner, F: Finish>(
        _: L.Type, _: C.Type, _ sources: UnsafeBufferPointer<UnsafeRawPointer>, _ dst: UnsafeMutableRawPointer,
        _ count: Int, _ finish: F
    ) where C.Element == L.Value, F.Value == L.Value {
        typealias Acc = NativeLane<L.Value>
        let k = sources.count
        if k == 1 {
            map(into: dst, sources[0], count: count, Convert<L, L, F>(finish: finish))
            return
        }
        let aliased = k > 2 && sources.contains(UnsafeRawPointer(dst))
        if k <= 4 && !aliased {
            let rest = UnsafeBufferPointer(rebasing: sources[1...])
            pass(L.self, L.self, L.self, C.self, finish, into: dst, sources[0], rest, offset: 0, count: count)
            return
        }
        let acc = UnsafeMutableRawPointer.allocate(byteCount: blockBytes, alignment: 64)
        defer { acc.deallocate() }
        let keep = Keep<L.Value>()
        let blockCount = blockBytes / MemoryLayout<L.Value>.stride
        var start = 0
        while start < count {
            let n = Swift.min(blockCount, count - start)
            let offset = start * MemoryLayout<L.Stored>.stride
            var next = Swift.min(k, 4)
            let first = UnsafeBufferPointer(rebasing: sources[1..<next])
            pass(L.self, L.self, Acc.self, C.self, keep, into: acc, sources[0] + offset, first, offset: offset, count: n)
            while next < k {
                let group = UnsafeBufferPointer(rebasing: sources[next..<Swift.min(k, next + 3)])
                next += group.count
                if next == k && !aliased {
                    pass(Acc.self, L.self, L.self, C.self, finish, into: dst + offset, acc, group, offset: offset, count: n)
                } else {
                    pass(Acc.self, L.self, Acc.self, C.self, keep, into: acc, acc, group, offset: offset, count: n)
                }
            }
            if aliased {
                map(into: dst + offset, acc, count: n, Convert<Acc, L, F>(finish: finish))
            }
            start += n
        }
    }

    /// `d[i] = finish(first[i] ∘ rest[0][i] ∘ …)` for one to three `rest` pointers (each advanced by `offset`
    /// bytes), reading `first` as lane `First`, the others as `L`, and storing as lane `Out`.
    @inline(__always)
    private static func pass<
        First: Lane, L: Lane, Out: Lane, C: Combiner, F: Finish
    >(
        _: First.Type, _: L.Type, _: Out.Type, _: C.Type, _ finish: F, into d: UnsafeMutableRawPointer,
        _ first: UnsafeRawPointer, _ rest: UnsafeBufferPointer<UnsafeRawPointer>, offset: Int, count n: Int
    ) where First.Value == C.Element, L.Value == C.Element, Out.Value == C.Element, F.Value == C.Element {
        switch rest.count {
        case 1:
            map(into: d, first, rest[0] + offset, count: n, Combine2<First, L, Out, C, F>(finish: finish))
        case 2:
            map(
                into: d, first, rest[0] + offset, rest[1] + offset, count: n,
                Combine3<First, L, Out, C, F>(finish: finish))
        default:
            map(
                into: d, first, rest[0] + offset, rest[1] + offset, rest[2] + offset, count: n,
                Combine4<First, L, Out, C, F>(finish: finish))
        }
    }

    // MARK: Loops

    // One specialization per element function type, shared by all call sites. Where `d` may equal an input
    // there is a separate loop for that case: the vectorizer's runtime overlap check rejects an exact alias
    // and would fall back to scalar code, while one pointer read and written at the same index is recognizably
    // safe. (`d` equals `a` when a pass folds into the scratch block, and any input when reducing two sources.)

    /// `d[i] = f(a[i])`; `d` may equal `a`.
    @inline(never)
    private static func map<F: ElementFunction1>(
        into d: UnsafeMutableRawPointer, _ a: UnsafeRawPointer, count n: Int, _ f: F
    ) {
        if UnsafeRawPointer(d) == a {
            for i in 0..<n { store(f(load(d, i)), d, i) }
        } else {
            for i in 0..<n { store(f(load(a, i)), d, i) }
        }
    }

    /// `d[i] = f(a[i], b[i])`; `d` may equal `a` or `b`.
    @inline(never)
    private static func map<F: ElementFunction2>(
        into d: UnsafeMutableRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count n: Int, _ f: F
    ) {
        if UnsafeRawPointer(d) == a {
            for i in 0..<n { store(f(load(d, i), load(b, i)), d, i) }
        } else if UnsafeRawPointer(d) == b {
            for i in 0..<n { store(f(load(a, i), load(d, i)), d, i) }
        } else {
            for i in 0..<n { store(f(load(a, i), load(b, i)), d, i) }
        }
    }

    /// `d[i] = f(a[i], b[i], c[i])`; `d` may equal `a`, but no other input.
    @inline(never)
    private static func map<F: ElementFunction3>(
        into d: UnsafeMutableRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ c: UnsafeRawPointer,
        count n: Int, _ f: F
    ) {
        if UnsafeRawPointer(d) == a {
            for i in 0..<n { store(f(load(d, i), load(b, i), load(c, i)), d, i) }
        } else {
            for i in 0..<n { store(f(load(a, i), load(b, i), load(c, i)), d, i) }
        }
    }

    /// `d[i] = f(a[i], b[i], c[i], e[i])`; `d` may equal `a`, but no other input.
    @inline(never)
    private static func map<F: ElementFunction4>(
        into d: UnsafeMutableRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ c: UnsafeRawPointer,
        _ e: UnsafeRawPointer, count n: Int, _ f: F
    ) {
        if UnsafeRawPointer(d) == a {
            for i in 0..<n { store(f(load(d, i), load(b, i), load(c, i), load(e, i)), d, i) }
        } else {
            for i in 0..<n { store(f(load(a, i), load(b, i), load(c, i), load(e, i)), d, i) }
        }
    }

    @inline(__always)
    private static func load<T: BitwiseCopyable>(_ p: UnsafeRawPointer, _ i: Int) -> T {
        p.loadUnaligned(fromByteOffset: i &* MemoryLayout<T>.stride, as: T.self)
    }

    @inline(__always)
    private static func load<T: BitwiseCopyable>(_ p: UnsafeMutableRawPointer, _ i: Int) -> T {
        p.loadUnaligned(fromByteOffset: i &* MemoryLayout<T>.stride, as: T.self)
    }

    @inline(__always)
    private static func store<T: BitwiseCopyable>(_ value: T, _ p: UnsafeMutableRawPointer, _ i: Int) {
        p.storeBytes(of: value, toByteOffset: i &* MemoryLayout<T>.stride, as: T.self)
    }
}

extension Reduction {
    // MARK: - Element functions

    // Loops take their element function as a value of a concrete type with an `@inline(__always)` call, not as a
    // closure, so that it is reliably inlined and the loop vectorizes.

    /// How a buffer stores elements (`Stored`) versus how they are combined (`Value`).
    protocol Lane {
        associatedtype Stored: BitwiseCopyable
        associatedtype Value: Arithmetic
        static func widen(_ x: Stored) -> Value
        static func narrow(_ x: Value) -> Stored
    }

    /// Stored and combined as is.
    enum NativeLane<Value: Arithmetic>: Lane {
        @inline(__always) static func widen(_ x: Value) -> Value { x }
        @inline(__always) static func narrow(_ x: Value) -> Value { x }
    }

    /// Stored as 16-bit floats, combined as Float32.
    enum HalfLane<Format: HalfPrecisionFormat>: Lane {
        @inline(__always) static func widen(_ x: UInt16) -> Float { Format.widen(x) }
        @inline(__always) static func narrow(_ x: Float) -> UInt16 { Format.narrow(x) }
    }

    /// Stored as 8-bit floats, combined as Float32.
    enum Float8Lane<Format: Float8Format>: Lane {
        @inline(__always) static func widen(_ x: UInt8) -> Float { Format.widen(x) }
        @inline(__always) static func narrow(_ x: Float) -> UInt8 { Format.narrow(x) }
    }

    /// What happens to a fully combined element before it is stored: nothing, or the division of `.avg`.
    protocol Finish {
        associatedtype Value
        func callAsFunction(_ x: Value) -> Value
    }

    struct Keep<Value>: Finish {
        @inline(__always) func callAsFunction(_ x: Value) -> Value { x }
    }

    struct Divide<Value: Arithmetic>: Finish {
        var divisor: Value.Divisor
        @inline(__always) func callAsFunction(_ x: Value) -> Value { Value.reductionDivide(x, by: divisor) }
    }

    protocol ElementFunction1 {
        associatedtype A: BitwiseCopyable
        associatedtype Output: BitwiseCopyable
        func callAsFunction(_ a: A) -> Output
    }

    protocol ElementFunction2 {
        associatedtype A: BitwiseCopyable
        associatedtype B: BitwiseCopyable
        associatedtype Output: BitwiseCopyable
        func callAsFunction(_ a: A, _ b: B) -> Output
    }

    protocol ElementFunction3 {
        associatedtype A: BitwiseCopyable
        associatedtype B: BitwiseCopyable
        associatedtype Output: BitwiseCopyable
        func callAsFunction(_ a: A, _ b: B, _ c: B) -> Output
    }

    protocol ElementFunction4 {
        associatedtype A: BitwiseCopyable
        associatedtype B: BitwiseCopyable
        associatedtype Output: BitwiseCopyable
        func callAsFunction(_ a: A, _ b: B, _ c: B, _ e: B) -> Output
    }

    /// `finish(a)`, between lanes of the same value type.
    struct Convert<In: Lane, Out: Lane, F: Finish>: ElementFunction1
    where In.Value == Out.Value, F.Value == In.Value {
        var finish: F
        @inline(__always) func callAsFunction(_ a: In.Stored) -> Out.Stored { Out.narrow(finish(In.widen(a))) }
    }

    /// `finish(a ∘ b)`, reading lanes `First` and `L`, storing lane `Out`.
    struct Combine2<First: Lane, L: Lane, Out: Lane, C: Combiner, F: Finish>:
        ElementFunction2
    where First.Value == C.Element, L.Value == C.Element, Out.Value == C.Element, F.Value == C.Element {
        var finish: F
        @inline(__always) func callAsFunction(_ a: First.Stored, _ b: L.Stored) -> Out.Stored {
            Out.narrow(finish(C.combine(First.widen(a), L.widen(b))))
        }
    }

    /// `finish((a ∘ b) ∘ c)`.
    struct Combine3<First: Lane, L: Lane, Out: Lane, C: Combiner, F: Finish>:
        ElementFunction3
    where First.Value == C.Element, L.Value == C.Element, Out.Value == C.Element, F.Value == C.Element {
        var finish: F
        @inline(__always) func callAsFunction(_ a: First.Stored, _ b: L.Stored, _ c: L.Stored) -> Out.Stored {
            Out.narrow(finish(C.combine(C.combine(First.widen(a), L.widen(b)), L.widen(c))))
        }
    }

    /// `finish(((a ∘ b) ∘ c) ∘ e)`.
    struct Combine4<First: Lane, L: Lane, Out: Lane, C: Combiner, F: Finish>:
        ElementFunction4
    where First.Value == C.Element, L.Value == C.Element, Out.Value == C.Element, F.Value == C.Element {
        var finish: F
        @inline(__always) func callAsFunction(_ a: First.Stored, _ b: L.Stored, _ c: L.Stored, _ e: L.Stored) -> Out.Stored {
            Out.narrow(finish(C.combine(C.combine(C.combine(First.widen(a), L.widen(b)), L.widen(c)), L.widen(e))))
        }
    }

    // MARK: - Element arithmetic

    /// One element type's arithmetic with `Reduction`'s semantics.
    protocol Arithmetic: BitwiseCopyable {
        /// The divisor of `.avg`, converted once per call.
        associatedtype Divisor
        static func reductionSum(_ a: Self, _ b: Self) -> Self
        static func reductionProduct(_ a: Self, _ b: Self) -> Self
        static func reductionMin(_ a: Self, _ b: Self) -> Self
        static func reductionMax(_ a: Self, _ b: Self) -> Self
        static func reductionDivisor(_ divisor: Int) -> Divisor
        static func reductionDivide(_ a: Self, by divisor: Divisor) -> Self
    }

    /// A binary reduction operator, resolved statically so that each dtype × op gets its own vectorized loops.
    protocol Combiner {
        associatedtype Element: Arithmetic
        static func combine(_ a: Element, _ b: Element) -> Element
    }

    enum Sum<Element: Arithmetic>: Combiner {
        @inline(__always) static func combine(_ a: Element, _ b: Element) -> Element { Element.reductionSum(a, b) }
    }

    enum Product<Element: Arithmetic>: Combiner {
        @inline(__always) static func combine(_ a: Element, _ b: Element) -> Element { Element.reductionProduct(a, b) }
    }

    enum Minimum<Element: Arithmetic>: Combiner {
        @inline(__always) static func combine(_ a: Element, _ b: Element) -> Element { Element.reductionMin(a, b) }
    }

    enum Maximum<Element: Arithmetic>: Combiner {
        @inline(__always) static func combine(_ a: Element, _ b: Element) -> Element { Element.reductionMax(a, b) }
    }
}

extension Reduction.Arithmetic where Self: BinaryFloatingPoint, Divisor == Self {
    @inline(__always) static func reductionSum(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) static func reductionProduct(_ a: Self, _ b: Self) -> Self { a * b }
    // NaN-propagating; of equal operands, `b`. `a != a` is the NaN test as one vectorizable compare
    // (`isNaN` lowers to integer bit tests and branches for Double).
    @inline(__always) static func reductionMin(_ a: Self, _ b: Self) -> Self { a < b || a != a ? a : b }
    @inline(__always) static func reductionMax(_ a: Self, _ b: Self) -> Self { a > b || a != a ? a : b }
    @inline(__always) static func reductionDivisor(_ divisor: Int) -> Self { Self(divisor) }
    @inline(__always) static func reductionDivide(_ a: Self, by divisor: Self) -> Self { a / divisor }
}

extension Reduction.Arithmetic where Self: FixedWidthInteger, Divisor == Int {
    @inline(__always) static func reductionSum(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func reductionProduct(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func reductionMin(_ a: Self, _ b: Self) -> Self { a < b ? a : b }
    @inline(__always) static func reductionMax(_ a: Self, _ b: Self) -> Self { a > b ? a : b }
    @inline(__always) static func reductionDivisor(_ divisor: Int) -> Int { divisor }
    /// Truncating division, computed in `Int` so that any divisor works for the narrow types.
    @inline(__always) static func reductionDivide(_ a: Self, by divisor: Int) -> Self {
        Self(truncatingIfNeeded: Int(truncatingIfNeeded: a) / divisor)
    }
}

extension Float: Reduction.Arithmetic { typealias Divisor = Float }
extension Double: Reduction.Arithmetic { typealias Divisor = Double }
extension Int8: Reduction.Arithmetic { typealias Divisor = Int }
extension UInt8: Reduction.Arithmetic { typealias Divisor = Int }
extension Int32: Reduction.Arithmetic { typealias Divisor = Int }
extension Int64: Reduction.Arithmetic { typealias Divisor = Int }
