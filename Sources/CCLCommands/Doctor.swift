import CCL
import CCLCollectives
import CCLMPI
import CCLNCCL
import CCLQueue
import CCLSystem
import Foundation

/// The checks of `ccl doctor` on this node: each says ok, warn or fail, what it found, and the fix
/// for anything not ok.
struct Doctor {
    enum Status: String, Codable, Comparable {
        case ok, warn, fail
        static func < (a: Status, b: Status) -> Bool { a.order < b.order }
        private var order: Int { self == .ok ? 0 : self == .warn ? 1 : 2 }
    }

    struct Row: Codable {
        var check: String
        var status: Status
        var found: String
        var fix: String?
    }

    let environment: [String: String]
    /// Local ranks to plan for (the launcher's local size, or `--nproc`).
    let localRanks: Int

    /// Every check; `store` false leaves the store out (a job's ranks check it by meeting there).
    func rows(store withStore: Bool = true) -> [Row] {
        [sharedMemory(), cpus(), wakeUpFloor(), host()] + (withStore ? [store()] : []) + [token(), mpi(), cudaAndNCCL()]
    }

    /// /dev/shm against what this node's ranks will map: one collectives arena for the local
    /// ranks and one broadcast-queue ring, with the configured sizes.
    func sharedMemory() -> Row {
        let check = "shared memory (\(SharedMemorySegment.directory))"
        guard let free = SharedMemorySegment.freeBytes() else {
            return Row(check: check, status: .fail, found: "cannot read its size (statvfs)", fix: "mount a tmpfs on /dev/shm")
        }
        let needed: Int
        do {
            let collectives = try CollectiveOptions.fromEnvironment(environment)
            let queue = QueueOptions()
            needed = try collectives.shm.arenaBytes(worldSize: localRanks) + queue.ringBytes(readers: max(1, localRanks - 1))
        } catch {
            return Row(
                check: check, status: .fail, found: "the settings cannot be used: \(error.message)", fix: "correct the CCL_SHM_* settings")
        }
        let found = "\(Self.bytes(free)) free; \(localRanks) local rank\(localRanks == 1 ? " needs" : "s need") \(Self.bytes(needed))"
        if free < needed {
            return Row(
                check: check, status: .fail, found: found,
                fix: "raise it (docker run --shm-size=…, or mount -o remount,size=… /dev/shm), or lower CCL_SHM_SLOT_BYTES")
        }
        if free < 2 * needed {
            return Row(check: check, status: .warn, found: found, fix: "leave room for a second group: raise /dev/shm")
        }
        return Row(check: check, status: .ok, found: found)
    }

    /// CPUs this process may run on against the local ranks.
    func cpus() -> Row {
        let count = CPUAffinity.allowedCPUs().count
        let found = "\(count) CPU\(count == 1 ? "" : "s") for \(localRanks) local rank\(localRanks == 1 ? "" : "s")"
        guard localRanks <= count else {
            return Row(
                check: "CPUs", status: .warn, found: found,
                fix:
                    "ranks share CPUs: swift-ccl's waiters sleep rather than spin, but every call waits for a CPU; start fewer ranks per node"
            )
        }
        return Row(check: "CPUs", status: .ok, found: found)
    }

    /// How long a thread asleep in `FUTEX_WAIT` takes to run again after `FUTEX_WAKE` (the floor
    /// under every sleeping waiter's wake-up: the queue's readers, idle collectives): the median
    /// of 7 rounds of 20 ms asleep.
    func wakeUpFloor() -> Row {
        var samples: [UInt64] = []
        for _ in 0..<7 {
            let probe = WakeProbe.armed()
            usleep(20_000)
            guard let sample = probe.wake() else {
                return Row(
                    check: "wake-up floor", status: .fail, found: "a thread woken from FUTEX_WAIT did not run within 5 s",
                    fix: "the node is overloaded or its scheduler starves threads: check the load (top)")
            }
            samples.append(sample)
        }
        let median = samples.sorted()[samples.count / 2]
        let found = "\((Double(median) / 100).rounded() / 10) µs (median of 7 wake-ups after 20 ms asleep)"
        guard median < 200_000 else {
            return Row(
                check: "wake-up floor", status: .warn, found: found,
                fix:
                    "slow wake-ups from sleep (a VM without halt-polling?): waiters that sleep answer late; give the ranks CPUs of their own"
            )
        }
        return Row(check: "wake-up floor", status: .ok, found: found)
    }

