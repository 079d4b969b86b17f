import CCL
import CCLSystem
import Foundation

/// What one rank of a `LocalJob` (or of `ccl launch`) needs: its place in the job, the store,
/// the world group, the node of every rank, and the CPU communicator over the world.
///
/// Ownership: keep it alive until the rank is done; `server` is rank 0's store when it hosts one.
final class RankSetup {
    let launch: LaunchEnvironment
    let store: TCPStoreClient
    let server: TCPStoreServer?
    let world: StatelessProcessGroup
    let nodes: NodeLayout
    let environment: [String: String]

    init(timeout: Timeout = .seconds(120)) throws {
        environment = ProcessInfo.processInfo.environment
        if let text = environment["CCL_CPU"], !text.isEmpty {
            guard let cpu = Int(text), cpu >= 0 else {
                throw CCLError(.invalidArgument, operation: "bind to a CPU", "CCL_CPU=\(text) is not a CPU number")
            }
            do { try CPUAffinity.bind(to: cpu) } catch {
                throw CCLError.system(error, operation: "bind to CPU \(cpu) (CCL_CPU)")
            }
        }
        launch = try LaunchEnvironment.parse(environment)
        (store, server) = try Rendezvous.joinJob(launch, environment: environment, timeout: timeout)
        world = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store, name: "world", timeout: timeout)
        nodes = try NodeLayout(group: world, nodeID: launch.nodeID ?? NodeIdentity.current(environment: environment))
    }

    /// Leaves the world group and, when a rank serves the store (not `ccl launch`), waits there
    /// until every rank is done with it (`Rendezvous.finish`).
    deinit {
        world.close()
        if environment["CCL_STORE_IN_LAUNCHER"] != "1" {
            try? Rendezvous.finish(store: store, server: server, rank: launch.rank, worldSize: launch.worldSize)
        }
    }

    /// Collective options from the environment over `base`; the command line's `--transport`
    /// and `--backend`, when not auto, win over `CCL_TRANSPORT` and `CCL_BACKEND`.
    func collectiveOptions(_ base: CollectiveOptions, transport: String = "auto", backend: String = "auto") throws -> CollectiveOptions {
        var options = try CollectiveOptions.fromEnvironment(environment, base: base)
        if options.tcp.token.isEmpty { options.tcp.token = launch.token ?? "" }
        options.launcher = launch.source
        if let forced = CollectiveOptions.Transport(rawValue: transport), forced != .auto { options.transport = forced }
        let requested = try BackendRequest.parse(backend, strict: options.request.strict, origin: "--backend")
        if !requested.preferred.isEmpty { options.request = requested }
        return options
    }

    /// The world's CPU communicator and the choice that made it.
    func communicator(_ base: CollectiveOptions, transport: String = "auto", backend: String = "auto") throws -> (
        communicator: any Communicator, decision: BackendChoice.Decision
    ) {
        try CPUCommunicatorFactory.make(
            group: world, nodes: nodes, options: collectiveOptions(base, transport: transport, backend: backend))
    }
}
