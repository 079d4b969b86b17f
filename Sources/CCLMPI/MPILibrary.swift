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
/// `libmpi_abi.so.1` (the MPI-5 standard ABI), through the system loader. Opened with
/// `RTLD_GLOBAL`: Open MPI's plugins resolve their symbols against it.
///
/// Threading: `MPI_Initialized`, `MPI_Finalized` and `MPI_Get_library_version` may be called from
/// any thread, before `MPI_Init` and after `MPI_Finalize` (MPI-3 §8.7).
/// Ownership: keep the library alive while anything made with it exists.
package final class MPILibrary: @unchecked Sendable {
    package static let variables = ["CCL_MPI_SO_PATH"]
    package static let candidates = ["libmpi.so", "libmpi.so.40", "libmpich.so.12", "libmpi.so.12", "libmpi_abi.so.1"]
    /// `MPI_MAX_LIBRARY_VERSION_STRING` is 8192 in MPICH (256 in Open MPI): one buffer fits both.
    static let versionBufferBytes = 8192

    private let library: DynamicLibrary
    /// The file the loader mapped (the soname resolved), else the name that opened it.
    package let path: String
    package let family: MPIFamily
    /// `MPI_Get_library_version`'s text ("Open MPI v4.1.4, package: …", "MPICH Version: 4.0.2 …").
    package let version: String

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
    package static func load(environment: [String: String]) throws(CCLError) -> MPILibrary {
        let library = try DynamicLibrary.open(
            "MPI", variables: variables, environment: environment, candidates: candidates, global: true)
        return try MPILibrary(library)
    }

    init(_ library: consuming DynamicLibrary) throws(CCLError) {
        let found = try library.resolve(Self.symbols)
        initialized = unsafeBitCast(found[0], to: (@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        finalized = unsafeBitCast(found[1], to: (@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        getLibraryVersion = unsafeBitCast(
            found[2], to: (@convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Result).self)
        family = Self.family(of: library)
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

extension String {
    /// Without leading and trailing spaces and newlines (MPI version strings end in "\n").
    fileprivate func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
