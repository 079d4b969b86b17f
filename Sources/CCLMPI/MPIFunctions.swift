import CCLCore
import CCLSystem

/// The MPI functions the backend calls, resolved from the loaded library (all or nothing).
///
/// Handles (`MPI_Comm`, `MPI_Datatype`, `MPI_Op`, `MPI_Group`, `MPI_Errhandler`) pass as
/// pointer-width integers (see `MPIConstants`); handles MPI writes back go through
/// `MPILibrary.readHandle`. Every function returns an MPI error code (0 is `MPI_SUCCESS`).
package struct MPIFunctions: @unchecked Sendable {
    package typealias Handle = Int
    package typealias Code = Int32
    /// `MPI_User_function`: `(invec, inoutvec, len, datatype)`, `inoutvec[i] = invec[i] ∘ inoutvec[i]`.
    package typealias UserFunction =
        @convention(c) (
            UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?
        ) -> Void

    let initThread: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>) -> Code
    let finalize: @convention(c) () -> Code
    let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Code
    let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Code
    let commGroup: @convention(c) (Handle, UnsafeMutableRawPointer) -> Code
    let groupIncl: @convention(c) (Handle, Int32, UnsafePointer<Int32>?, UnsafeMutableRawPointer) -> Code
    let groupFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    let commCreateGroup: @convention(c) (Handle, Handle, Int32, UnsafeMutableRawPointer) -> Code
    let commDup: @convention(c) (Handle, UnsafeMutableRawPointer) -> Code
    let commFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    let commSetErrhandler: @convention(c) (Handle, Handle) -> Code
    let errorString: @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Code
    let abort: @convention(c) (Handle, Int32) -> Code
    let typeContiguous: @convention(c) (Int32, Handle, UnsafeMutableRawPointer) -> Code
    let typeCommit: @convention(c) (UnsafeMutableRawPointer) -> Code
    let opCreate: @convention(c) (UserFunction, Int32, UnsafeMutableRawPointer) -> Code
    let typeFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    let opFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    let getCount: @convention(c) (UnsafeRawPointer, Handle, UnsafeMutablePointer<Int32>) -> Code
    let allreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Code
    let allgather: @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle) -> Code
    let reduceScatterBlock: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Code
    let bcast: @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Code
    let gather: @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Code
    let send: @convention(c) (UnsafeRawPointer?, Int32, Handle, Int32, Int32, Handle) -> Code
    let recv: @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Int32, Handle, UnsafeMutableRawPointer) -> Code
    let sendrecv:
        @convention(c) (
            UnsafeRawPointer?, Int32, Handle, Int32, Int32, UnsafeMutableRawPointer?, Int32, Handle, Int32, Int32, Handle,
            UnsafeMutableRawPointer
        ) -> Code
    let barrier: @convention(c) (Handle) -> Code

    /// Every symbol, in the order `init` reads them.
    static let symbols = [
        "MPI_Init_thread", "MPI_Finalize", "MPI_Comm_rank", "MPI_Comm_size", "MPI_Comm_group", "MPI_Group_incl", "MPI_Group_free",
        "MPI_Comm_create_group", "MPI_Comm_dup", "MPI_Comm_free", "MPI_Comm_set_errhandler", "MPI_Error_string", "MPI_Abort",
        "MPI_Type_contiguous", "MPI_Type_commit", "MPI_Op_create", "MPI_Get_count", "MPI_Allreduce", "MPI_Allgather",
        "MPI_Reduce_scatter_block", "MPI_Bcast", "MPI_Gather", "MPI_Send", "MPI_Recv", "MPI_Sendrecv", "MPI_Barrier",
        "MPI_Type_free", "MPI_Op_free",
    ]

    /// Resolves every function of `symbols` from `library`.
    ///
    /// - Throws: `.unavailable` naming the missing symbols (an MPI older than MPI-3, or not MPI).
    init(_ library: borrowing DynamicLibrary) throws(CCLError) {
        let found = try library.resolve(Self.symbols)
        func cast<F>(_ index: Int) -> F { unsafeBitCast(found[index], to: F.self) }
        initThread = cast(0)
        finalize = cast(1)
        commRank = cast(2)
        commSize = cast(3)
        commGroup = cast(4)
        groupIncl = cast(5)
        groupFree = cast(6)
        commCreateGroup = cast(7)
        commDup = cast(8)
        commFree = cast(9)
        commSetErrhandler = cast(10)
        errorString = cast(11)
        abort = cast(12)
        typeContiguous = cast(13)
        typeCommit = cast(14)
        opCreate = cast(15)
        getCount = cast(16)
        allreduce = cast(17)
        allgather = cast(18)
        reduceScatterBlock = cast(19)
        bcast = cast(20)
        gather = cast(21)
        send = cast(22)
        recv = cast(23)
        sendrecv = cast(24)
        barrier = cast(25)
        typeFree = cast(26)
        opFree = cast(27)
    }
}
