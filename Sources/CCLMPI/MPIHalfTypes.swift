import CCLCollectiveAPI
import CCLCollectives
import CCLCore

/// float16 and bfloat16 in MPI, which has neither before MPI-4.1 (MLX's way): a committed
/// two-byte contiguous datatype, and one user-defined commutative reduction per format and op
/// that accumulates in float32 and rounds once per combination step, the arithmetic of the CPU
/// backends (`Reduction`).
///
/// Made once per process after `MPI_Init`; MPI frees them at `MPI_Finalize`.
package struct MPIHalfTypes: Sendable {
    /// The two-byte datatype both formats travel as.
    package let datatype: Int
    /// `ops[format][op]`: format 0 is float16, 1 is bfloat16; op in `sum, prod, min, max` order.
    private let ops: [[Int]]

    /// Creates and commits the datatype and the eight reductions.
    ///
    /// - Throws: `.system` with MPI's error text when MPI refuses one.
    init(_ mpi: MPILibrary) throws(CCLError) {
        var storage = 0
        try Self.check(mpi, mpi.calls.typeContiguous(2, mpi.constants.byte, &storage), "MPI_Type_contiguous")
        try Self.check(mpi, mpi.calls.typeCommit(&storage), "MPI_Type_commit")
        datatype = mpi.handle(from: storage)
        let functions: [[MPIFunctions.UserFunction]] = [
            [
                { a, b, n, _ in combine(a, b, n, .float16, .sum) }, { a, b, n, _ in combine(a, b, n, .float16, .prod) },
                { a, b, n, _ in combine(a, b, n, .float16, .min) }, { a, b, n, _ in combine(a, b, n, .float16, .max) },
            ],
            [
                { a, b, n, _ in combine(a, b, n, .bfloat16, .sum) }, { a, b, n, _ in combine(a, b, n, .bfloat16, .prod) },
                { a, b, n, _ in combine(a, b, n, .bfloat16, .min) }, { a, b, n, _ in combine(a, b, n, .bfloat16, .max) },
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

    /// Frees the datatype and the reductions (before `MPI_Finalize`, so that MPI finds nothing
    /// of ours leaked).
    func free(_ mpi: MPILibrary) {
        var type = datatype
        _ = mpi.calls.typeFree(&type)
        for row in ops {
            for op in row {
                var handle = op
                _ = mpi.calls.opFree(&handle)
            }
        }
    }

    /// The reduction for `op` on `dtype` (float16 or bfloat16); `avg` is a sum divided afterwards.
    package func reduction(_ op: ReduceOp, _ dtype: DType) -> Int {
        let column: Int
        switch op {
        case .sum, .avg: column = 0
        case .prod: column = 1
        case .min: column = 2
        case .max: column = 3
        }
        return ops[dtype == .bfloat16 ? 1 : 0][column]
    }

    private static func check(_ mpi: MPILibrary, _ code: Int32, _ call: String) throws(CCLError) {
        guard code != 0 else { return }
        throw CCLError(.system, operation: "create MPI's float16 and bfloat16 types (\(call))", mpi.describe(code))
    }
}

/// `target[i] = input[i] ∘ target[i]` for `length` elements: the body of every half-precision
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
