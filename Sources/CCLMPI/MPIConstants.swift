import CCLCollectiveAPI
import CCLCore
import CCLSystem

/// The predefined handles and constants of one MPI family, as pointer-width integers: the values a
/// C program gets from `mpi.h` (they differ between families, so a program compiled against one
/// `mpi.h` runs only with that family's library).
///
/// - Open MPI: handles are pointers; the predefined ones are the addresses of data symbols
///   (`MPI_COMM_WORLD` is `&ompi_mpi_comm_world`), `MPI_IN_PLACE` is 1.
/// - MPICH (and Intel MPI, MVAPICH, Cray MPICH): handles are C `int`s with fixed values
///   (`MPI_COMM_WORLD` is 0x44000000), `MPI_IN_PLACE` is -1.
/// - The MPI-5 standard ABI (`libmpi_abi.so.1`): handles are pointers; predefined ones are small
///   fixed integers (`MPI_COMM_WORLD` is 0x101), `MPI_IN_PLACE` is 1.
///
/// A handle travels to MPI as a 64-bit argument; where the family's handle is a 32-bit `int`, the
/// callee reads the low half (the C calling convention on x86-64 and arm64), and handles MPI
/// writes back are read with `handleBytes`.
package struct MPIConstants: Sendable, Equatable {
    package var family: MPIFamily
    /// Bytes of one handle in memory: 4 (MPICH's `int`) or 8 (a pointer).
    package var handleBytes: Int
    package var commWorld: Int
    package var commNull: Int
    package var errorsReturn: Int
    package var byte: Int
    package var float: Int
    package var double: Int
    package var int8: Int
    package var uint8: Int
    package var int32: Int
    package var int64: Int
    package var sum: Int
    package var prod: Int
    package var min: Int
    package var max: Int
    /// `MPI_IN_PLACE`, as an address.
    package var inPlace: Int
    /// `MPI_THREAD_SINGLE` … `MPI_THREAD_MULTIPLE`: 0…3 in the native families, 0, 1024, 2048,
    /// 4096 in the standard ABI.
    package var threadLevels: [Int32]

    /// The Open MPI data symbols behind each handle, in the order `openMPI(_:)` reads them.
    static let openMPISymbols = [
        "ompi_mpi_comm_world", "ompi_mpi_comm_null", "ompi_mpi_errors_return", "ompi_mpi_byte", "ompi_mpi_float",
        "ompi_mpi_double", "ompi_mpi_int8_t", "ompi_mpi_uint8_t", "ompi_mpi_int32_t", "ompi_mpi_int64_t", "ompi_mpi_op_sum",
        "ompi_mpi_op_prod", "ompi_mpi_op_min", "ompi_mpi_op_max",
    ]

    /// Open MPI's handles: the addresses of its predefined objects in `library`.
    ///
    /// - Throws: `.unavailable` naming the symbols missing (a library that says it is Open MPI
    ///   but is not, or an Open MPI whose ABI changed).
    static func openMPI(_ library: borrowing DynamicLibrary) throws(CCLError) -> MPIConstants {
        let found: [UnsafeMutableRawPointer]
        do { found = try library.resolve(openMPISymbols) } catch {
            throw CCLError(
                .unavailable, operation: "load MPI",
                "\(library.path) was taken for Open MPI (it has ompi_mpi_comm_self) but lacks Open MPI's predefined handles: \(error.message)"
            )
        }
        let handle = found.map { Int(bitPattern: $0) }
        return MPIConstants(
            family: .openMPI, handleBytes: 8, commWorld: handle[0], commNull: handle[1], errorsReturn: handle[2], byte: handle[3],
            float: handle[4], double: handle[5], int8: handle[6], uint8: handle[7], int32: handle[8], int64: handle[9],
            sum: handle[10], prod: handle[11], min: handle[12], max: handle[13], inPlace: 1, threadLevels: [0, 1, 2, 3])
    }

    /// MPICH's handles (`mpi.h` of MPICH 3.x and 4.x; the same in its derivatives).
    static let mpich = MPIConstants(
        family: .mpich, handleBytes: 4, commWorld: 0x4400_0000, commNull: 0x0400_0000, errorsReturn: 0x5400_0001,
        byte: 0x4c00_010d, float: 0x4c00_040a, double: 0x4c00_080b, int8: 0x4c00_0137, uint8: 0x4c00_013b, int32: 0x4c00_0439,
        int64: 0x4c00_083a, sum: 0x5800_0003, prod: 0x5800_0004, min: 0x5800_0002, max: 0x5800_0001, inPlace: -1,
        threadLevels: [0, 1, 2, 3])

    /// The MPI-5 standard ABI's handles (`mpi_abi.h`, ABI version 1).
    static let standardABI = MPIConstants(
        family: .standardABI, handleBytes: 8, commWorld: 0x101, commNull: 0x100, errorsReturn: 0x143, byte: 0x247,
        float: 0x210, double: 0x214, int8: 0x240, uint8: 0x241, int32: 0x250, int64: 0x258, sum: 0x21, prod: 0x24,
        min: 0x22, max: 0x23, inPlace: 1, threadLevels: [0, 1024, 2048, 4096])

    /// The table of `family`, read from `library` where the family's handles are its symbols.
    static func of(_ family: MPIFamily, in library: borrowing DynamicLibrary) throws(CCLError) -> MPIConstants {
        switch family {
        case .openMPI: try openMPI(library)
        case .mpich: mpich
        case .standardABI: standardABI
        }
    }

    /// MPI's value for `level`.
    package func value(of level: MPIThreadLevel) -> Int32 { threadLevels[level.rawValue] }

    /// The level MPI's `value` stands for (the highest not above it).
    package func level(of value: Int32) -> MPIThreadLevel {
        MPIThreadLevel.allCases.last { self.value(of: $0) <= value } ?? .single
    }

    /// The predefined datatype of `dtype`; nil for the 16- and 8-bit floats, which MPI-3 lacks
    /// (they travel as committed types of their size with user-defined reductions, see
    /// `MPIFloatTypes`).
    package func datatype(_ dtype: DType) -> Int? {
        switch dtype {
        case .float32: float
        case .float64: double
        case .int8: int8
        case .uint8: uint8
        case .int32: int32
        case .int64: int64
        case .float16, .bfloat16, .float8e4m3, .float8e5m2: nil
        }
    }

    /// The predefined reduction of `op`; `avg` is a sum divided afterwards.
    package func reduction(_ op: ReduceOp) -> Int {
        switch op {
        case .sum, .avg: sum
        case .prod: prod
        case .min: min
        case .max: max
        }
    }
}

/// MPI's thread levels, in order (`MPI_THREAD_SINGLE` … `MPI_THREAD_MULTIPLE`).
package enum MPIThreadLevel: Int, Sendable, CaseIterable, CustomStringConvertible {
    case single, funneled, serialized, multiple

    /// "single", "funneled", "serialized", "multiple": how `CCL_MPI_THREAD_LEVEL` spells them.
    package var description: String {
        switch self {
        case .single: "single"
        case .funneled: "funneled"
        case .serialized: "serialized"
        case .multiple: "multiple"
        }
    }

    /// `CCL_MPI_THREAD_LEVEL`'s level: `single` when unset (see `MPIRuntime`).
    ///
    /// - Throws: `.invalidArgument` naming the variable and its value when it is none of the four.
    package static func requested(in environment: [String: String]) throws(CCLError) -> MPIThreadLevel {
        let text = environment["CCL_MPI_THREAD_LEVEL"] ?? ""
        if text.isEmpty { return .single }
        guard let level = allCases.first(where: { $0.description == text.lowercased() }) else {
            throw CCLError(
                .invalidArgument, operation: "read environment",
                "CCL_MPI_THREAD_LEVEL=\(text) is not single, funneled, serialized or multiple")
        }
        return level
    }
}
