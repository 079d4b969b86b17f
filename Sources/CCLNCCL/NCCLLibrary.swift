import CCLCollectiveAPI
import CCLCore
import CCLNCCLShims
import CCLSystem
import Foundation

/// NCCL (`libnccl.so.2`), opened at run time: its version and the functions swift-ccl calls, all
/// resolved when it loads (vLLM's `NCCLLibrary` in `pynccl_wrapper.py`, with one signature table).
///
/// Search order: `CCL_NCCL_SO_PATH`, then `VLLM_NCCL_SO_PATH` (the first one set is used alone,
/// see `DynamicLibrary`), then the pip wheels' layout (`nvidia/nccl/lib/libnccl.so.2` under the
/// site-packages of the `python3` on PATH: nvidia-nccl-cu12 and -cu13, and torch's dependency,
/// install there), then the system loader.
///
/// Threading: the functions are NCCL's, with NCCL's rules (one thread per communicator).
/// Ownership: keep the library alive while any communicator made with it exists.
package final class NCCLLibrary: @unchecked Sendable {
    /// The oldest NCCL swift-ccl accepts: `ncclCommSplit` (sub-groups) arrived in 2.18.
    package static let minimumVersion = NCCLVersion(major: 2, minor: 18, patch: 0)
    package static let variables = ["CCL_NCCL_SO_PATH", "VLLM_NCCL_SO_PATH"]

    private let library: DynamicLibrary
    package let version: NCCLVersion
    /// The file the loader mapped.
    package let path: String

    typealias Result = Int32
    let getVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let getUniqueId: @convention(c) (UnsafeMutablePointer<ccl_nccl_unique_id>) -> Result
    /// Called through `ccl_nccl_comm_init_rank_config` (the unique id goes by value).
    let commInitRankConfig: UnsafeMutableRawPointer
    let commGetAsyncError: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Result
    let commAbort: @convention(c) (OpaquePointer?) -> Result
    let commDestroy: @convention(c) (OpaquePointer?) -> Result
    let commSplit:
        @convention(c) (OpaquePointer?, Int32, Int32, UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<ccl_nccl_config>?) ->
            Result
    let getErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let getLastError: @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    let allReduce:
        @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) ->
            Result
    let allGather:
        @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, OpaquePointer?, UnsafeMutableRawPointer?) -> Result
    let reduceScatter:
        @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) ->
            Result
    let broadcast:
        @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) ->
            Result
    let send: @convention(c) (UnsafeRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) -> Result
    let recv: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) -> Result
    let groupStart: @convention(c) () -> Result
    let groupEnd: @convention(c) () -> Result
    /// Symmetric-memory windows, when this NCCL has them (2.27+); nil otherwise.
    package let windows: NCCLWindowCalls?

    /// The symbols every load resolves, in the order the initialiser reads them.
    package static let symbols = [
        "ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRankConfig", "ncclCommGetAsyncError", "ncclCommAbort", "ncclCommDestroy",
        "ncclCommSplit", "ncclGetErrorString", "ncclGetLastError", "ncclAllReduce", "ncclAllGather", "ncclReduceScatter",
        "ncclBroadcast", "ncclSend", "ncclRecv", "ncclGroupStart", "ncclGroupEnd",
    ]

    /// Loads NCCL from the first place in the search order that has it, resolves every symbol
    /// and checks the version.
    ///
    /// - Throws: `.unavailable`, naming every path tried, the missing symbols, or the version
    ///   and the minimum.
    package static func load(environment: [String: String]) throws(CCLError) -> NCCLLibrary {
        let library = try DynamicLibrary.open(
            "NCCL", variables: variables, environment: environment, candidates: candidates(environment: environment))
        return try NCCLLibrary(library)
    }

    /// NCCL has float8 e4m3 and e5m2 (`ncclFloat8e4m3` = 10, `ncclFloat8e5m2` = 11) from 2.24.3.
    package static let float8Version = NCCLVersion(major: 2, minor: 24, patch: 3)

    /// Whether NCCL `version` has `dtype` (every dtype but the float8 ones is in every NCCL
    /// swift-ccl loads).
    package static func has(_ dtype: DType, version: NCCLVersion) -> Bool {
        dtype != .float8e4m3 && dtype != .float8e5m2 || version >= float8Version
    }

    /// NCCL 2.30.7 and later run several ranks on one GPU when `NCCL_MULTI_RANK_GPU_ENABLE=1`
    /// (time-sliced: for testing multi-rank code on one GPU, not for speed).
    package static let multiRankGPUVersion = NCCLVersion(major: 2, minor: 30, patch: 7)

    /// Whether `environment` asks for several ranks per GPU and this library can do it: then
    /// two ranks on one GPU are not refused.
    package func sharesGPUs(environment: [String: String]) -> Bool {
        environment["NCCL_MULTI_RANK_GPU_ENABLE"] == "1" && version >= Self.multiRankGPUVersion
    }

    /// Where NCCL is looked for after the variables: the pip layout under each site-packages of
    /// the `python3` on PATH, then the system loader.
    package static func candidates(environment: [String: String]) -> [String] {
        PythonSitePackages.directories(environment: environment).map { "\($0)/nvidia/nccl/lib/libnccl.so.2" } + ["libnccl.so.2"]
    }

    init(_ library: consuming DynamicLibrary) throws(CCLError) {
        let found = try library.resolve(Self.symbols)
        func function<T>(_ index: Int, _: T.Type) -> T { unsafeBitCast(found[index], to: T.self) }
        getVersion = function(0, (@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        getUniqueId = function(1, (@convention(c) (UnsafeMutablePointer<ccl_nccl_unique_id>) -> Result).self)
        commInitRankConfig = found[2]
        commGetAsyncError = function(3, (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Result).self)
        commAbort = function(4, (@convention(c) (OpaquePointer?) -> Result).self)
        commDestroy = function(5, (@convention(c) (OpaquePointer?) -> Result).self)
        commSplit = function(
            6,
            (@convention(c) (
                OpaquePointer?, Int32, Int32, UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<ccl_nccl_config>?
            ) -> Result).self)
        getErrorString = function(7, (@convention(c) (Int32) -> UnsafePointer<CChar>?).self)
        getLastError = function(8, (@convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?).self)
        allReduce = function(
            9,
            (@convention(c) (
                UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?
            ) -> Result).self)
        allGather = function(
            10,
            (@convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, OpaquePointer?, UnsafeMutableRawPointer?) -> Result)
                .self)
        reduceScatter = function(
            11,
            (@convention(c) (
                UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?
            ) -> Result).self)
        broadcast = function(
            12,
            (@convention(c) (
                UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?
            ) -> Result).self)
        send = function(
            13, (@convention(c) (UnsafeRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) -> Result).self)
        recv = function(
            14, (@convention(c) (UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, UnsafeMutableRawPointer?) -> Result).self)
        groupStart = function(15, (@convention(c) () -> Result).self)
        groupEnd = function(16, (@convention(c) () -> Result).self)
        windows = NCCLWindowCalls(NCCLWindowCalls.symbols.map { library.symbol($0) })
        var code: Int32 = 0
        let status = getVersion(&code)
        path = library.loadedPath ?? library.path
        let what = library.path
        self.library = library
        guard status == 0 else {
            throw CCLError(.unavailable, operation: "load NCCL", "ncclGetVersion failed in \(what) (ncclResult \(status))")
        }
        version = NCCLVersion(code: Int(code))
        guard version >= Self.minimumVersion else {
            throw CCLError(
                .unavailable, operation: "load NCCL",
                "\(path) is NCCL \(version); swift-ccl needs \(Self.minimumVersion) or newer (pip install nvidia-nccl-cu12, or set CCL_NCCL_SO_PATH)"
            )
        }
    }

    /// NCCL's own text for a result code.
    package func describe(_ result: Int32) -> String {
        getErrorString(result).map { String(cString: $0) } ?? "ncclResult \(result)"
    }

    /// A new unique id (`ncclGetUniqueId`): 128 bytes that rank 0 sends to every rank. Needs no GPU.
    package func uniqueId() throws(CCLError) -> [UInt8] {
        var id = ccl_nccl_unique_id()
        let result = getUniqueId(&id)
        guard result == 0 else {
            throw CCLError(.system, operation: "ncclGetUniqueId", "\(describe(result)) (ncclResult \(result))")
        }
        return withUnsafeBytes(of: &id) { Array($0) }
    }
}

/// An NCCL version: the code `ncclGetVersion` returns is X·10000 + Y·100 + Z since 2.9, and
/// X·1000 + Y·100 + Z before.
package struct NCCLVersion: Sendable, Comparable, CustomStringConvertible {
    package let major: Int
    package let minor: Int
    package let patch: Int

    package init(major: Int, minor: Int, patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    package init(code: Int) {
        if code >= 10000 {
            self.init(major: code / 10000, minor: code / 100 % 100, patch: code % 100)
        } else {
            self.init(major: code / 1000, minor: code / 100 % 10, patch: code % 100)
        }
    }

    package var description: String { "\(major).\(minor).\(patch)" }

    package static func < (lhs: NCCLVersion, rhs: NCCLVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }
}
