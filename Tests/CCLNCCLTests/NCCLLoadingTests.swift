import CCL
import CCLNCCL
import CCLSystem
import CCLTestSupport
import Foundation
import Testing

/// NCCL and the CUDA driver opened at run time, against the real NCCL from PyPI that
/// `scripts/setup.sh` installs (nvidia-nccl-cu12), on a machine without a GPU: loading, the search
/// order, the symbol table, the version, unique ids, and the no-driver paths.
@Suite(.serialized) struct NCCLLoadingTests {
    static let environment = ProcessInfo.processInfo.environment
    static let setupHint = "NCCL from PyPI is missing: run scripts/setup.sh (it installs nvidia-nccl-cu12 for the python3 on PATH)"

    @Test("the pip wheel's NCCL is found under the python3 on PATH; its version and symbols load")
    func pipLayout() throws {
        let candidates = NCCLLibrary.candidates(environment: Self.environment)
        #expect(candidates.last == "libnccl.so.2")
        let pip = candidates.dropLast().first { FileManager.default.fileExists(atPath: $0) }
        #expect(pip != nil, "\(Self.setupHint); looked in \(candidates)")
        let nccl = try NCCLLibrary.load(environment: Self.environment.filter { !NCCLLibrary.variables.contains($0.key) })
        #expect(nccl.version >= NCCLLibrary.minimumVersion)
        #expect(nccl.path.hasSuffix("nvidia/nccl/lib/libnccl.so.2"), "\(nccl.path)")
        #expect(nccl.describe(0) == "no error", "\(nccl.describe(0))")
    }

