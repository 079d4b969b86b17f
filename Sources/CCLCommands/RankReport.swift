import CCL
import CCLNCCL
import CCLSystem
import Foundation

/// What one rank of a job tells `ccl doctor`'s rank 0: where it runs, what it runs, how it is
/// configured, its GPU, its clock against rank 0's, and its node's checks.
struct RankReport: Codable {
    var rank: Int
    var host: String
    var node: String
    var version: String
    /// The size of the executable (different builds of one version differ in it, mostly).
    var build: Int
    /// `CCL_*` settings that every rank should share (per-rank ones left out); secrets as a hash.
    var settings: [String: String]
    /// The rank's GPU (CUDA ordinal = local rank), or why it has none.
    var gpu: GPUPlacement?
    var gpuNote: String
    /// Seconds this rank's clock (CLOCK_REALTIME) is ahead of rank 0's, and the uncertainty.
    var clockOffset: Double
    var clockUncertainty: Double
    var rows: [Doctor.Row]

    /// Variables set per rank or per node by launchers, which legitimately differ.
    static let perRank: Set<String> = [
        "CCL_RANK", "CCL_LOCAL_RANK", "CCL_NODE_RANK", "CCL_CPU", "CCL_HOST", "CCL_NODE_ID", "CCL_WORLD_SIZE", "CCL_LOCAL_WORLD_SIZE",
        "CCL_NNODES",
    ]
    static let secrets: Set<String> = ["CCL_TOKEN"]

    /// The settings of `environment` that ranks should share, secrets replaced by a short hash.
    static func settings(_ environment: [String: String]) -> [String: String] {
        var shared: [String: String] = [:]
        for (key, value) in environment where key.hasPrefix("CCL_") && !perRank.contains(key) {
            shared[key] = secrets.contains(key) ? "(secret, hash \(hash(value)))" : value
        }
        return shared
    }

    /// FNV-1a of `text`, 8 hex digits: tells two secrets apart without showing either.
    static func hash(_ text: String) -> String {
        var value: UInt32 = 2_166_136_261
        for byte in text.utf8 { value = (value ^ UInt32(byte)) &* 16_777_619 }
        return String(value, radix: 16)
    }

    /// The GPU a rank with `localRank` uses by default: CUDA ordinal = local rank, or 0 when the
    /// rank sees one GPU (its own `CUDA_VISIBLE_DEVICES`); or why none.
    static func gpu(localRank: Int, node: String, environment: [String: String]) -> (GPUPlacement?, String) {
        do {
            let cuda = try CUDADriver.load(environment: environment)
            let count = try cuda.deviceCount()
            let ordinal = count == 1 ? 0 : localRank
            guard ordinal < count else {
                return (nil, "local rank \(localRank) has no GPU: \(count) visible (CUDA_VISIBLE_DEVICES?)")
            }
            return (GPUPlacement(node: node, busId: try cuda.pciBusId(ordinal: ordinal), ordinal: ordinal), "")
        } catch {
            return (nil, error.message)
        }
    }

    /// The size of this process's executable, 0 when it cannot be read.
    static func executableBytes() -> Int {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }
}
