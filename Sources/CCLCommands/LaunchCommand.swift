import ArgumentParser
import CCL
import CCLSystem
import Foundation

/// `ccl launch`: runs a program as the ranks of this node, with the rendezvous store on node 0.
///
/// Every rank gets CCL_RANK, CCL_WORLD_SIZE, CCL_LOCAL_RANK, CCL_LOCAL_WORLD_SIZE,
/// CCL_NODE_RANK, CCL_NNODES, CCL_MASTER_ADDR, CCL_MASTER_PORT and CCL_TOKEN (given, taken from
/// CCL_TOKEN, or generated; passed only through the environment), and CCL_STORE_IN_LAUNCHER=1
/// (the store runs here, so rank 0 does not start one: see `Rendezvous.join`). Output lines get a
/// `[rank R]` prefix; SIGINT and SIGTERM are passed to the ranks; when one rank fails the others
/// are stopped within 2 s and the launcher exits non-zero with a summary.
struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch", abstract: "Run a program as the ranks of this node (with the rendezvous store on node 0).")

    @Option(help: "Ranks on this node.") var nprocPerNode: Int
    @Option(help: "Number of nodes.") var nnodes: Int = 1
    @Option(help: "This node's index, 0..<nnodes.") var nodeRank: Int = 0
    @Option(help: "Address of node 0, where the store listens.") var masterAddr: String = "127.0.0.1"
    @Option(help: "Port of the store on node 0 (0: pick one; single node only).") var masterPort: Int = 0
    @Option(help: "Shared secret (default: CCL_TOKEN, or a fresh random one on a single node).") var token: String?
    @Argument(parsing: .captureForPassthrough, help: "-- program and its arguments") var program: [String] = []

    /// The most ranks one launcher starts (each is a process with pipes; a typo like 100000
    /// must not start growing before it is refused).
    static let maxRanksPerNode = 1024

    func validate() throws {
        guard (1...Self.maxRanksPerNode).contains(nprocPerNode) else {
            throw ValidationError("--nproc-per-node must be in 1...\(Self.maxRanksPerNode), got \(nprocPerNode)")
        }
        let (world, overflow) = nprocPerNode.multipliedReportingOverflow(by: max(1, nnodes))
        guard !overflow, world <= LaunchEnvironment.maxWorldSize else {
            throw ValidationError(
                "--nproc-per-node \(nprocPerNode) × --nnodes \(nnodes) is above the limit of \(LaunchEnvironment.maxWorldSize) ranks")
        }
        guard nnodes >= 1, (0..<nnodes).contains(nodeRank) else {
            throw ValidationError("--node-rank \(nodeRank) must be in 0..<--nnodes \(nnodes)")
        }
        guard (0...65535).contains(masterPort), nnodes == 1 || masterPort != 0 else {
            throw ValidationError("--master-port must be 1...65535 when there are several nodes (0 picks one on a single node)")
        }
        guard !command.isEmpty else { throw ValidationError("give the program after --, e.g. ccl launch --nproc-per-node 2 -- ./worker") }
    }

    var command: [String] { program.first == "--" ? Array(program.dropFirst()) : program }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let secret = token ?? environment["CCL_TOKEN"].flatMap({ $0.isEmpty ? nil : $0 }) ?? (nnodes == 1 ? Self.randomToken() : nil)
        else {
            throw ValidationError("with several nodes every launcher needs the same token: pass --token or set CCL_TOKEN")
        }
        // Node 0 hosts the store for the whole job.
        var server: TCPStoreServer?
        var port = masterPort
        if nodeRank == 0 {
            let host = masterAddr.hasPrefix("[") ? String(masterAddr.dropFirst().dropLast()) : masterAddr
            let started = try TCPStoreServer(host: host, port: masterPort, token: secret)
            port = started.port
            server = started
        }
        let environments = Self.rankEnvironments(
            base: environment, nprocPerNode: nprocPerNode, nnodes: nnodes, nodeRank: nodeRank, masterAddress: masterAddr, port: port,
            token: secret)
        try Self.runRanks(Launcher(program: command, environments: environments)) { server?.close() }
    }

    /// What every rank of this node gets: its place in the job, the master, the token, and
    /// CCL_STORE_IN_LAUNCHER=1 (the store runs in the launcher), over `base`.
    static func rankEnvironments(
        base: [String: String], nprocPerNode: Int, nnodes: Int, nodeRank: Int, masterAddress: String, port: Int, token: String
    ) -> [[String: String]] {
        (0..<nprocPerNode).map { local in
            var env = base
            env["CCL_RANK"] = "\(nodeRank * nprocPerNode + local)"
            env["CCL_WORLD_SIZE"] = "\(nnodes * nprocPerNode)"
            env["CCL_LOCAL_RANK"] = "\(local)"
            env["CCL_LOCAL_WORLD_SIZE"] = "\(nprocPerNode)"
            env["CCL_NODE_RANK"] = "\(nodeRank)"
            env["CCL_NNODES"] = "\(nnodes)"
            env["CCL_MASTER_ADDR"] = masterAddress
            env["CCL_MASTER_PORT"] = "\(port)"
            env["CCL_TOKEN"] = token
            env["CCL_STORE_IN_LAUNCHER"] = "1"
            return env
        }
    }

    /// Runs the ranks with SIGINT/SIGTERM forwarded, calls `done`, prints the launcher's summary
    /// and exits non-zero (ExitCode) when a rank failed.
    static func runRanks(_ launcher: Launcher, done: () -> Void) throws {
        // Ranks must die of SIGINT/SIGTERM even when this launcher was started with them ignored
        // or blocked: both are inherited through exec.
        SignalDisposition.restoreDefaults([SIGINT, SIGTERM])
        var signals: [any DispatchSourceSignal] = []
        let (status, summary) = try launcher.run { signals = forwardSignals(to: launcher) }
        withExtendedLifetime(signals) {}
        done()
        for line in summary { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        if status != 0 { throw ExitCode(status) }
    }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
    }

    /// SIGINT/SIGTERM to the launcher go to every rank (which then exit, ending the launch).
    static func forwardSignals(to launcher: Launcher) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            ProcessSignal.ignore(number)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { launcher.interrupt(signal: number) }
            source.resume()
            return source
        }
    }
}
