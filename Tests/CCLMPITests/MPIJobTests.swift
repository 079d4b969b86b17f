import CCLCollectiveAPI
import CCLCore
import CCLSystem
import CCLTestSupport
import Foundation
import Testing

@testable import CCLMPI

/// Real MPI jobs: `mpirun` starts `CCLTestWorker mpi` ranks that meet through `Rendezvous.joinJob`
/// (no store address given) and verify every op × dtype on the MPI backend, then on a layout's
/// tensor-parallel groups. The launchers and libraries are the real ones scripts/setup.sh
/// installs: Debian's Open MPI (`mpirun.openmpi`) and MPICH (`mpirun.mpich`), and MPICH 5 from
/// PyPI for the MPI-5 standard ABI (`libmpi_abi.so.1`).
@Suite(.serialized) struct MPIJobTests {
    enum Launcher {
        case openMPI, mpich
        /// MPICH 5's own `mpiexec` (the PyPI wheel), with `library` in `lib/` loaded.
        case mpich5(library: String)
    }

    /// Where scripts/setup.sh installs MPICH 5 (`CCL_TEST_MPICH5_PREFIX` overrides).
    static var mpich5Prefix: String {
        ProcessInfo.processInfo.environment["CCL_TEST_MPICH5_PREFIX"] ?? "/opt/swift-ccl/mpich-5.0.2"
    }

