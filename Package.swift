// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-ccl",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CCL", targets: ["CCL"]),
        .executable(name: "ccl", targets: ["ccl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // `swift package generate-documentation` (the DocC catalogue in Sources/CCL/CCL.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
    ],
    targets: [
        // C: only what Swift cannot call (futex is reached through variadic syscall()).
        .target(name: "CCLShims"),
        // The only Swift target that imports Glibc.
        .target(
            name: "CCLSystem",
            dependencies: ["CCLShims", "CCLCore", .product(name: "Atomics", package: "swift-atomics")]
        ),
        // No syscalls: errors, ranks, timeouts, the binary Codable format.
        .target(name: "CCLCore"),
        // The collective API every backend implements: protocols and value types only (devices,
        // buffers, streams, calls, completions, dtypes, fingerprints). No syscalls, no transports.
        .target(name: "CCLCollectiveAPI", dependencies: ["CCLCore"]),
        // Backends: the protocol each one conforms to, the user's request, the one pure choice.
        .target(name: "CCLBackend", dependencies: ["CCLCollectiveAPI", "CCLCore", "CCLStore"]),
        .target(
            name: "CCLQueue",
            dependencies: [
                "CCLCore", "CCLSystem", "CCLStore",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Rendezvous: TCP store (server and client), in-memory and prefix stores.
        .target(
            name: "CCLStore",
            dependencies: [
                "CCLCore", "CCLSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // CPU collectives: reduction kernels, shared-memory and TCP transports, algorithms.
        .target(
            name: "CCLCollectives",
            dependencies: [
                "CCLBackend", "CCLCollectiveAPI", "CCLCore", "CCLSystem", "CCLStore",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The reduction kernels are always optimized: unoptimized, they are ~100× slower and
            // the tests' million-element collectives would take minutes.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // C declarations of NCCL's structs and a by-value call trampoline (no NVIDIA headers needed).
        .target(name: "CCLNCCLShims"),
        // MPI opened at run time (Open MPI, MPICH, the MPI-5 standard ABI): the cluster backend.
        .target(
            name: "CCLMPI",
            dependencies: [
                "CCLBackend", "CCLCollectiveAPI", "CCLCollectives", "CCLCore", "CCLStore", "CCLSystem", "CCLTrace",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // CUDA driver API and NCCL opened at run time: the GPU backend.
        .target(
            name: "CCLNCCL",
            dependencies: ["CCLNCCLShims", "CCLBackend", "CCLCollectiveAPI", "CCLCore", "CCLStore", "CCLSystem"]
        ),
        // The flight recorder: every group communicator's last calls in shared memory, and the verdict.
        .target(
            name: "CCLTrace",
            dependencies: ["CCLCollectiveAPI", "CCLCore", "CCLStore", "CCLSystem", .product(name: "Atomics", package: "swift-atomics")]
        ),
        // Node identity and vLLM's parallel layout.
        .target(name: "CCLTopology", dependencies: ["CCLCore"]),
        .target(
            name: "CCL",
            dependencies: [
                "CCLBackend", "CCLCore", "CCLQueue", "CCLStore", "CCLSystem", "CCLTopology", "CCLCollectives", "CCLNCCL", "CCLMPI",
                "CCLTrace",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "CCLCommands",
            dependencies: [
                "CCL", "CCLBackend", "CCLCollectives", "CCLMPI", "CCLNCCL", "CCLQueue", "CCLSystem", "CCLTrace",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "ccl", dependencies: ["CCLCommands"]),
        // Deterministic test messages shared by the tests and the worker.
        .target(name: "CCLTestSupport", dependencies: ["CCL", "CCLSystem"]),
        // Spawned by the tests as a real reader/writer process.
        .executableTarget(
            name: "CCLTestWorker",
            dependencies: ["CCL", "CCLMPI", "CCLSystem", "CCLTestSupport", .product(name: "Logging", package: "swift-log")],
            // Its reference checks run over millions of elements.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .testTarget(name: "CCLCoreTests", dependencies: ["CCLCore", "CCLTestSupport"]),
        .testTarget(name: "CCLBackendTests", dependencies: ["CCL", "CCLTestSupport", "CCLTestWorker"]),
        .testTarget(name: "CCLNCCLTests", dependencies: ["CCL", "CCLNCCL", "CCLNCCLShims", "CCLSystem", "CCLTestSupport"]),
        .testTarget(
            name: "CCLCollectivesTests",
            dependencies: ["CCL", "CCLCollectives", "CCLCore", "CCLSystem", "CCLTestSupport", "CCLTestWorker"]
        ),
        .testTarget(name: "CCLSystemTests", dependencies: ["CCLSystem", "CCLCore", "CCLTestSupport"]),
        .testTarget(name: "CCLTraceTests", dependencies: ["CCLTrace", "CCLCollectiveAPI", "CCLCore", "CCLSystem"]),
        .testTarget(name: "CCLMPITests", dependencies: ["CCLMPI", "CCLCollectiveAPI", "CCLCore", "CCLTestSupport", "CCLTestWorker"]),
        .testTarget(name: "CCLStoreTests", dependencies: ["CCLStore", "CCLCore", "CCLSystem", "CCLTestSupport"]),
        .testTarget(
            name: "CCLTopologyTests", dependencies: ["CCLTopology", "CCLCore"], exclude: ["vllm_layout_oracle.py"]),
        // Examples/: small programs a user runs under `ccl launch`; the README quotes them.
        .executableTarget(name: "GroupExample", dependencies: ["CCL"], path: "Examples/GroupExample"),
        .executableTarget(name: "QueueExample", dependencies: ["CCL"], path: "Examples/QueueExample"),
        .executableTarget(name: "TensorParallelExample", dependencies: ["CCL"], path: "Examples/TensorParallelExample"),
        .executableTarget(name: "TopologyExample", dependencies: ["CCL"], path: "Examples/TopologyExample"),
        .testTarget(
            name: "CCLCommandsTests",
            dependencies: [
                "ccl", "CCLCommands", "CCLTestWorker", "CCLTestSupport", "GroupExample", "QueueExample", "TensorParallelExample",
                "TopologyExample",
            ]),
        .testTarget(
            name: "CCLQueueTests",
            dependencies: [
                "CCL", "CCLQueue", "CCLSystem", "CCLTestSupport", "CCLTestWorker",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
