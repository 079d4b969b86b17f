import CCLCore

/// Joins the job's store as the launch environment describes it (torch's
/// `TCPStore(host, port, is_master=rank == 0)`): rank 0 serves the store on the master address
/// and port, unless the launcher already does (`ccl launch` sets `CCL_STORE_IN_LAUNCHER=1`);
/// every rank then connects to it.
///
/// Ownership: keep the returned server (rank 0) alive until every rank is done with the store.
public enum Rendezvous {
    /// The job's store for `launch` (this rank serving it when the environment says so), and
    /// the server when this rank runs it; `timeout` bounds connecting and each wait.
    public static func join(
        _ launch: LaunchEnvironment, environment: [String: String], timeout: Timeout = .seconds(300)
    ) throws(CCLError) -> (store: TCPStoreClient, server: TCPStoreServer?) {
        let operation = "rendezvous (rank \(launch.rank))"
        guard let token = launch.token else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: launch.rank, "CCL_TOKEN is not set: every rank and the store share it")
        }
        guard let port = launch.masterPort else {
            throw CCLError(.invalidArgument, operation: operation, rank: launch.rank, "no master port: set CCL_MASTER_PORT or MASTER_PORT")
        }
        let host = launch.masterAddress ?? "127.0.0.1"
        var server: TCPStoreServer?
        if launch.rank == 0, environment["CCL_STORE_IN_LAUNCHER"] != "1" {
            server = try TCPStoreServer(host: host, port: port, token: token)
        }
        let store = try TCPStoreClient(host: host, port: port, token: token, timeout: timeout)
        return (store, server)
    }

    /// Ends this rank's use of the job's store; call it last, on every rank. The other ranks say
    /// so, and the rank serving the store (`server` non-nil) waits until all have before it
    /// returns, so that no rank loses the store in the middle of a request when it exits.
    /// Its keys are deleted again.
    public static func finish(
        store: TCPStoreClient, server: TCPStoreServer?, rank: Int, worldSize: Int, timeout: Timeout = .seconds(60)
    ) throws(CCLError) {
        let key = { (r: Int) in "rendezvous/finished/\(r)" }
        guard server != nil else {
            try store.set(key(rank), [1])
            return
        }
        let others = (0..<worldSize).filter { $0 != rank }
        do {
            try store.wait(others.map(key), timeout: timeout)
        } catch {
            let missing = others.filter { (try? store.check([key($0)])) != true }
            throw CCLError(
                .timeout, operation: "finish rendezvous (rank \(rank), serving the store)", rank: rank,
                "waited \(timeout); " + CCLError.missingRanks(missing, "never finished"), cause: error)
        }
        for other in others { _ = try? store.delete(key(other)) }
    }
}