    /// Runs `words` (a launcher's command line) at the lowest CPU priority, with Open MPI's
    /// settings for root and for yielding while idle: waiting MPI ranks busy-poll, and the test
    /// suites that run beside this one on 2 cores must not starve (their bounds would fail).
    /// Its exit status and everything it printed (stdout and stderr).
    ///
    /// The job is waited for on a dispatch thread, not on one of Swift concurrency's threads (two
    /// here): a test blocked for seconds there would stall every other suite's tasks.
    static func shell(_ words: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: try blockingShell(words, environment: environment))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private static func blockingShell(_ words: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        let base = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_mpi_yield_when_idle": "1"]
        let child = try ChildProcess(
            executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "exec \"$@\" 2>&1", "sh", "nice", "-n", "19"] + words,
            environment: base.merging(environment) { _, new in new })
        while child.readLine() != nil {}
        return (child.waitForExit(), child.lines.joined(separator: "\n"))
    }

    /// Runs a job of `ranks` workers; its exit status and everything it printed (stdout and stderr).
    static func run(_ launcher: Launcher, ranks: Int, _ arguments: [String], environment: [String: String] = [:]) async throws -> (
        status: Int32, output: String
    ) {
        var extra = environment
        let command: [String]
        switch launcher {
        case .openMPI:
            command = ["mpirun.openmpi", "--oversubscribe", "-np", "\(ranks)"]
        case .mpich:
            command = ["mpirun.mpich", "-np", "\(ranks)"]
        case .mpich5(let library):
            extra["CCL_MPI_SO_PATH"] = "\(mpich5Prefix)/lib/\(library)"
            command = ["\(mpich5Prefix)/bin/mpiexec", "-n", "\(ranks)"]
        }
        return try await shell(["timeout", "120"] + command + [Worker.executable.path, "mpi"] + arguments, environment: extra)
    }

    /// Every rank finished every check, on the MPI backend of `family`.
    static func expectPassed(
        _ job: (status: Int32, output: String), ranks: Int, family: MPIFamily, tp: Int = 1, checks: Int = 64 * DType.allCases.count
    ) {
        #expect(job.status == 0, "\(job.output)")
        #expect(job.output.contains("MPI \(family.rawValue) "), "\(job.output)")
        for rank in 0..<ranks {
            #expect(job.output.contains("RANK \(rank) WORLD \(checks)"), "rank \(rank): \(job.output)")
            #expect(job.output.contains("RANK \(rank) DONE"), "rank \(rank): \(job.output)")
            if tp > 1 { #expect(job.output.contains("RANK \(rank) TP"), "rank \(rank): \(job.output)") }
        }
        #expect(!job.output.contains("ERROR"), "\(job.output)")
    }

    @Test("Open MPI, 1 to 4 ranks: every op × dtype, and the layout's tp groups at 4", arguments: [1, 2, 3, 4])
    func openMPI(ranks: Int) async throws {
        let tp = ranks == 4 ? 2 : 1
        Self.expectPassed(try await Self.run(.openMPI, ranks: ranks, ["tp=\(tp)"]), ranks: ranks, family: .openMPI, tp: tp)
    }

    @Test("MPICH under its own mpirun (Hydra): every op × dtype, and the tp groups at 4", arguments: [2, 4])
    func mpich(ranks: Int) async throws {
        let tp = ranks == 4 ? 2 : 1
        Self.expectPassed(try await Self.run(.mpich, ranks: ranks, ["tp=\(tp)"]), ranks: ranks, family: .mpich, tp: tp)
    }

    @Test(
        "calls above the largest MPI count go in pieces: every op × dtype right with pieces of 3 elements (CCL_MPI_MAX_COUNT=3), Open MPI 3 ranks and MPICH 2"
    )
    func pieces() async throws {
        let openMPI = try await Self.run(.openMPI, ranks: 3, ["counts=0,7,1023"], environment: ["CCL_MPI_MAX_COUNT": "3"])
        Self.expectPassed(openMPI, ranks: 3, family: .openMPI, checks: 48 * DType.allCases.count)
        let mpich = try await Self.run(.mpich, ranks: 2, ["counts=7,1023"], environment: ["CCL_MPI_MAX_COUNT": "3"])
        Self.expectPassed(mpich, ranks: 2, family: .mpich, checks: 32 * DType.allCases.count)
        // The setting reaches the backend: a bad one stops the job naming it.
        let bad = try await Self.run(.openMPI, ranks: 2, ["counts=7"], environment: ["CCL_MPI_MAX_COUNT": "0"])
        #expect(bad.status != 0 && bad.output.contains("CCL_MPI_MAX_COUNT=0"), "\(bad.output)")
    }

    @Test(
        "a receive that gets fewer elements than it asked for fails naming the sender, whole or in pieces (the pieces after a short one are not waited for)",
        arguments: ["", "4"])
    func shortReceive(maxCount: String) async throws {
        let job = try await Self.run(
            .openMPI, ranks: 2, ["shortrecv=5"], environment: maxCount.isEmpty ? [:] : ["CCL_MPI_MAX_COUNT": maxCount])
        #expect(job.output.contains("RANK 0 SENT 5"), "\(job.output)")
        // Whole: 5 of 11 arrive. In pieces of 4 the receive asks 4, 4, 3 and gets 4, then 1: it
        // ends there (a wait for the third piece would never end), counting over the pieces.
        #expect(job.output.contains("SHORT") && job.output.contains("rank 0 sent 5 elements, this receive expected 11"), "\(job.output)")
    }

    @Test("CCL_MPI_MAX_COUNT: a count in 1...2147483647 (the default); anything else is refused naming it")
    func maxCountSetting() throws {
        #expect(try MPIBackend.maxCount(in: [:]) == 2_147_483_647)
        #expect(try MPIBackend.maxCount(in: ["CCL_MPI_MAX_COUNT": "1"]) == 1)
        #expect(try MPIBackend.maxCount(in: ["CCL_MPI_MAX_COUNT": "2147483647"]) == 2_147_483_647)
        #expect(try MPIBackend.maxCount(in: ["CCL_MPI_MAX_COUNT": ""]) == 2_147_483_647)
        for bad in ["0", "-1", "2147483648", "9223372036854775807", "x", "nan", "1e3", " 5", String(repeating: "9", count: 10_000)] {
            let error = #expect(throws: CCLError.self) { _ = try MPIBackend.maxCount(in: ["CCL_MPI_MAX_COUNT": bad]) }
            #expect(error?.message.contains("CCL_MPI_MAX_COUNT=\(bad.prefix(40))") == true, "\(error?.message.prefix(200) ?? "")")
        }
    }

    @Test("CCL_MPI_THREAD_LEVEL asks MPI for a thread level (default single) and reads it back; a bad value is an error naming it")
    func threadLevel() async throws {
        let plain = try await Self.run(.openMPI, ranks: 2, ["counts=7"])
        Self.expectPassed(plain, ranks: 2, family: .openMPI, checks: 16 * DType.allCases.count)
        #expect(plain.output.contains("thread=single"), "\(plain.output)")
        let serialized = try await Self.run(.openMPI, ranks: 2, ["counts=7"], environment: ["CCL_MPI_THREAD_LEVEL": "serialized"])
        Self.expectPassed(serialized, ranks: 2, family: .openMPI, checks: 16 * DType.allCases.count)
        #expect(serialized.output.contains("thread=serialized"), "\(serialized.output)")
        // The standard ABI spells the levels 0, 1024, 2048, 4096.
        let standard = try await Self.run(
            .mpich5(library: "libmpi_abi.so.1"), ranks: 2, ["counts=7"], environment: ["CCL_MPI_THREAD_LEVEL": "multiple"])
        Self.expectPassed(standard, ranks: 2, family: .standardABI, checks: 16 * DType.allCases.count)
        #expect(standard.output.contains("thread=multiple"), "\(standard.output)")
        let bad = try await Self.run(.openMPI, ranks: 2, ["counts=7"], environment: ["CCL_MPI_THREAD_LEVEL": "sometimes"])
        #expect(bad.status != 0, "\(bad.output)")
        #expect(bad.output.contains("CCL_MPI_THREAD_LEVEL=sometimes is not single, funneled, serialized or multiple"), "\(bad.output)")
    }

    @Test("the MPI-5 standard ABI (MPICH 5's libmpi_abi.so.1): every op × dtype, and the tp groups")
    func standardABI() async throws {
        Self.expectPassed(
            try await Self.run(.mpich5(library: "libmpi_abi.so.1"), ranks: 4, ["tp=2"]), ranks: 4, family: .standardABI, tp: 2)
    }

    @Test("MPICH 5's native library (libmpi.so.12) keeps MPICH's constants")
    func mpich5Native() async throws {
        Self.expectPassed(try await Self.run(.mpich5(library: "libmpi.so.12"), ranks: 2, []), ranks: 2, family: .mpich)
    }

    /// Four ranks on two nodes finished every check (16 per dtype: counts=7) on shm inside and MPI between.
    static func expectHierarchical(_ job: (status: Int32, output: String)) {
        #expect(job.status == 0, "\(job.output)")
        for rank in 0..<4 {
            #expect(job.output.contains("RANK \(rank) TRANSPORT hierarchical (2 nodes: shm inside, mpi between)"), "\(job.output)")
            #expect(job.output.contains("RANK \(rank) WORLD \(16 * DType.allCases.count)"), "\(job.output)")
            #expect(job.output.contains("RANK \(rank) DONE"), "\(job.output)")
        }
    }

    @Test("by default under mpirun, ranks on two nodes use shared memory inside each node and MPI between them")
    func hierarchicalDefault() async throws {
        // Two "nodes" on this machine: Open MPI's MPMD form gives each half its own CCL_NODE_ID.
        let worker = Worker.executable.path
        let words = [
            "timeout", "120", "mpirun.openmpi", "--oversubscribe", "-np", "2", "-x", "CCL_NODE_ID=a", worker, "mpi", "backend=auto",
            "counts=7", ":", "-np", "2", "-x", "CCL_NODE_ID=b", worker, "mpi", "backend=auto", "counts=7",
        ]
        Self.expectHierarchical(try await Self.shell(words))
    }

    /// Runs `ccl` with `arguments` under `mpirun.openmpi -np ranks`; exit status and output.
    static func ccl(ranks: Int, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let ccl = Worker.executable.deletingLastPathComponent().appendingPathComponent("ccl").path
        let words = ["timeout", "300", "mpirun.openmpi", "--oversubscribe", "-np", "\(ranks)", ccl] + arguments
        let job = try await Self.shell(words)
        return job
    }

    @Test("mpirun -np 2 ccl bench allreduce --backend mpi: one rank per process, every element checked")
    func benchUnderMPI() async throws {
        let job = try await Self.ccl(ranks: 2, ["bench", "allreduce", "--backend", "mpi", "--sizes", "8,64K", "--target-ms", "20"])
        #expect(job.status == 0, "\(job.output)")
        #expect(job.output.contains("# backend: mpi (requested by --backend=mpi)"), "\(job.output)")
        #expect(job.output.contains("2 ranks, transport mpi (Open MPI, 2 of 2 MPI ranks)"), "\(job.output)")
        let rows = job.output.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("float32") && $0.contains("sum") }
        #expect(rows.count == 2, "\(job.output)")
        // The #wrong column (every element of every iteration verified) is 0 in every row.
        #expect(rows.allSatisfy { $0.split(separator: " ").dropLast().last == "0" }, "\(job.output)")
    }

    @Test("mpirun -np 3 ccl doctor: the ranks meet with no store address given, and rank 0 prints one table")
    func doctorUnderMPI() async throws {
        let job = try await Self.ccl(ranks: 3, ["doctor"])
        #expect(job.status == 0, "\(job.output)")
        #expect(job.output.contains("job                       3 ranks on 1 node (Open MPI)"), "\(job.output)")
        #expect(job.output.contains("swift-ccl version         \(SwiftCCLVersion.current) on every rank"), "\(job.output)")
        #expect(job.output.components(separatedBy: "swift-ccl version").count == 2, "one table: \(job.output)")
    }

    /// Whether Slurm answers here (scripts/setup.sh starts one when it runs as root).
    static let slurmAvailable: Bool = {
        guard let status = try? blockingShell(["timeout", "20", "srun", "-n", "1", "true"], environment: [:]).status else { return false }
        return status == 0
    }()

    @Test(
        "srun -n 2 (Slurm's PMI-2, no mpirun): ccl bench --backend mpi on MPICH with every element checked, and ccl doctor's one table",
        .enabled(if: slurmAvailable, "needs a working Slurm: scripts/setup.sh starts slurmctld and slurmd as root"))
    func underSrun() async throws {
        let ccl = Worker.executable.deletingLastPathComponent().appendingPathComponent("ccl").path
        let srun = ["timeout", "120", "srun", "-n", "2", "--oversubscribe", ccl]
        let bench = try await Self.shell(srun + ["bench", "allreduce", "--backend", "mpi", "--sizes", "8,1K", "--target-ms", "20"])
        #expect(bench.status == 0, "\(bench.output)")
        #expect(bench.output.contains("2 ranks, transport mpi (MPICH, 2 of 2 MPI ranks)"), "\(bench.output)")
        let rows = bench.output.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("float32") && $0.contains("sum") }
        #expect(rows.count == 2 && rows.allSatisfy { $0.split(separator: " ").dropLast().last == "0" }, "\(bench.output)")
        let doctor = try await Self.shell(srun + ["doctor"])
        #expect(doctor.status == 0, "\(doctor.output)")
        #expect(doctor.output.contains("job                       2 ranks on 1 node (PMI)"), "\(doctor.output)")
        #expect(doctor.output.components(separatedBy: "swift-ccl version").count == 2, "one table: \(doctor.output)")
    }

    @Test("mpirun -np 4 ccl demo: TP 2 × PP 2 across the job mpirun started, checked against one process")
    func demoUnderMPI() async throws {
        let job = try await Self.ccl(ranks: 4, ["demo", "--tp", "2", "--pp", "2", "--steps", "3"])
        #expect(job.status == 0, "\(job.output)")
        #expect(job.output.contains("all 3 steps match the single-process model"), "\(job.output)")
    }

    /// A job of `mpi` workers (`arguments`) under Open MPI's mpirun in host A, `slots` ranks on
    /// each host. Open MPI starts its daemon on a remote host with "AGENT HOST COMMAND": the agent
    /// runs the command in host B's namespace (with `ownSharedMemoryOnB`, in a mount namespace
    /// with a /dev/shm of its own), and anything else where it is (host A). Both hosts share one
    /// host name, so Open MPI would take them for one node and use its shared-memory transport
    /// between them (which crashes across the namespaces): TCP only, as between two machines.
    static func acrossHosts(_ hosts: TestHosts, slots: Int, _ arguments: [String], ownSharedMemoryOnB: Bool = false) async throws -> (
        status: Int32, output: String
    ) {
        let agent = FileManager.default.temporaryDirectory.appendingPathComponent("ccl-netns-agent-\(getpid())-\(hosts.b).sh").path
        let onB = ownSharedMemoryOnB ? "unshare -m /bin/sh -c \"mount -t tmpfs tmpfs /dev/shm && $*\"" : "/bin/sh -c \"$*\""
        let script = """
            #!/bin/sh
            host=$1; shift
            if [ "$host" = "\(hosts.addressB)" ]; then exec ip netns exec \(hosts.b) \(onB); fi
            exec /bin/sh -c "$*"
            """
        try script.write(toFile: agent, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: agent) }
        #expect(chmod(agent, 0o755) == 0)
        let subnet = hosts.addressA.split(separator: ".").prefix(3).joined(separator: ".") + ".0/24"
        let words = [
            "timeout", "120", "ip", "netns", "exec", hosts.a, "mpirun.openmpi", "--oversubscribe", "--mca", "plm_rsh_agent", agent,
            "--mca", "oob_tcp_if_include", subnet, "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", subnet, "--host",
            "\(hosts.addressA):\(slots),\(hosts.addressB):\(slots)", "-np", "\(2 * slots)", Worker.executable.path, "mpi",
        ]
        return try await shell(words + arguments)
    }

    @Test(
        "Open MPI across two network-namespace hosts: mpirun reaches host B through an rsh agent; shm inside, MPI between",
        .enabled(if: TestHosts.available, "needs root and iproute2 to create network namespaces (ip netns add)"))
    func twoHosts() async throws {
        let hosts = try TestHosts(tag: 7)
        defer { hosts.tearDown() }
        Self.expectHierarchical(try await Self.acrossHosts(hosts, slots: 2, ["backend=auto", "counts=7"]))
    }

    @Test(
        "the watchdog names a stalled rank on another node from its report through the store (host B has its own /dev/shm)",
        .enabled(if: TestHosts.available, "needs root and iproute2 to create network namespaces (ip netns add)"))
    func watchdogAcrossHosts() async throws {
        let hosts = try TestHosts(tag: 8)
        defer { hosts.tearDown() }
        // Host B's rank has a /dev/shm of its own: no flight recorder of B is visible on A.
        let job = try await Self.acrossHosts(
            hosts, slots: 1, ["counts=7", "dtypes=float32", "stall=1", "timeout=2"], ownSharedMemoryOnB: true)
        #expect(job.status == 0, "\(job.output)")
        #expect(
            job.output.contains(
                "flight recorders of the group's ranks: allReduce(sum) float32 × 1 #1 on group world [0 1]: rank 1 never entered it (it has recorded no collective); rank 0 waiting since"
            ),
            "\(job.output)")
    }

    @Test("a rank killed mid-job fails the job, and Open MPI's mpirun names its rank")
    func killedRankOpenMPI() async throws {
        let job = try await Self.run(.openMPI, ranks: 3, ["counts=7", "killself=1"])
        #expect(job.status != 0, "\(job.output)")
        #expect(job.output.contains("KILLING"), "\(job.output)")
        #expect(job.output.contains("process rank 1 with PID"), "\(job.output)")
        #expect(!job.output.contains("RANK 0 DONE"), "\(job.output)")
    }

    @Test("a rank killed mid-job fails the job under MPICH's mpirun too")
    func killedRankMPICH() async throws {
        let job = try await Self.run(.mpich, ranks: 3, ["counts=7", "killself=1"])
        #expect(job.status != 0, "\(job.output)")
        #expect(job.output.contains("KILLING pid "), "\(job.output)")
        // Hydra names a process by pid, but the first one it reaps: that can be a rank it killed
        // itself while cleaning up, not the one that died first (seen here), so only Open MPI's
        // launcher reliably names the dead rank.
        #expect(job.output.contains("BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES"), "\(job.output)")
        #expect(job.output.contains("Killed (signal 9)"), "\(job.output)")
        #expect(!job.output.contains("RANK 0 DONE"), "\(job.output)")
    }

    @Test("an MPI library that is missing fails every rank naming the path")
    func missingLibrary() async throws {
        let job = try await Self.run(.openMPI, ranks: 2, ["counts=7"], environment: ["CCL_MPI_SO_PATH": "/nonexistent/libmpi.so.40"])
        #expect(job.status != 0, "\(job.output)")
        #expect(job.output.contains("MPI not loaded from CCL_MPI_SO_PATH=/nonexistent/libmpi.so.40"), "\(job.output)")
    }

    @Test("Open MPI's library under MPICH's mpirun: each rank is a world of its own, which is an error naming both")
    func libraryOfAnotherLauncher() async throws {
        let job = try await Self.run(.mpich, ranks: 2, ["counts=7"], environment: ["CCL_MPI_SO_PATH": "libmpi.so.40"])
        #expect(job.status != 0, "\(job.output)")
        #expect(
            job.output.contains("MPI_COMM_WORLD has 1 rank but the launcher started 2 (PMI_SIZE)"), "\(job.output)")
        #expect(job.output.contains("(Open MPI, "), "\(job.output)")
        #expect(job.output.contains("initialise MPI (rank 1)"), "\(job.output)")
    }

    @Test("a library of the wrong family for its constants is refused at load, before a handle reaches MPI")
    func wrongFamily() async throws {
        let error = #expect(throws: CCLError.self) {
            _ = try MPILibrary.load(environment: ["CCL_MPI_SO_PATH": "libmpich.so.12"], family: .openMPI)
        }
        let text = error?.description ?? ""
        #expect(text.contains("was taken for Open MPI"), "\(text)")
        #expect(text.contains("ompi_mpi_comm_world"), "\(text)")
    }

    @Test("a call blocked in MPI past the timeout is reported by the watchdog, naming the call; the job then goes on")
    func watchdogReports() async throws {
        let job = try await Self.run(.openMPI, ranks: 2, ["counts=7", "dtypes=float32", "stall=1", "timeout=2"])
        #expect(job.status == 0, "\(job.output)")
        #expect(
            job.output.contains("group world, rank 0: call #2, allReduce(sum) of 1 float32, has been inside MPI for at least"),
            "\(job.output)")
        // The flight recorders on this node name the rank that has not entered it.
        #expect(
            job.output.contains(
                "flight recorders on this node: allReduce(sum) float32 × 1 #1 on group world [0 1]: rank 1 never entered it (it has recorded no collective); rank 0 waiting since"
            ),
            "\(job.output)")
        #expect(job.output.contains("RANK 0 DONE"), "\(job.output)")
    }

    @Test("CCL_MPI_ABORT_ON_TIMEOUT=1: the watchdog ends the job with MPI_Abort")
    func watchdogAborts() async throws {
        let job = try await Self.run(
            .openMPI, ranks: 2, ["counts=7", "dtypes=float32", "stall=1", "timeout=2"], environment: ["CCL_MPI_ABORT_ON_TIMEOUT": "1"])
        #expect(job.status != 0, "\(job.output)")
        #expect(job.output.contains("ending the job (MPI_Abort, CCL_MPI_ABORT_ON_TIMEOUT=1)"), "\(job.output)")
        // (Open MPI's own "MPI_ABORT was invoked" help text is not always printed: under load its
        // launcher can fail to unpack it, ORTE_ERROR_LOG … show_help.c.)
        #expect(!job.output.contains("RANK 0 DONE"), "\(job.output)")
    }

    @Test("outside mpirun the backend is unavailable without opening MPI: a singleton world is not a group")
    func notUnderMPI() {
        let probe = MPIBackend(environment: [:]).probe(.init(device: .host, worldSize: 2, nodeCount: 2))
        #expect(!probe.isAvailable)
        #expect(probe.description.contains("not started by mpirun or srun"), "\(probe)")
    }
}
