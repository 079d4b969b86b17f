import CCL
import CCLBackend
import CCLNCCL
import Foundation

/// `ccl gpu-check --ranks N --shared-gpu`: N NCCL ranks on GPU 0 (NCCL ≥ 2.30.7 with
/// `NCCL_MULTI_RANK_GPU_ENABLE=1`, time-sliced: correctness, not speed). Each rank makes the
/// world's communicator, all-reduces its rank + 1 (every element checked against N(N+1)/2), then
/// splits pairs of ranks out of it (`ncclCommSplit`, color rank / 2) and all-reduces in the pair.
/// One JSON line per rank and check.
struct GPUMultiRankCheck {
    let cuda: CUDADriver
    let environment: [String: String]

    func run() throws {
        let setup = try RankSetup()
        let rank = setup.world.rank, n = setup.world.worldSize
        let world = try NCCLBackend(environment: environment, timeout: .seconds(120)).make(
            group: setup.world, nodes: setup.nodes, device: .cuda(0))
        GPUCheck.emit(row("multirank_allreduce", rank, allReduce(world, value: rank + 1, expect: n * (n + 1) / 2)))
        guard let splittable = world as? any SplittableCommunicator else {
            return GPUCheck.emit(["check": "multirank_split", "rank": "\(rank)", "ok": "false", "error": "not splittable"])
        }
        let pair = (rank / 2 * 2)..<min(n, rank / 2 * 2 + 2)
        let group = try StatelessProcessGroup(
            rank: rank - pair.lowerBound, worldSize: pair.count, store: setup.world.jobStore, name: "pair\(rank / 2)",
            timeout: .seconds(120), globalRanks: Array(pair))
        let child = try splittable.split(into: group, color: rank / 2, key: rank % 2)
        GPUCheck.emit(row("multirank_split", rank, allReduce(child, value: rank + 1, expect: pair.map { $0 + 1 }.reduce(0, +))))
    }

    private func row(_ check: String, _ rank: Int, _ error: String?) -> [String: String] {
        ["check": check, "rank": "\(rank)", "ok": error == nil ? "true" : "false", "error": error ?? ""]
    }

    /// An int32 all-reduce (sum) of 1031 copies of `value` on the default stream; nil when every
    /// element came back as `expect`, else what differed.
    private func allReduce(_ communicator: any Communicator, value: Int, expect: Int) -> String? {
        let count = 1031, bytes = count * 4
        var pointer: CUDADriver.DevicePointer = 0
        defer { if pointer != 0 { _ = cuda.memFree(pointer) } }
        do {
            try cuda.check(cuda.memAlloc(&pointer, bytes), "cuMemAlloc")
            let values = [Int32](repeating: Int32(value), count: count)
            try cuda.check(values.withUnsafeBytes { cuda.memcpyHtoD(pointer, $0.baseAddress, bytes) }, "cuMemcpyHtoD")
            let buffer = DeviceBuffer(base: UnsafeMutableRawPointer(bitPattern: UInt(pointer)), bytes: bytes, device: .cuda(0))
            let stream = DeviceStream(device: .cuda(0), handle: nil)
            _ = try communicator.execute(
                CollectiveCall(.allReduce(.sum), dtype: .int32, count: count), input: buffer, output: buffer, on: stream)
            try cuda.check(cuda.streamSynchronize(nil), "cuStreamSynchronize")
            var back = [Int32](repeating: -1, count: count)
            try cuda.check(back.withUnsafeMutableBytes { cuda.memcpyDtoH($0.baseAddress, pointer, bytes) }, "cuMemcpyDtoH")
            guard let wrong = back.firstIndex(where: { $0 != Int32(expect) }) else { return nil }
            return "element \(wrong) is \(back[wrong]), expected \(expect)"
        } catch {
            return "\(error)"
        }
    }
}
