import CCLCore
import Testing

@testable import CCLMPI

/// The MPI backend's settings from the environment at their boundaries: each bad value is an
/// error naming the variable and the value, never a trap.
@Suite struct MPISettingsTests {
    static let bad = ["-1", "9223372036854775807", "NaN", "2", " 1", String(repeating: "x", count: 10_000)]

    @Test("CCL_MPI_THREAD_LEVEL: unset or empty is single; the four names in any case; anything else names it")
    func threadLevel() throws {
        #expect(try MPIThreadLevel.requested(in: [:]) == .single)
        #expect(try MPIThreadLevel.requested(in: ["CCL_MPI_THREAD_LEVEL": ""]) == .single)
        #expect(try MPIThreadLevel.requested(in: ["CCL_MPI_THREAD_LEVEL": "MULTIPLE"]) == .multiple)
        #expect(try MPIThreadLevel.requested(in: ["CCL_MPI_THREAD_LEVEL": "funneled"]) == .funneled)
        for text in Self.bad + ["0", "3", "serial"] {
            let error = #expect(throws: CCLError.self) { _ = try MPIThreadLevel.requested(in: ["CCL_MPI_THREAD_LEVEL": text]) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.hasPrefix("CCL_MPI_THREAD_LEVEL=\(text) is not single") == true)
        }
    }

    @Test("CCL_MPI_ABORT_ON_TIMEOUT: unset, empty, 0, false, no report; 1, true, yes abort; anything else names it")
    func abortOnTimeout() throws {
        for text in ["", "0", "false", "no"] { #expect(try MPIBackend.abortOnTimeout(in: ["CCL_MPI_ABORT_ON_TIMEOUT": text]) == false) }
        for text in ["1", "true", "yes"] { #expect(try MPIBackend.abortOnTimeout(in: ["CCL_MPI_ABORT_ON_TIMEOUT": text]) == true) }
        #expect(try MPIBackend.abortOnTimeout(in: [:]) == false)
        for text in Self.bad {
            let error = #expect(throws: CCLError.self) { _ = try MPIBackend.abortOnTimeout(in: ["CCL_MPI_ABORT_ON_TIMEOUT": text]) }
            #expect(error?.message == "CCL_MPI_ABORT_ON_TIMEOUT=\(text) is not 0 or 1")
        }
    }

    @Test("CCL_MPI_SO_PATH empty searches the defaults; a very long path is an error naming it")
    func libraryPath() throws {
        // Empty is unset (the default search finds Debian's Open MPI).
        #expect(try MPILibrary.load(environment: ["CCL_MPI_SO_PATH": ""]).family == .openMPI)
        let long = "/" + String(repeating: "a", count: 5000) + "/libmpi.so"
        let error = #expect(throws: CCLError.self) { _ = try MPILibrary.load(environment: ["CCL_MPI_SO_PATH": long]) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("MPI not loaded from CCL_MPI_SO_PATH=") == true)
    }
}
