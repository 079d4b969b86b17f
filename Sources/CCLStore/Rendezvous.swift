import CCLCore

/// Joins the job's store as the launch environment describes it (torch's
/// `TCPStore(host, port, is_master=rank == 0)`): rank 0 serves the store on the master address
/// and port, unless the launcher already does (`ccl launch` sets `CCL_STORE_IN_LAUNCHER=1`);
/// every rank then connects to it.
///
/// Ownership: keep the returned server (rank 0) alive until every rank is done with the store.
public enum Rendezvous {
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
}
