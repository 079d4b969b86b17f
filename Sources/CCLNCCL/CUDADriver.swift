import CCLCore
import CCLSystem

/// The CUDA driver API (`libcuda.so.1`), opened at run time: no CUDA toolkit is needed to build,
/// and a machine without the driver gets "libcuda.so.1 not found (tried: …)".
///
/// The driver API, not the runtime: contexts are explicit, so the primary context of a device is
/// retained and made current on the calling thread (`activate(device:)`), and the context current
/// when an NCCL communicator is made stays current for all its operations.
///
/// Threading: the driver's (thread-safe; the current context is per thread).
/// Ownership: keep the driver alive while anything made with it exists.
package final class CUDADriver: @unchecked Sendable {
    package typealias Result = Int32
    package typealias DevicePointer = UInt64

    private let library: DynamicLibrary
    /// `cuDriverGetVersion`: 1000·major + 10·minor (12080 is CUDA 12.8).
    package let driverVersion: Int

    package let initialize: @convention(c) (UInt32) -> Result
    package let getDriverVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    package let deviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    package let deviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    package let deviceGetPCIBusId: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    package let primaryContextRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result
    package let primaryContextRelease: @convention(c) (Int32) -> Result
    package let contextSetCurrent: @convention(c) (OpaquePointer?) -> Result
    package let memAlloc: @convention(c) (UnsafeMutablePointer<DevicePointer>, Int) -> Result
    package let memFree: @convention(c) (DevicePointer) -> Result
    package let memsetD8: @convention(c) (DevicePointer, UInt8, Int) -> Result
    package let memcpyHtoD: @convention(c) (DevicePointer, UnsafeRawPointer?, Int) -> Result
    package let memcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, DevicePointer, Int) -> Result
    package let memcpyHtoDAsync: @convention(c) (DevicePointer, UnsafeRawPointer?, Int, OpaquePointer?) -> Result
    package let memcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, DevicePointer, Int, OpaquePointer?) -> Result
    package let streamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    package let streamDestroy: @convention(c) (OpaquePointer?) -> Result
    package let streamSynchronize: @convention(c) (OpaquePointer?) -> Result
    package let eventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    package let eventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result
    package let eventQuery: @convention(c) (OpaquePointer?) -> Result
    package let eventDestroy: @convention(c) (OpaquePointer?) -> Result
    package let streamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> Result
    package let streamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> Result
    package let graphInstantiate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> Result
    package let graphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result
    package let graphExecDestroy: @convention(c) (OpaquePointer?) -> Result
    package let graphDestroy: @convention(c) (OpaquePointer?) -> Result
    package let getErrorName: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    package let getErrorString: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    package let deviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    package let streamIsCapturing: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Result

    /// Every symbol a load resolves, in the order the initialiser reads them (the `_v2` names are
    /// what cuda.h's macros call).
    package static let symbols = [
        "cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetPCIBusId", "cuDevicePrimaryCtxRetain",
        "cuDevicePrimaryCtxRelease_v2", "cuCtxSetCurrent", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemsetD8_v2", "cuMemcpyHtoD_v2",
        "cuMemcpyDtoH_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuStreamCreate", "cuStreamDestroy_v2",
        "cuStreamSynchronize", "cuEventCreate", "cuEventRecord", "cuEventQuery", "cuEventDestroy_v2", "cuStreamBeginCapture_v2",
        "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy",
        "cuGetErrorName", "cuGetErrorString", "cuDeviceGetName", "cuStreamIsCapturing",
    ]

    /// `CUDA_ERROR_NOT_READY`: what `cuEventQuery` returns while the work before the event runs.
    package static let notReady: Result = 600
    /// `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`.
    package static let captureThreadLocal: Int32 = 1

    /// Opens `libcuda.so.1` (`CCL_CUDA_SO_PATH` overrides), resolves every symbol and runs `cuInit`.
    ///
    /// - Throws: `.unavailable` when the driver is missing, lacks a symbol or fails to initialise
    ///   (no device, a driver older than the library needs), with the driver's error name and text.
    package static func load(environment: [String: String]) throws(CCLError) -> CUDADriver {
        let library = try DynamicLibrary.open(
            "libcuda.so.1", variables: ["CCL_CUDA_SO_PATH"], environment: environment, candidates: ["libcuda.so.1"])
        return try CUDADriver(library)
    }

    init(_ library: consuming DynamicLibrary) throws(CCLError) {
        let found = try library.resolve(Self.symbols)
        var next = 0
        func function<T>(_: T.Type) -> T {
            defer { next += 1 }
            return unsafeBitCast(found[next], to: T.self)
        }
        initialize = function((@convention(c) (UInt32) -> Result).self)
        getDriverVersion = function((@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        deviceGetCount = function((@convention(c) (UnsafeMutablePointer<Int32>) -> Result).self)
        deviceGet = function((@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result).self)
        deviceGetPCIBusId = function((@convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result).self)
        primaryContextRetain = function((@convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result).self)
        primaryContextRelease = function((@convention(c) (Int32) -> Result).self)
        contextSetCurrent = function((@convention(c) (OpaquePointer?) -> Result).self)
        memAlloc = function((@convention(c) (UnsafeMutablePointer<DevicePointer>, Int) -> Result).self)
        memFree = function((@convention(c) (DevicePointer) -> Result).self)
        memsetD8 = function((@convention(c) (DevicePointer, UInt8, Int) -> Result).self)
        memcpyHtoD = function((@convention(c) (DevicePointer, UnsafeRawPointer?, Int) -> Result).self)
        memcpyDtoH = function((@convention(c) (UnsafeMutableRawPointer?, DevicePointer, Int) -> Result).self)
        memcpyHtoDAsync = function((@convention(c) (DevicePointer, UnsafeRawPointer?, Int, OpaquePointer?) -> Result).self)
        memcpyDtoHAsync = function((@convention(c) (UnsafeMutableRawPointer?, DevicePointer, Int, OpaquePointer?) -> Result).self)
        streamCreate = function((@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result).self)
        streamDestroy = function((@convention(c) (OpaquePointer?) -> Result).self)
        streamSynchronize = function((@convention(c) (OpaquePointer?) -> Result).self)
        eventCreate = function((@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result).self)
        eventRecord = function((@convention(c) (OpaquePointer?, OpaquePointer?) -> Result).self)
        eventQuery = function((@convention(c) (OpaquePointer?) -> Result).self)
        eventDestroy = function((@convention(c) (OpaquePointer?) -> Result).self)
        streamBeginCapture = function((@convention(c) (OpaquePointer?, Int32) -> Result).self)
        streamEndCapture = function((@convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> Result).self)
        graphInstantiate = function((@convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> Result).self)
        graphLaunch = function((@convention(c) (OpaquePointer?, OpaquePointer?) -> Result).self)
        graphExecDestroy = function((@convention(c) (OpaquePointer?) -> Result).self)
        graphDestroy = function((@convention(c) (OpaquePointer?) -> Result).self)
        getErrorName = function((@convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result).self)
        getErrorString = function((@convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result).self)
        deviceGetName = function((@convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result).self)
        streamIsCapturing = function((@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Result).self)
        self.library = library
        var version: Int32 = 0
        _ = getDriverVersion(&version)
        driverVersion = Int(version)
        do {
            try check(initialize(0), "cuInit")
        } catch {
            throw CCLError(.unavailable, operation: "initialise the CUDA driver", error.message)
        }
    }

    /// "CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)".
    package func describe(_ result: Result) -> String {
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = getErrorName(result, &name)
        _ = getErrorString(result, &text)
        let named = name.map { String(cString: $0) } ?? "CUresult \(result)"
        return text.map { "\(named) (\(String(cString: $0)))" } ?? named
    }

    /// Throws the driver's error for a failed call, naming the call.
    package func check(_ result: Result, _ call: String) throws(CCLError) {
        guard result != 0 else { return }
        throw CCLError(.system, operation: call, describe(result))
    }

    /// Devices the driver sees (after `CUDA_VISIBLE_DEVICES`).
    package func deviceCount() throws(CCLError) -> Int {
        var count: Int32 = 0
        try check(deviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }

    /// The PCI bus id of device `ordinal` ("0000:3b:00.0"): what identifies a GPU across processes
    /// whatever their `CUDA_VISIBLE_DEVICES`.
    package func pciBusId(ordinal: Int) throws(CCLError) -> String {
        var device: Int32 = 0
        try check(deviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var text = [CChar](repeating: 0, count: 64)
        try check(deviceGetPCIBusId(&text, Int32(text.count), device), "cuDeviceGetPCIBusId(\(ordinal))")
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The name of device `ordinal` ("NVIDIA H200").
    package func name(ordinal: Int) throws(CCLError) -> String {
        var device: Int32 = 0
        try check(deviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var text = [CChar](repeating: 0, count: 256)
        try check(deviceGetName(&text, Int32(text.count), device), "cuDeviceGetName(\(ordinal))")
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Retains device `ordinal`'s primary context and makes it current on this thread; returns it.
    /// Release it with `release(device:)` when done.
    package func activate(ordinal: Int) throws(CCLError) -> OpaquePointer? {
        var device: Int32 = 0
        try check(deviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var context: OpaquePointer?
        try check(primaryContextRetain(&context, device), "cuDevicePrimaryCtxRetain(\(ordinal))")
        try check(contextSetCurrent(context), "cuCtxSetCurrent")
        return context
    }

    /// Releases what `activate(ordinal:)` retained.
    package func release(ordinal: Int) {
        var device: Int32 = 0
        guard deviceGet(&device, Int32(ordinal)) == 0 else { return }
        _ = primaryContextRelease(device)
    }
}
