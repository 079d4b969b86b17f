import CCLCore
import Testing

@testable import CCLMPI

/// MPI opened at run time against the real libraries scripts/setup.sh installs from Debian:
/// Open MPI (libopenmpi3: libmpi.so.40) and MPICH (libmpich12: libmpich.so.12).
@Suite struct MPILoadingTests {
    @Test("the default search finds Open MPI, tells its family and reads its version before MPI_Init")
    func openMPI() throws {
        let library = try MPILibrary.load(environment: [:])
        #expect(library.family == .openMPI, "\(library.path): \(library.version)")
        #expect(library.version.hasPrefix("Open MPI v"), "\(library.version)")
        // libmpi.so when Open MPI's development files are installed too, else libmpi.so.40.
        #expect(library.path.split(separator: "/").last?.hasPrefix("libmpi.so") == true, "\(library.path)")
        #expect(!library.isInitialized)
        #expect(!library.isFinalized)
    }

    @Test("CCL_MPI_SO_PATH picks MPICH, told apart by its missing Open MPI symbols")
    func mpich() throws {
        let library = try MPILibrary.load(environment: ["CCL_MPI_SO_PATH": "libmpich.so.12"])
        #expect(library.family == .mpich, "\(library.path): \(library.version)")
        #expect(library.version.contains("MPICH Version:"), "\(library.version)")
        #expect(!library.isInitialized)
    }

    @Test("a CCL_MPI_SO_PATH that does not load is an error naming it, and nothing else is tried")
    func missing() throws {
        let error = #expect(throws: CCLError.self) {
            _ = try MPILibrary.load(environment: ["CCL_MPI_SO_PATH": "/nonexistent/libmpi.so.40"])
        }
        #expect(error?.code == .unavailable)
        let text = error?.description ?? ""
        #expect(text.contains("MPI not loaded from CCL_MPI_SO_PATH=/nonexistent/libmpi.so.40"), "\(text)")
        #expect(text.contains("cannot open shared object file"), "\(text)")
        #expect(text.contains("unset CCL_MPI_SO_PATH to search libmpi.so, libmpi.so.40"), "\(text)")
    }
}
