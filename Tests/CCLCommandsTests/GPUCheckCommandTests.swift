import Foundation
import Testing

/// `ccl gpu-check` where there is no CUDA driver (CI): it stops at once with the loader's reason.
/// Its GPU paths run only on the device machine (scripts/gpu-check.sh run).
@Suite struct GPUCheckCommandTests {
    @Test("without a driver: exit non-zero naming libcuda.so.1 and the variable that points at it")
    func noDriver() throws {
        let result = try runCCL(["gpu-check"], environment: ["CCL_CUDA_SO_PATH": "/nonexistent/libcuda.so.1"])
        #expect(result.status != 0)
        #expect(result.error.contains("libcuda.so.1 not loaded from CCL_CUDA_SO_PATH=/nonexistent/libcuda.so.1"), "\(result.error)")
        let bad = try runCCL(["gpu-check", "--ranks", "0"])
        #expect(bad.status != 0 && bad.error.contains("--ranks must be in 1...8"), "\(bad.error)")
    }

    @Test("ccl bench <op> --device cuda without a driver: every rank fails at once naming libcuda.so.1; a bad --device is refused")
    func benchWithoutDriver() throws {
        let start = Date()
        let result = try runCCL(
            ["bench", "allreduce", "--device", "cuda", "--nproc", "2", "--sizes", "8"],
            environment: ["CCL_CUDA_SO_PATH": "/nonexistent/libcuda.so.1"])
        #expect(result.status != 0, "\(result.output)")
        #expect(result.error.contains("libcuda.so.1 not loaded from CCL_CUDA_SO_PATH=/nonexistent/libcuda.so.1"), "\(result.error)")
        #expect(Date().timeIntervalSince(start) < 30, "no waiting for a GPU that is not there")
        let bad = try runCCL(["bench", "allreduce", "--device", "tpu"])
        #expect(bad.status != 0 && bad.error.contains("--device must be host or cuda"), "\(bad.error)")
    }

    @Test("ccl demo --device cuda without a driver: the ranks stop naming libcuda.so.1; a bad --device is refused")
    func demoWithoutDriver() throws {
        let result = try runCCL(
            ["demo", "--device", "cuda", "--tp", "2", "--pp", "1", "--steps", "1"],
            environment: ["CCL_CUDA_SO_PATH": "/nonexistent/libcuda.so.1"])
        #expect(result.status != 0, "\(result.output)")
        #expect(result.error.contains("libcuda.so.1 not loaded from CCL_CUDA_SO_PATH=/nonexistent/libcuda.so.1"), "\(result.error)")
        let bad = try runCCL(["demo", "--device", "gpu"])
        #expect(bad.status != 0 && bad.error.contains("--device must be host or cuda"), "\(bad.error)")
    }
}
