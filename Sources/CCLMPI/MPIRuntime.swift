import Atomics
import CCLCore
import CCLSystem
import Synchronization

/// MPI in this process: the library loaded once and initialised once.
///
/// - `MPI_Init_thread` runs only when the process has not initialised MPI itself
///   (`MPI_Initialized`), asking for `CCL_MPI_THREAD_LEVEL` (default `single`, what `MPI_Init`
///   asks for: swift-ccl lets one thread at a time inside MPI, and a second one is an error
///   instead of MPI's undefined behaviour; any level above `single` costs Open MPI 4.1 about
///   0.13 µs per call, measured; `multiple` lets threads call communicators at once); then, and
///   only then, `MPI_Finalize` runs when the
///   process exits normally (an `atexit` handler), unless `markFailed()` said the process is
///   failing: a failing rank leaves without `MPI_Finalize`, which `mpirun` takes as the job
///   failing (instead of waiting in `MPI_Finalize` for ranks that wait for it).
/// - The world's size is checked against the launcher's (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`): a
///   library of another MPI than the `mpirun` that started the process makes every rank a
///   singleton world, which is an error here, naming both.
///
/// Threading: `shared` may be called from any thread; MPI calls on communicators follow the
/// thread level MPI provided (`threadLevel`).
package final class MPIRuntime: Sendable {
    package let library: MPILibrary
    /// This process's rank and the size of `MPI_COMM_WORLD`.
    package let worldRank: Int
    package let worldSize: Int
    /// Whether swift-ccl initialised MPI (and so finalises it).
    package let initializedHere: Bool
    /// The thread level MPI provides (`MPI_Query_thread`).
    package let threadLevel: MPIThreadLevel
    /// Set while a call is inside MPI, when the thread level is below `multiple` (see
    /// `MPICommunicator`); lives as long as the process.
    package let busy: UnsafeAtomic<Int> = .create(0)
    /// The datatype and reductions of float16 and bfloat16.
    package let floatTypes: MPIFloatTypes

    private static let current = Mutex<MPIRuntime?>(nil)
    private static let failing = Atomic<Bool>(false)
    /// Whether this process's `MPI_Init_thread` was swift-ccl's, even when setting up the
    /// runtime failed after it (a later attempt then still finalises at exit).
    private static let initializedByUs = Atomic<Bool>(false)

    /// The process's MPI, initialised on first use.
    ///
    /// - Throws: `.unavailable` when the library does not load (naming what was tried) or MPI
    ///   was finalised already; `.system` when initialisation fails; `.invalidArgument` when the
    ///   world does not match the launcher's.
    package static func shared(environment: [String: String]) throws(CCLError) -> MPIRuntime {
        let made: Result<MPIRuntime, CCLError> = current.withLock { runtime in
            if let runtime { return .success(runtime) }
            do throws(CCLError) {
                let fresh = try MPIRuntime(library: MPILibrary.load(environment: environment), environment: environment)
                runtime = fresh
                return .success(fresh)
            } catch {
                return .failure(error)
            }
        }
        return try made.get()
    }

    /// The runtime when one was made, without making it.
    package static var existing: MPIRuntime? { current.withLock { $0 } }

    /// Says the process is exiting because of an error: the exit handler then leaves MPI without
    /// `MPI_Finalize` (which would wait for the other ranks), so `mpirun` ends the job.
    package static func markFailed() { failing.store(true, ordering: .relaxed) }

    private init(library: MPILibrary, environment: [String: String]) throws(CCLError) {
        let operation = "initialise MPI"
        self.library = library
        guard !library.isFinalized else {
            throw CCLError(.unavailable, operation: operation, "MPI was already finalised in this process (MPI_Finalize was called)")
        }
        let calls = library.calls, constants = library.constants
        if library.isInitialized {
            initializedHere = Self.initializedByUs.load(ordering: .relaxed)
        } else {
            let wanted = try MPIThreadLevel.requested(in: environment)
            var provided: Int32 = 0
            let code = calls.initThread(nil, nil, constants.value(of: wanted), &provided)
            guard code == 0 else {
                throw CCLError(.system, operation: operation, "MPI_Init_thread failed: \(library.describe(code)) (\(library.version))")
            }
            initializedHere = true
            Self.initializedByUs.store(true, ordering: .relaxed)
            ExitHandler.register { MPIRuntime.finish() }
            _ = calls.commSetErrhandler(constants.commWorld, constants.errorsReturn)
        }
        var provided: Int32 = 0
        threadLevel = calls.queryThread(&provided) == 0 ? constants.level(of: provided) : .single
        var rank: Int32 = 0
        var size: Int32 = 0
        let asked = calls.commRank(constants.commWorld, &rank)
        let sized = calls.commSize(constants.commWorld, &size)
        guard asked == 0, sized == 0 else {
            throw CCLError(.system, operation: operation, "MPI_COMM_WORLD's rank and size: \(library.describe(asked != 0 ? asked : sized))")
        }
        worldRank = Int(rank)
        worldSize = Int(size)
        if let (variable, text) = Self.launcherSize(environment), Int(text) != worldSize {
            let launcherRank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK"].lazy.compactMap { environment[$0].flatMap { Int($0) } }.first
            throw CCLError(
                .invalidArgument, operation: operation, rank: launcherRank ?? worldRank,
                "MPI_COMM_WORLD has \(worldSize) rank\(worldSize == 1 ? "" : "s") but the launcher started \(text) (\(variable)): the MPI library loaded (\(library.family.rawValue), \(library.path)) is not the one this mpirun belongs to; set CCL_MPI_SO_PATH to the launcher's library (libmpi.so.40 for Open MPI's mpirun, libmpich.so.12 for MPICH's)"
            )
        }
        floatTypes = try MPIFloatTypes(library)
    }

    /// The launcher's world size variable and value, when MPI's launcher set one.
    private static func launcherSize(_ environment: [String: String]) -> (String, String)? {
        for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
            if let value = environment[variable], !value.isEmpty { return (variable, value) }
        }
        return nil
    }

    /// Whether MPI's thread level lets two threads call it at once.
    package var allowsConcurrentCalls: Bool { threadLevel == .multiple }

    /// The exit handler: `MPI_Finalize` when swift-ccl initialised MPI, it is not finalised yet,
    /// and the process is not failing.
    private static func finish() {
        guard let runtime = existing, runtime.initializedHere, !failing.load(ordering: .relaxed), !runtime.library.isFinalized
        else { return }
        runtime.floatTypes.free(runtime.library)
        _ = runtime.library.calls.finalize()
    }
}