    @Test("VLLM_NCCL_SO_PATH is honoured; CCL_NCCL_SO_PATH comes first; a wrong path names the variable")
    func variables() throws {
        let path = try #require(
            NCCLLibrary.candidates(environment: Self.environment).first { FileManager.default.fileExists(atPath: $0) }, "\(Self.setupHint)")
        let viaVLLM = try NCCLLibrary.load(environment: ["VLLM_NCCL_SO_PATH": path])
        #expect(viaVLLM.path == path)
        let error = #expect(throws: CCLError.self) {
            _ = try NCCLLibrary.load(environment: ["CCL_NCCL_SO_PATH": "/nonexistent/libnccl.so.2", "VLLM_NCCL_SO_PATH": path])
        }
        #expect(error?.code == .unavailable)
        #expect(
            error?.message.hasPrefix("NCCL not loaded from CCL_NCCL_SO_PATH=/nonexistent/libnccl.so.2: ") == true,
            "\(String(describing: error))")
    }

    @Test("unique ids: 128 bytes, fresh each time, and the same on every rank after the group's broadcast")
    func uniqueIds() throws {
        let nccl = try NCCLLibrary.load(environment: Self.environment)
        let first = try nccl.uniqueId(), second = try nccl.uniqueId()
        #expect(first.count == 128 && second.count == 128)
        #expect(first != second)
        #expect(first.contains { $0 != 0 })
        // Through a real TCP store, as communicator creation sends it: rank 0 makes it, the others receive it.
        let server = try TCPStoreServer(token: "nccl")
        let received = Received()
        let done = DispatchGroup()
        for rank in 0..<3 {
            done.enter()
            Thread {
                defer { done.leave() }
                do {
                    let store = try TCPStoreClient(host: "127.0.0.1", port: server.port, token: "nccl")
                    let group = try StatelessProcessGroup(rank: rank, worldSize: 3, store: store, timeout: .seconds(20))
                    received.set(rank, try group.broadcastObject(rank == 0 ? try nccl.uniqueId() : nil, from: 0))
                } catch {
                    received.set(rank, [])
                }
            }.start()
        }
        done.wait()
        let ids = (0..<3).map { received[$0] }
        #expect(ids[0].count == 128 && ids[1] == ids[0] && ids[2] == ids[0])
    }

    /// A library that defines `symbols` (each returning 0) and an `ncclGetVersion` reporting `code`.
    static func fakeNCCL(version code: Int, symbols: [String]) throws -> CompiledLibrary {
        let stubs = symbols.filter { $0 != "ncclGetVersion" }.map { "int \($0)(void) { return 0; }" }
        let source = (["int ncclGetVersion(int *v) { *v = \(code); return 0; }"] + stubs).joined(separator: "\n")
        return try CompiledLibrary(source: source, name: "libnccl.so.2")
    }

    @Test("a library without every symbol is refused, naming the missing ones")
    func missingSymbols() throws {
        let fake = try Self.fakeNCCL(version: 22803, symbols: ["ncclGetVersion", "ncclGetUniqueId"])
        defer { fake.remove() }
        let error = #expect(throws: CCLError.self) { _ = try NCCLLibrary.load(environment: ["CCL_NCCL_SO_PATH": fake.path]) }
        #expect(error?.code == .unavailable)
        let message = error?.message ?? ""
        #expect(message.contains("lacks 15 of 17 symbols: ncclCommInitRankConfig, ncclCommGetAsyncError"), "\(message)")
        #expect(message.contains("ncclGroupEnd"), "\(message)")
    }

    @Test("symmetric-memory windows are optional: found in the PyPI NCCL (2.27+), absent from a library without them, which still loads")
    func optionalWindows() throws {
        let real = try NCCLLibrary.load(environment: Self.environment.filter { !NCCLLibrary.variables.contains($0.key) })
        #expect((real.windows != nil) == (real.version >= NCCLVersion(major: 2, minor: 27, patch: 0)), "NCCL \(real.version)")
        let without = try Self.fakeNCCL(version: 22803, symbols: NCCLLibrary.symbols)
        defer { without.remove() }
        #expect(try NCCLLibrary.load(environment: ["CCL_NCCL_SO_PATH": without.path]).windows == nil)
        let partial = try Self.fakeNCCL(version: 22703, symbols: NCCLLibrary.symbols + ["ncclMemAlloc", "ncclMemFree"])
        defer { partial.remove() }
        #expect(try NCCLLibrary.load(environment: ["CCL_NCCL_SO_PATH": partial.path]).windows == nil, "all four or none")
        let with = try Self.fakeNCCL(version: 22703, symbols: NCCLLibrary.symbols + NCCLWindowCalls.symbols)
        defer { with.remove() }
        #expect(try NCCLLibrary.load(environment: ["CCL_NCCL_SO_PATH": with.path]).windows != nil)
    }

    @Test("a library older than the minimum is refused with both versions")
    func oldVersion() throws {
        let fake = try Self.fakeNCCL(version: 21703, symbols: NCCLLibrary.symbols)
        defer { fake.remove() }
        let error = #expect(throws: CCLError.self) { _ = try NCCLLibrary.load(environment: ["CCL_NCCL_SO_PATH": fake.path]) }
        #expect(error?.message.contains("is NCCL 2.17.3; swift-ccl needs 2.18.0 or newer") == true, "\(String(describing: error))")
    }

    @Test("version codes: X·10000+Y·100+Z since 2.9, X·1000+Y·100+Z before")
    func versionCodes() {
        #expect("\(NCCLVersion(code: 23203))" == "2.32.3")
        #expect("\(NCCLVersion(code: 21805))" == "2.18.5")
        #expect("\(NCCLVersion(code: 2708))" == "2.7.8")
        #expect(NCCLVersion(code: 21805) > NCCLVersion(code: 2708))
        #expect(NCCLVersion(code: 21703) < NCCLLibrary.minimumVersion)
    }

    @Test("no CUDA driver: the load, the probe and a strict request say libcuda.so.1 was not found, at once")
    func noDriver() throws {
        let environment = ["CCL_CUDA_SO_PATH": "/nonexistent/libcuda.so.1", "PATH": Self.environment["PATH"] ?? ""]
        let error = #expect(throws: CCLError.self) { _ = try CUDADriver.load(environment: environment) }
        #expect(error?.message.hasPrefix("libcuda.so.1 not loaded from CCL_CUDA_SO_PATH=/nonexistent/libcuda.so.1") == true)
        let probe = NCCLBackend(environment: environment).probe(BackendContext(device: .cuda, worldSize: 1, nodeCount: 1))
        #expect(probe.isAvailable == false)
        // The machine's own search: CI has no driver; a GPU machine has one and is probed for real.
        let here = NCCLBackend(environment: Self.environment).probe(BackendContext(device: .cuda, worldSize: 1, nodeCount: 1))
        if case .unavailable(let reason) = here {
            #expect(reason.hasPrefix("libcuda.so.1 not found (tried: libcuda.so.1: ") || reason.contains("no device"), "\(reason)")
        }
        // Strict CCL_BACKEND=nccl for a CUDA group: a clear error, well under a second.
        let start = ContinuousClock.now
        let group = try StatelessProcessGroup(rank: 0, worldSize: 1, store: InMemoryStore(), timeout: .seconds(5))
        let registry = BackendRegistry(options: CollectiveOptions(), environment: environment)
        let strict = try BackendRequest.parse("nccl", strict: true, origin: "CCL_BACKEND")
        let failure = #expect(throws: CCLError.self) {
            _ = try registry.makeCommunicator(group: group, nodes: NodeLayout(nodeOfRank: ["a"]), device: .cuda(0), request: strict)
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(failure?.code == .unavailable)
        #expect(
            failure?.message.hasPrefix("CCL_BACKEND=nccl in strict mode, but no requested backend can run: nccl: libcuda.so.1 not loaded")
                == true,
            "\(String(describing: failure))")
    }

    @Test("two ranks on one GPU fail on every rank, naming both, the node, the bus id and the fix")
    func duplicateGPU() throws {
        let distinct = [
            GPUPlacement(node: "a", busId: "0000:3b:00.0", ordinal: 0), GPUPlacement(node: "a", busId: "0000:5e:00.0", ordinal: 1),
            GPUPlacement(node: "b", busId: "0000:3b:00.0", ordinal: 0),
        ]
        try GPUPlacement.checkDistinct(distinct, ranks: [0, 1, 2], group: "tp0", rank: 0)
        let shared = distinct + [GPUPlacement(node: "a", busId: "0000:5e:00.0", ordinal: 0)]
        let error = #expect(throws: CCLError.self) { try GPUPlacement.checkDistinct(shared, ranks: [4, 5, 6, 7], group: "tp1", rank: 7) }
        let message = error?.message ?? ""
        #expect(
            message.hasPrefix("ranks 5 and 7 are both on the GPU at PCI bus 0000:5e:00.0 of node a (CUDA devices 1 and 0)"), "\(message)")
        #expect(message.contains("CUDA_VISIBLE_DEVICES"), "\(message)")
    }

    @Test("float8 dtypes go to NCCL only from 2.24.3, which has them; every other dtype to any NCCL loaded")
    func float8Versions() throws {
        let old = NCCLVersion(major: 2, minor: 24, patch: 2), new = NCCLVersion(major: 2, minor: 24, patch: 3)
        #expect(!NCCLLibrary.has(.float8e4m3, version: old) && !NCCLLibrary.has(.float8e5m2, version: old))
        #expect(NCCLLibrary.has(.float8e4m3, version: new) && NCCLLibrary.has(.float8e5m2, version: new))
        #expect(DType.allCases.filter { $0.size > 1 || $0 == .int8 || $0 == .uint8 }.allSatisfy { NCCLLibrary.has($0, version: old) })
        let nccl = try NCCLLibrary.load(environment: Self.environment.filter { !NCCLLibrary.variables.contains($0.key) })
        #expect(NCCLLibrary.has(.float8e5m2, version: nccl.version) == (nccl.version >= new), "NCCL \(nccl.version)")
    }

    @Test("NCCL_MULTI_RANK_GPU_ENABLE=1 lets ranks share a GPU only with an NCCL that can (2.30.7+; the PyPI one here)")
    func multiRankGPU() throws {
        let nccl = try NCCLLibrary.load(environment: Self.environment.filter { !NCCLLibrary.variables.contains($0.key) })
        let canShare = nccl.version >= NCCLLibrary.multiRankGPUVersion
        #expect(nccl.sharesGPUs(environment: ["NCCL_MULTI_RANK_GPU_ENABLE": "1"]) == canShare, "NCCL \(nccl.version)")
        #expect(!nccl.sharesGPUs(environment: [:]))
        #expect(!nccl.sharesGPUs(environment: ["NCCL_MULTI_RANK_GPU_ENABLE": "0"]))
        #expect(NCCLVersion(code: 23007) >= NCCLLibrary.multiRankGPUVersion && NCCLVersion(code: 22809) < NCCLLibrary.multiRankGPUVersion)
    }
}

/// Each rank thread's unique id.
private final class Received: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: [UInt8]] = [:]
    func set(_ rank: Int, _ value: [UInt8]) { lock.withLock { values[rank] = value } }
    subscript(rank: Int) -> [UInt8] { lock.withLock { values[rank] ?? [] } }
}