    /// The host's name and addresses.
    func host() -> Row {
        let addresses = NetworkInterfaces.addresses().map { "\($0.interface) \($0.address)" }
        let route = NetworkInterfaces.firstExternalIPv4()
        return Row(
            check: "host", status: route == nil ? .warn : .ok,
            found: "\(NodeIdentity.hostName()): " + addresses.joined(separator: ", "),
            fix: route == nil ? "no address other nodes can reach: only loopback (fine on one node)" : nil)
    }

    /// The job's store, when the environment names one: reachable, and taking this token.
    func store() -> Row {
        let launch = try? LaunchEnvironment.parse(environment)
        guard let port = launch?.masterPort else {
            return Row(
                check: "store", status: .warn, found: "no store address (MASTER_ADDR/MASTER_PORT or CCL_MASTER_*)",
                fix: "fine for one process, `ccl launch` and mpirun; otherwise set MASTER_ADDR and MASTER_PORT")
        }
        let host = launch?.masterAddress ?? "127.0.0.1"
        let token = launch?.token ?? ""
        do {
            let client = try TCPStoreClient(host: host, port: port, token: token, timeout: .seconds(3))
            _ = try client.check(["doctor/none"])
            return Row(check: "store", status: .ok, found: "\(host):\(port) answers and takes the token")
        } catch {
            let fix =
                error.code == .unauthenticated
                ? "the token differs from the store's: give every rank the same CCL_TOKEN"
                : "start the store (rank 0 serves it) or correct MASTER_ADDR/MASTER_PORT; a firewall?"
            return Row(check: "store", status: .fail, found: "\(host):\(port): \(error.message)", fix: fix)
        }
    }

    func token() -> Row {
        guard let token = environment["CCL_TOKEN"], !token.isEmpty else {
            return Row(
                check: "token", status: .warn, found: "CCL_TOKEN is not set",
                fix: "set one secret for every rank (ccl launch and mpirun make one for you)")
        }
        return Row(check: "token", status: .ok, found: "CCL_TOKEN set (\(token.utf8.count) bytes)")
    }

    /// MPI: found or why not; a failure only when the job was started by mpirun.
    func mpi() -> Row {
        do {
            let library = try MPILibrary.load(environment: environment)
            return Row(check: "MPI", status: .ok, found: "\(library.family.rawValue): \(library.shortVersion) at \(library.path)")
        } catch {
            let underMPI = MPIBackend.launchedByMPI(environment)
            return Row(
                check: "MPI", status: underMPI ? .fail : .warn, found: error.message,
                fix: underMPI ? "this job was started by mpirun: set CCL_MPI_SO_PATH to its libmpi" : "needed only for the mpi backend")
        }
    }

    /// The CUDA driver, its GPUs with their PCI bus ids, and NCCL.
    func cudaAndNCCL() -> Row {
        let cuda: CUDADriver
        do { cuda = try CUDADriver.load(environment: environment) } catch {
            return Row(check: "CUDA and NCCL", status: .warn, found: error.message, fix: "needed only for CUDA buffers (the nccl backend)")
        }
        var gpus: [String] = []
        do throws(CCLError) {
            for ordinal in 0..<(try cuda.deviceCount()) {
                gpus.append("cuda:\(ordinal) \(try cuda.name(ordinal: ordinal)) \(try cuda.pciBusId(ordinal: ordinal))")
            }
        } catch {
            return Row(check: "CUDA and NCCL", status: .fail, found: error.message, fix: "check the driver (nvidia-smi)")
        }
        do {
            let nccl = try NCCLLibrary.load(environment: environment)
            return Row(
                check: "CUDA and NCCL", status: gpus.isEmpty ? .warn : .ok,
                found: "NCCL \(nccl.version) at \(nccl.path); \(gpus.count) GPU\(gpus.count == 1 ? "" : "s")"
                    + (gpus.isEmpty ? "" : ": " + gpus.joined(separator: ", ")),
                fix: gpus.isEmpty ? "the driver sees no GPU (CUDA_VISIBLE_DEVICES?)" : nil)
        } catch {
            return Row(
                check: "CUDA and NCCL", status: .warn, found: error.message, fix: "pip install nvidia-nccl-cu12, or set CCL_NCCL_SO_PATH")
        }
    }

    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
