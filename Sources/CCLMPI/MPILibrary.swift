import CCLCore
import CCLSystem

/// Which MPI a library is, told apart as mpi4py does: the MPI-5 standard ABI when
/// `MPI_Abi_get_version` reports a major version above 0, Open MPI when the data symbol
/// `ompi_mpi_comm_self` exists, MPICH (and its derivatives) otherwise. The families differ in
/// how predefined handles and constants are spelled (Open MPI: addresses of data symbols; MPICH:
/// integer constants; the standard ABI: its own), so the backend keeps one table per family.
package enum MPIFamily: String, Sendable, Equatable {
    case standardABI = "MPI standard ABI"
    case openMPI = "Open MPI"
    case mpich = "MPICH"
}

/// An MPI library opened at run time (MLX's way, never linked): what it is, its version, and
/// whether this process has initialised it.
///
/// Search order: `CCL_MPI_SO_PATH` (used alone when set, see `DynamicLibrary`), then
/// `libmpi.so`, `libmpi.so.40` (Open MPI), `libmpich.so.12` and `libmpi.so.12` (MPICH),
/// `libmpi_abi.so.1` (the MPI-5 standard ABI), through the system loader; under MPICH's Hydra
/// launcher (`PMI_RANK` set, no `OMPI_COMM_WORLD_RANK`) the MPICH names come first, so that a
/// machine with both families loads the one its `mpirun` belongs to. Opened with `RTLD_GLOBAL`:
/// Open MPI's plugins resolve their symbols against it. Every function the backend calls and the
/// family's handles (`constants`) are resolved at load, all or nothing.
///
/// Threading: `MPI_Initialized`, `MPI_Finalized` and `MPI_Get_library_version` may be called from
/// any thread, before `MPI_Init` and after `MPI_Finalize` (MPI-3 §8.7).
/// Ownership: keep the library alive while anything made with it exists.
package final class MPILibrary: @unchecked Sendable {
    package static let variables = ["CCL_MPI_SO_PATH"]
    package static let candidates = ["libmpi.so", "libmpi.so.40", "libmpich.so.12", "libmpi.so.12", "libmpi_abi.so.1"]
    /// The search order under MPICH's Hydra launcher.
    package static let mpichFirst = ["libmpich.so.12", "libmpi.so.12", "libmpi_abi.so.1", "libmpi.so", "libmpi.so.40"]
    /// `MPI_MAX_ERROR_STRING` is 512 in MPICH and the standard ABI, 256 in Open MPI.
    static let errorBufferBytes = 512
    /// `MPI_MAX_LIBRARY_VERSION_STRING` is 8192 in MPICH (256 in Open MPI): one buffer fits both.
    static let versionBufferBytes = 8192

    private let library: DynamicLibrary
    /// The file the loader mapped (the soname resolved), else the name that opened it.
    package let path: String
    package let family: MPIFamily
    /// `MPI_Get_library_version`'s text ("Open MPI v4.1.4, package: …", "MPICH Version: 4.0.2 …").
    package let version: String
    /// The family's predefined handles and constants.
    package let constants: MPIConstants
    /// The functions the backend calls.
    package let calls: MPIFunctions

    typealias Result = Int32
    let initialized: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let finalized: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let getLibraryVersion: @convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Result

    /// The symbols every load resolves, in the order the initialiser reads them.
    package static let symbols = ["MPI_Initialized", "MPI_Finalized", "MPI_Get_library_version"]

    /// Loads MPI from the first place in the search order that has it and tells what it is.
    ///
    /// - Throws: `.unavailable`, naming every path tried (with `dlerror`'s text) or the missing
    ///   symbols.
    ///   The family's handles are checked too: an "Open MPI" without Open MPI's data symbols is
    ///   refused here, before a handle of the wrong family can reach a call.
    package static func load(environment: [String: String]) throws(CCLError) -> MPILibrary {
        try load(environment: environment, family: nil)
    }

    /// `load`, with the family forced instead of told apart (tests of a library of the wrong
    /// family for its constants).
    package static func load(environment: [String: String], family: MPIFamily?) throws(CCLError) -> MPILibrary {
        let underHydra = environment["PMI_RANK"] != nil && environment["OMPI_COMM_WORLD_RANK"] == nil
        let library = try DynamicLibrary.open(
            "MPI", variables: variables, environment: environment, candidates: underHydra ? mpichFirst : candidates, global: true)
        return try MPILibrary(library, family: family)
    }

    init(_ library: consuming DynamicLibrary, family forced: MPIFamily? = nil) throws(CCLError) {
        let found = try library.resolve(Self.symbols)
        initialized = unsafeBitCast(found[0], to: (@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        finalized = unsafeBitCast(found[1], to: (@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        getLibraryVersion = unsafeBitCast(
            found[2], to: (@convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Result).self)
        family = forced ?? Self.family(of: library)
        constants = try MPIConstants.of(family, in: library)
        calls = try MPIFunctions(library)
        var text = [CChar](repeating: 0, count: Self.versionBufferBytes + 1)
        var length: Int32 = 0
        let status = getLibraryVersion(&text, &length)
        let bytes = text.prefix(Int(max(0, min(length, Int32(Self.versionBufferBytes))))).map { UInt8(bitPattern: $0) }
        version = status == 0 ? String(decoding: bytes, as: UTF8.self).trimmingWhitespace() : "(MPI_Get_library_version failed: \(status))"
        path = library.loadedPath ?? library.path
        self.library = library
    }

    private static func family(of library: borrowing DynamicLibrary) -> MPIFamily {
        if let address = library.symbol("MPI_Abi_get_version") {
            let abiVersion = unsafeBitCast(
                address, to: (@convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32).self)
            var major: Int32 = 0
            var minor: Int32 = 0
            if abiVersion(&major, &minor) == 0, major > 0 { return .standardABI }
        }
        return library.symbol("ompi_mpi_comm_self") != nil ? .openMPI : .mpich
    }

    /// Whether this process has called `MPI_Init` (or `MPI_Init_thread`).
    package var isInitialized: Bool {
        var flag: Int32 = 0
        return initialized(&flag) == 0 && flag != 0
    }

    /// Whether this process has called `MPI_Finalize`.
    package var isFinalized: Bool {
        var flag: Int32 = 0
        return finalized(&flag) == 0 && flag != 0
    }
}

extension MPILibrary {
    /// A handle MPI wrote into `storage` (zeroed before the call): the low 32 bits, sign-extended,
    /// where the family's handles are C `int`s.
    package func handle(from storage: Int) -> Int {
        constants.handleBytes == 4 ? Int(Int32(truncatingIfNeeded: storage)) : storage
    }

    /// The version string's first part ("Open MPI v4.1.4", "MPICH Version: 4.0.2").
    package var shortVersion: String {
        let line = version.prefix { $0 != "," && $0 != "\n" }
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// `MPI_Error_string`'s text for `code`, with the code.
    package func describe(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Self.errorBufferBytes + 1)
        var length: Int32 = 0
        guard calls.errorString(code, &text, &length) == 0 else { return "MPI error \(code)" }
        let bytes = text.prefix(Int(max(0, min(length, Int32(Self.errorBufferBytes))))).map { UInt8(bitPattern: $0) }
        return "\(String(decoding: bytes, as: UTF8.self).trimmingWhitespace()) (MPI error \(code))"
    }
}

extension String {
    /// Without leading and trailing spaces and newlines (MPI version strings end in "\n").
    fileprivate func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
