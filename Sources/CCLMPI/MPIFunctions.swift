import CCLCore
import CCLSystem

/// The MPI functions the backend calls, resolved from the loaded library (all or nothing).
///
/// Handles (`MPI_Comm`, `MPI_Datatype`, `MPI_Op`, `MPI_Group`, `MPI_Errhandler`) pass as
/// pointer-width integers (see `MPIConstants`); handles MPI writes back go through
/// `MPILibrary.handle(from:)`. Every function returns an MPI error code (0 is `MPI_SUCCESS`).
package struct MPIFunctions: @unchecked Sendable {
    package typealias Handle = Int
    package typealias Code = Int32
    /// `MPI_User_function`: `(invec, inoutvec, len, datatype)`, `inoutvec[i] = invec[i] ∘ inoutvec[i]`.
    package typealias UserFunction =
        @convention(c) (
            UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?
        ) -> Void

    package let initThread:
        @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<Int32>) -> Code
    package let finalize: @convention(c) () -> Code
    package let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Code
    package let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Code
    package let commGroup: @convention(c) (Handle, UnsafeMutableRawPointer) -> Code
    package let groupIncl: @convention(c) (Handle, Int32, UnsafePointer<Int32>?, UnsafeMutableRawPointer) -> Code
    package let groupFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    package let commCreateGroup: @convention(c) (Handle, Handle, Int32, UnsafeMutableRawPointer) -> Code
    package let commDup: @convention(c) (Handle, UnsafeMutableRawPointer) -> Code
    package let commFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    package let commSetErrhandler: @convention(c) (Handle, Handle) -> Code
    package let errorString: @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Code
    package let abort: @convention(c) (Handle, Int32) -> Code
    package let typeContiguous: @convention(c) (Int32, Handle, UnsafeMutableRawPointer) -> Code
    package let typeCommit: @convention(c) (UnsafeMutableRawPointer) -> Code
    package let opCreate: @convention(c) (UserFunction, Int32, UnsafeMutableRawPointer) -> Code
    package let typeFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    package let opFree: @convention(c) (UnsafeMutableRawPointer) -> Code
    package let queryThread: @convention(c) (UnsafeMutablePointer<Int32>) -> Code
    package let getCount: @convention(c) (UnsafeRawPointer, Handle, UnsafeMutablePointer<Int32>) -> Code
    package let allreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Code
    package let allgather: @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Handle) -> Code
    package let reduceScatterBlock: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Code
    package let bcast: @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Code
    package let gather: @convention(c) (UnsafeRawPointer?, Int32, Handle, UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Code
    package let send: @convention(c) (UnsafeRawPointer?, Int32, Handle, Int32, Int32, Handle) -> Code
    package let recv: @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Int32, Handle, UnsafeMutableRawPointer) -> Code
    let sendrecv:
        @convention(c) (
            UnsafeRawPointer?, Int32, Handle, Int32, Int32, UnsafeMutableRawPointer?, Int32, Handle, Int32, Int32, Handle,
            UnsafeMutableRawPointer
        ) -> Code
    package let barrier: @convention(c) (Handle) -> Code

    /// Every symbol, in the order `init` reads them.
    static let symbols = [
        "MPI_Init_thread", "MPI_Finalize", "MPI_Comm_rank", "MPI_Comm_size", "MPI_Comm_group", "MPI_Group_incl", "MPI_Group_free",
        "MPI_Comm_create_group", "MPI_Comm_dup", "MPI_Comm_free", "MPI_Comm_set_errhandler", "MPI_Error_string", "MPI_Abort",
        "MPI_Type_contiguous", "MPI_Type_commit", "MPI_Op_create", "MPI_Get_count", "MPI_Allreduce", "MPI_Allgather",
        "MPI_Reduce_scatter_block", "MPI_Bcast", "MPI_Gather", "MPI_Send", "MPI_Recv", "MPI_Sendrecv", "MPI_Barrier",
        "MPI_Type_free", "MPI_Op_free", "MPI_Query_thread",
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
        queryThread = cast(28)
    }
}
