import CCLBackend
import CCLCollectiveAPI
import CCLCore
import CCLStore
import Logging

/// MPI on host buffers (`MPICommunicator`), for jobs started by `mpirun` or `srun`: MPI is opened
/// at run time, so a machine without it builds and runs everything else, and its probe says why
/// not.
///
/// Outside an MPI launch the probe says unavailable without opening the library: MPI would make
/// the process a world of its own, which is not the group.
public struct MPIBackend: Backend {
    /// Where `CCL_MPI_SO_PATH`, `CCL_MPI_ABORT_ON_TIMEOUT` and the launcher's variables are read.
    public let environment: [String: String]
    /// How long a call may run before the watchdog reports it (`.indefinite`: no watchdog).
    public let timeout: Timeout
    /// Where the watchdog's reports go.
    public let logger: Logger

    /// A backend that opens MPI as `environment` says; `timeout` is the watchdog's.
    public init(environment: [String: String], timeout: Timeout = .seconds(300), logger: Logger = Logger(label: "ccl.mpi")) {
        self.environment = environment
        self.timeout = timeout
        self.logger = logger
    }

    public var name: String { "mpi" }
    public var serves: Device.Kind { .host }

    /// Whether MPI's launcher started this process (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`).
    public static func launchedByMPI(_ environment: [String: String]) -> Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].contains { !(environment[$0] ?? "").isEmpty }
    }

    /// Available under an MPI launch when the library loads with every function this backend
    /// calls and its family's handles.
    public func probe(_ context: BackendContext) -> BackendProbe {
        if let runtime = MPIRuntime.existing { return Self.available(runtime.library) }
        guard context.launchedByMPI || Self.launchedByMPI(environment) else {
            return .unavailable(
                reason:
                    "not started by mpirun or srun (no OMPI_COMM_WORLD_SIZE or PMI_SIZE): MPI would make this process a world of its own")
        }
        do { return Self.available(try MPILibrary.load(environment: environment)) } catch {
            return .unavailable(reason: error.message)
        }
    }

    private static func available(_ library: MPILibrary) -> BackendProbe {
        .available(version: library.shortVersion, details: "\(library.family.rawValue) at \(library.path)")
    }

    /// `CCL_MPI_ABORT_ON_TIMEOUT`: unset, 0, false or no (the default: report only); 1, true or
    /// yes (end the job with `MPI_Abort`).
    ///
    /// - Throws: `.invalidArgument` naming the variable and its value for anything else.
    package static func abortOnTimeout(in environment: [String: String]) throws(CCLError) -> Bool {
        switch environment["CCL_MPI_ABORT_ON_TIMEOUT"] ?? "" {
        case "", "0", "false", "no": return false
        case "1", "true", "yes": return true
        case let text:
            throw CCLError(.invalidArgument, operation: "read environment", "CCL_MPI_ABORT_ON_TIMEOUT=\(text) is not 0 or 1")
        }
    }

    /// `CCL_MPI_MAX_COUNT`: the most elements one MPI call carries (MPI counts are C ints), from
    /// 1 to 2147483647 (the default); a call above it goes in pieces. Below the default it is for
    /// testing the pieces with small calls.
    ///
    /// - Throws: `.invalidArgument` naming the variable and its value when it is not such a number.
    package static func maxCount(in environment: [String: String]) throws(CCLError) -> Int {
        guard let text = environment["CCL_MPI_MAX_COUNT"], !text.isEmpty else { return Int(Int32.max) }
        guard let value = Int(text), (1...Int(Int32.max)).contains(value) else {
            throw CCLError(.invalidArgument, operation: "read environment", "CCL_MPI_MAX_COUNT=\(text) is not a count in 1...2147483647")
        }
        return value
    }

    public func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator {
        guard device == .host else {
            throw CCLError(
                .invalidArgument, operation: "create MPI communicator for group \(group.name)", "MPI takes host buffers, got \(device)")
        }
        let abortOnTimeout = try Self.abortOnTimeout(in: environment)
        let maxCount = try Self.maxCount(in: environment)
        return try MPICommunicator(
            group: group, nodes: nodes, runtime: MPIRuntime.shared(environment: environment), timeout: timeout,
            abortOnTimeout: abortOnTimeout, maxCount: maxCount, logger: logger)
    }
}
