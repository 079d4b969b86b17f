import CCLShims
import Glibc

/// Which CPUs this process may use, and pinning to one (Open MPI binds each rank to a core when
/// there are no more ranks than cores; so do `ccl bench` and `ccl demo`).
public enum CPUAffinity {
    /// CPUs in this process's affinity mask, ascending (empty when the kernel does not say).
    public static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = cpus.withUnsafeMutableBufferPointer { ccl_allowed_cpus($0.baseAddress, Int32($0.count)) }
        return count > 0 ? cpus.prefix(Int(count)).map(Int.init) : []
    }

    /// CPUs online on this machine (not this process's mask, which pinning narrows to one).
    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Pins this process's calling thread (and threads it starts later) to `cpu`.
    public static func bind(to cpu: Int) throws(SystemError) {
        _ = try sysCall("sched_setaffinity") { ccl_bind_to_cpu(Int32(cpu)) }
    }
}
