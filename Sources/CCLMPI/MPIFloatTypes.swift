import CCLCollectiveAPI
import CCLCollectives
import CCLCore

/// float16, bfloat16 and the float8 types in MPI, which has none of them before MPI-4.1 (MLX's
/// way for the 16-bit ones): a committed contiguous datatype per element size (two bytes, one
/// byte), and one user-defined commutative reduction per format and op that accumulates in float32
/// and rounds once per combination step, the arithmetic of the CPU backends (`Reduction`).
///
/// Made once per process after `MPI_Init`; MPI frees them at `MPI_Finalize`.
package struct MPIFloatTypes: Sendable {
    /// The formats, in the order of `ops`' rows.
    private static let formats: [DType] = [.float16, .bfloat16, .float8e4m3, .float8e5m2]
    /// The two-byte datatype the 16-bit formats travel as, and the one-byte one of float8.
    private let twoBytes: Int
    private let oneByte: Int
    /// `ops[format][op]`: format in `formats` order; op in `sum, prod, min, max` order.
    private let ops: [[Int]]

    /// Creates and commits the datatypes and the sixteen reductions.
    ///
    /// - Throws: `.system` with MPI's error text when MPI refuses one.
    init(_ mpi: MPILibrary) throws(CCLError) {
        var pair = 0, single = 0
        try Self.check(mpi, mpi.calls.typeContiguous(2, mpi.constants.byte, &pair), "MPI_Type_contiguous")
        try Self.check(mpi, mpi.calls.typeCommit(&pair), "MPI_Type_commit")
        try Self.check(mpi, mpi.calls.typeContiguous(1, mpi.constants.byte, &single), "MPI_Type_contiguous")
        try Self.check(mpi, mpi.calls.typeCommit(&single), "MPI_Type_commit")
        twoBytes = mpi.handle(from: pair)
        oneByte = mpi.handle(from: single)
        // C function pointers cannot capture: one closure literal per format and op.
        let functions: [[MPIFunctions.UserFunction]] = [
            [
                { a, b, n, _ in combine(a, b, n, .float16, .sum) }, { a, b, n, _ in combine(a, b, n, .float16, .prod) },
                { a, b, n, _ in combine(a, b, n, .float16, .min) }, { a, b, n, _ in combine(a, b, n, .float16, .max) },
            ],
            [
                { a, b, n, _ in combine(a, b, n, .bfloat16, .sum) }, { a, b, n, _ in combine(a, b, n, .bfloat16, .prod) },
                { a, b, n, _ in combine(a, b, n, .bfloat16, .min) }, { a, b, n, _ in combine(a, b, n, .bfloat16, .max) },
            ],
            [
                { a, b, n, _ in combine(a, b, n, .float8e4m3, .sum) }, { a, b, n, _ in combine(a, b, n, .float8e4m3, .prod) },
                { a, b, n, _ in combine(a, b, n, .float8e4m3, .min) }, { a, b, n, _ in combine(a, b, n, .float8e4m3, .max) },
            ],
            [
                { a, b, n, _ in combine(a, b, n, .float8e5m2, .sum) }, { a, b, n, _ in combine(a, b, n, .float8e5m2, .prod) },
                { a, b, n, _ in combine(a, b, n, .float8e5m2, .min) }, { a, b, n, _ in combine(a, b, n, .float8e5m2, .max) },
            ],
        ]
        var made: [[Int]] = []
        for row in functions {
            var handles: [Int] = []
            for function in row {
                var op = 0
                try Self.check(mpi, mpi.calls.opCreate(function, 1, &op), "MPI_Op_create")
                handles.append(mpi.handle(from: op))
            }
            made.append(handles)
        }
        ops = made
    }

    /// Frees the datatypes and the reductions (before `MPI_Finalize`, so that MPI finds nothing
    /// of ours leaked).
    func free(_ mpi: MPILibrary) {
        for type in [twoBytes, oneByte] {
            var handle = type
            _ = mpi.calls.typeFree(&handle)
        }
        for row in ops {
            for op in row {
                var handle = op
                _ = mpi.calls.opFree(&handle)
            }
        }
    }

    /// The datatype `dtype` (one of these formats) travels as.
    package func datatype(_ dtype: DType) -> Int { dtype.size == 1 ? oneByte : twoBytes }

    /// The reduction for `op` on `dtype` (one of these formats); `avg` is a sum divided afterwards.
    package func reduction(_ op: ReduceOp, _ dtype: DType) -> Int {
        let column: Int
        switch op {
        case .sum, .avg: column = 0
        case .prod: column = 1
        case .min: column = 2
        case .max: column = 3
        }
        return ops[Self.formats.firstIndex(of: dtype) ?? 0][column]
    }

    private static func check(_ mpi: MPILibrary, _ code: Int32, _ call: String) throws(CCLError) {
        guard code != 0 else { return }
        throw CCLError(.system, operation: "create MPI's float16, bfloat16 and float8 types (\(call))", mpi.describe(code))
    }
}

/// `target[i] = input[i] ∘ target[i]` for `length` elements: the body of every 16- and 8-bit float
/// reduction MPI calls back (on whatever thread runs the collective).
private func combine(
    _ input: UnsafeMutableRawPointer?, _ target: UnsafeMutableRawPointer?, _ length: UnsafeMutablePointer<Int32>?, _ dtype: DType,
    _ op: ReduceOp
) {
    guard let input, let target, let length, length.pointee > 0 else { return }
    withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 2) { sources in
        sources[0] = UnsafeRawPointer(input)
        sources[1] = UnsafeRawPointer(target)
        Reduction.reduce(UnsafeBufferPointer(sources), into: target, count: Int(length.pointee), dtype: dtype, op: op, divisor: 1)
    }
}
