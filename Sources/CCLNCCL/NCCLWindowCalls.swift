/// NCCL's symmetric-memory windows (2.27 and later): memory from `ncclMemAlloc` registered with
/// `ncclCommWindowRegister` (collectively, the same size on every rank) lets NCCL run its faster
/// symmetric kernels on it. Optional: resolved only when the loaded NCCL has all four symbols.
package struct NCCLWindowCalls: @unchecked Sendable {
    typealias Result = Int32
    /// The symbols, all or none.
    package static let symbols = ["ncclMemAlloc", "ncclMemFree", "ncclCommWindowRegister", "ncclCommWindowDeregister"]
    /// `NCCL_WIN_COLL_SYMMETRIC`: every rank registers a buffer at the same offset of memory from
    /// `ncclMemAlloc`, so collectives on it may use the symmetric kernels.
    static let symmetric: Int32 = 1

    let memAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Result
    let memFree: @convention(c) (UnsafeMutableRawPointer?) -> Result
    let register: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result
    let deregister: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result

    /// The calls from the four addresses (in `symbols` order); nil when one is missing.
    init?(_ addresses: [UnsafeMutableRawPointer?]) {
        guard addresses.count == Self.symbols.count, let alloc = addresses[0], let free = addresses[1], let register = addresses[2],
            let deregister = addresses[3]
        else { return nil }
        memAlloc = unsafeBitCast(alloc, to: (@convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> Result).self)
        memFree = unsafeBitCast(free, to: (@convention(c) (UnsafeMutableRawPointer?) -> Result).self)
        self.register = unsafeBitCast(
            register,
            to: (@convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result).self
        )
        self.deregister = unsafeBitCast(deregister, to: (@convention(c) (OpaquePointer?, OpaquePointer?) -> Result).self)
    }
}
