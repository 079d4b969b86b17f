import CCLCore
import CCLStore
import CCLSystem

extension Rendezvous {
    /// `join`, and in a job started by `mpirun` (or `srun` with MPI's variables) that names no
    /// store port: rank 0 serves the store on a port the kernel picks, and `MPI_Bcast` on
    /// `MPI_COMM_WORLD` tells every rank its address and a fresh token (`CCL_TOKEN` when set), so
    /// an MPI job needs no `MASTER_ADDR`, `MASTER_PORT` or token.
    ///
    /// The address rank 0 serves on: `CCL_HOST` or `MASTER_ADDR` when set; 127.0.0.1 when every
    /// rank is on its node (`OMPI_COMM_WORLD_LOCAL_SIZE` equals the world's size); else its first
    /// IPv4 address that is not loopback. Collective over `MPI_COMM_WORLD` on this path; MPI is
    /// initialised here (see `MPIRuntime`).
    ///
    /// - Throws: what `join` throws; under MPI, `CCLError` when MPI cannot start, rank 0 cannot
    ///   serve (every rank fails with rank 0's reason), or the store is not reachable.
    public static func joinJob(_ launch: LaunchEnvironment, environment: [String: String], timeout: Timeout = .seconds(300))
        throws(CCLError) -> (store: TCPStoreClient, server: TCPStoreServer?)
    {
        guard launch.source == .openMPI || launch.source == .pmi, launch.masterPort == nil else {
            return try join(launch, environment: environment, timeout: timeout)
        }
        return try MPIRendezvous.join(launch, environment: environment, timeout: timeout)
    }
}

/// The store's address sent from rank 0 with `MPI_Bcast` (see `Rendezvous.joinJob`).
enum MPIRendezvous {
    /// Bytes of the broadcast: "ok\nhost\nport\ntoken" or "error\ntext", zero-padded.
    static let messageBytes = 4096

    static func join(_ launch: LaunchEnvironment, environment: [String: String], timeout: Timeout) throws(CCLError) -> (
        store: TCPStoreClient, server: TCPStoreServer?
    ) {
        let operation = "rendezvous through MPI (rank \(launch.rank))"
        let runtime = try MPIRuntime.shared(environment: environment)
        guard runtime.worldRank == launch.rank, runtime.worldSize == launch.worldSize else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: launch.rank,
                "MPI says rank \(runtime.worldRank) of \(runtime.worldSize), the launcher's variables rank \(launch.rank) of \(launch.worldSize)"
            )
        }
        var server: TCPStoreServer?
        var text = ""
        if launch.rank == 0 {
            do throws(CCLError) {
                let host = try serviceHost(launch, environment: environment)
                let token = launch.token ?? freshToken()
                let started = try TCPStoreServer(host: host, port: 0, token: token)
                server = started
                text = "ok\n\(host)\n\(started.port)\n\(token)"
            } catch {
                text = "error\n\(error)"
            }
        }
        var bytes = [UInt8](repeating: 0, count: messageBytes)
        for (index, byte) in text.utf8.prefix(messageBytes - 1).enumerated() { bytes[index] = byte }
        let mpi = runtime.library
        let code = mpi.calls.bcast(&bytes, Int32(messageBytes), mpi.constants.byte, 0, mpi.constants.commWorld)
        guard code == 0 else {
            throw CCLError(.system, operation: operation, rank: launch.rank, "MPI_Bcast of the store's address: \(mpi.describe(code))")
        }
        let fields = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard fields.first == "ok", fields.count == 4, let port = Int(fields[2]) else {
            let reason = fields.first == "error" ? fields.dropFirst().joined(separator: "\n") : "an unreadable message"
            throw CCLError(.unavailable, operation: operation, rank: launch.rank, "rank 0 could not serve the store: \(reason)")
        }
        let store = try TCPStoreClient(host: String(fields[1]), port: port, token: String(fields[3]), timeout: timeout)
        return (store, server)
    }

    /// Where rank 0 serves the store (see `Rendezvous.joinJob`).
    static func serviceHost(_ launch: LaunchEnvironment, environment: [String: String]) throws(CCLError) -> String {
        if let host = environment["CCL_HOST"], !host.isEmpty { return host }
        if let host = launch.masterAddress, !host.isEmpty { return host }
        if launch.localWorldSize == launch.worldSize { return "127.0.0.1" }
        guard let address = NetworkInterfaces.firstExternalIPv4() else {
            throw CCLError(
                .unavailable, operation: "serve the store (rank 0)", rank: 0,
                "the job spans nodes but this one has no IPv4 address other than loopback; set CCL_HOST to an address the other nodes reach"
            )
        }
        return address
    }

    /// 32 hex digits from the system's secure generator.
    static func freshToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let word = generator.next() as UInt32
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }
}
