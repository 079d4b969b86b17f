import Atomics
import CCLCore
import CCLSystem

/// Where everything lives in a broadcast-queue segment.
///
/// ```
///  offset                      contents (u = plain, a = atomic)
///  0        header line        u64 magic "CCLRING1" (a, release-stored last) · u32 version
///                              u32 readerCount · u32 chunkCount · u32 chunkBytes · u64 segmentSize
///                              i32 writerPid · u64 writerStart · u32 writerState (a: 1 open, 2 closed)
///                              u32 ready (a) · u64 writerPidNamespace
///  128      publish line       u64 published (a): chunks written so far
///                              u32 dataWord (futex readers sleep on) · u32 readerSleepers (a)
///                              u64 fillTag (a): c + 1 while chunk c is filled in slices
///                              u64 filled (a): its payload bytes written so far
///  256      space line         u32 spaceWord (futex the writer sleeps on) · u32 writerSleeping (a)
///  384      reader slot r      one 128-byte line each: u64 cursor (a): chunks this reader consumed
///                              u32 state (a: 0 never attached, 3 attaching, 1 attached, 2 detached)
///                              i32 pid · u64 startTime · u64 pidNamespace
///                              u32 sleeping (a): this reader is counted in readerSleepers
///  chunks   chunk i            64-byte header: u64 messageLength · u64 fragmentOffset
///                              u32 fragmentLength · then chunkBytes of payload
/// ```
///
/// A sequence-number ring, not vLLM's flag bytes: chunk `c` (the c-th chunk ever written) sits in
/// slot `c % chunkCount`.
///
/// | who    | may touch slot of chunk c when                    | then publishes                        |
/// |--------|---------------------------------------------------|---------------------------------------|
/// | writer | `c - min(cursor of attached readers) < chunkCount` | `published = c + 1` (release)         |
/// | reader | `published > c` (acquire)                          | its `cursor = c + 1` (release)        |
/// | reader | c's header and bytes [0, min(length, filled)) when `fillTag == c + 1` (acquire) | nothing until `published > c` |
///
/// Each reader's cursor sits on its own cache line, so readers never share a written line; the
/// writer only reads the cursors when its cached minimum says the ring may be full.
/// A message longer than one chunk streams through consecutive chunks, each published on its
/// own, so readers copy chunk k while the writer fills chunk k + 1. Inside a chunk larger than
/// `sliceBytes` the writer also says how far it got (`filled` = 0, then `fillTag`, then `filled`
/// after every slice, on the publish line readers poll anyway), so a reader that streams (copies,
/// or takes pieces) starts on the first slice while the writer fills the next; a reader that
/// takes the chunk whole in place waits for its publication. A reader may see a later chunk's
/// `filled` with an earlier `fillTag`, but only once that earlier chunk is complete: it caps
/// what it reads at the chunk's length.
struct RingLayout: Sendable, Equatable {
    static let magic: UInt64 = 0x3147_4E49_524C_4343  // "CCLRING1" little-endian
    static let version: UInt32 = 3
    static let lineBytes = 128
    static let chunkHeaderBytes = 64
    static let readerSlotsOffset = 384
    static let maxReaders = 1024
    /// Bytes the writer copies between two `filled` updates of a chunk (only chunks above it are
    /// filled in slices).
    static let sliceBytes = 64 << 10

    let readerCount: Int
    let chunkCount: Int
    /// Payload bytes per chunk (a multiple of 64).
    let chunkBytes: Int

    init(readerCount: Int, chunkCount: Int, chunkBytes: Int) {
        self.readerCount = readerCount
        self.chunkCount = chunkCount
        self.chunkBytes = chunkBytes
    }

    /// Checks sizes a caller or a segment header supplies; the message names what is wrong.
    static func validated(readerCount: Int, chunkCount: Int, chunkBytes: Int, operation: String)
        throws(CCLError) -> RingLayout
    {
        guard (1...maxReaders).contains(readerCount) else {
            throw CCLError(
                .invalidArgument, operation: operation,
                "local reader count \(readerCount) is outside 1...\(maxReaders)")
        }
        guard (2...1 << 20).contains(chunkCount) else {
            throw CCLError(.invalidArgument, operation: operation, "chunk count \(chunkCount) is outside 2...1048576")
        }
        guard (64...1 << 30).contains(chunkBytes), chunkBytes % 64 == 0 else {
            throw CCLError(
                .invalidArgument, operation: operation,
                "chunk size \(chunkBytes) must be a multiple of 64 in 64...1 GiB")
        }
        let layout = RingLayout(readerCount: readerCount, chunkCount: chunkCount, chunkBytes: chunkBytes)
        guard layout.segmentSize <= 1 << 40 else {
            throw CCLError(.tooLarge, operation: operation, "segment of \(layout.segmentSize) bytes exceeds 1 TiB")
        }
        return layout
    }

    var chunksOffset: Int { Self.readerSlotsOffset + readerCount * Self.lineBytes }
    var chunkStride: Int { Self.chunkHeaderBytes + chunkBytes }
    var segmentSize: Int { chunksOffset + chunkCount * chunkStride }

    func readerSlotOffset(_ reader: Int) -> Int { Self.readerSlotsOffset + reader * Self.lineBytes }
    func chunkOffset(sequence: UInt64) -> Int { chunksOffset + Int(sequence % UInt64(chunkCount)) * chunkStride }
}

/// Typed access to the words of a mapped ring. A view: it does not own the memory, and must not
/// outlive the segment it points into.
struct RingView: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let layout: RingLayout

    private func atomic64(_ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }
    private func atomic32(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }
    private func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + offset).assumingMemoryBound(to: UInt32.self)
    }

    // Header line.
    var magic: UnsafeAtomic<UInt64> { atomic64(0) }
    func writeHeader(writer: ProcessIdentity) {
        base.storeBytes(of: RingLayout.version, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt32(layout.readerCount), toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: UInt32(layout.chunkCount), toByteOffset: 16, as: UInt32.self)
        base.storeBytes(of: UInt32(layout.chunkBytes), toByteOffset: 20, as: UInt32.self)
        base.storeBytes(of: UInt64(layout.segmentSize), toByteOffset: 24, as: UInt64.self)
        base.storeBytes(of: writer.pid, toByteOffset: 32, as: Int32.self)
        base.storeBytes(of: writer.startTime, toByteOffset: 40, as: UInt64.self)
        base.storeBytes(of: writer.namespace, toByteOffset: 56, as: UInt64.self)
    }
    /// The sizes a segment claims, read before a layout is trusted.
    static func readClaimedSizes(_ base: UnsafeRawPointer) -> (version: UInt32, readers: Int, chunks: Int, bytes: Int, size: UInt64) {
        (
            base.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
            Int(base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
            Int(base.loadUnaligned(fromByteOffset: 16, as: UInt32.self)),
            Int(base.loadUnaligned(fromByteOffset: 20, as: UInt32.self)),
            base.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        )
    }
    var writer: ProcessIdentity {
        ProcessIdentity(
            pid: base.load(fromByteOffset: 32, as: Int32.self),
            startTime: base.load(fromByteOffset: 40, as: UInt64.self),
            namespace: base.load(fromByteOffset: 56, as: UInt64.self))
    }
    var writerState: UnsafeAtomic<UInt32> { atomic32(48) }
    /// 1 once the writer saw every reader attach (`waitUntilReady`).
    var readyFlag: UnsafeAtomic<UInt32> { atomic32(52) }

    // Publish line.
    var published: UnsafeAtomic<UInt64> { atomic64(128) }
    var dataWord: UnsafeAtomic<UInt32> { atomic32(136) }
    var dataWordAddress: UnsafeMutablePointer<UInt32> { word(136) }
    var readerSleepers: UnsafeAtomic<UInt32> { atomic32(140) }
    /// `c + 1` once the writer started filling chunk `c` in slices; c's header is valid once this
    /// is seen (acquire).
    var fillTag: UnsafeAtomic<UInt64> { atomic64(144) }
    /// Payload bytes of the chunk being filled in slices that the writer has written so far.
    var filled: UnsafeAtomic<UInt64> { atomic64(152) }

    // Space line.
    var spaceWord: UnsafeAtomic<UInt32> { atomic32(256) }
    var spaceWordAddress: UnsafeMutablePointer<UInt32> { word(256) }
    var writerSleeping: UnsafeAtomic<UInt32> { atomic32(260) }

    // Reader slots.
    func cursor(_ reader: Int) -> UnsafeAtomic<UInt64> { atomic64(layout.readerSlotOffset(reader)) }
    func readerState(_ reader: Int) -> UnsafeAtomic<UInt32> { atomic32(layout.readerSlotOffset(reader) + 8) }
    func setReaderIdentity(_ reader: Int, _ identity: ProcessIdentity) {
        let offset = layout.readerSlotOffset(reader)
        base.storeBytes(of: identity.pid, toByteOffset: offset + 12, as: Int32.self)
        base.storeBytes(of: identity.startTime, toByteOffset: offset + 16, as: UInt64.self)
        base.storeBytes(of: identity.namespace, toByteOffset: offset + 24, as: UInt64.self)
    }
    /// 1 while reader `reader` is counted in `readerSleepers`, so a writer that finds it dead can
    /// take it out of the count.
    func readerSleeping(_ reader: Int) -> UnsafeAtomic<UInt32> { atomic32(layout.readerSlotOffset(reader) + 32) }
    /// Valid once `readerState(reader)` was observed as attached with an acquire load.
    func readerIdentity(_ reader: Int) -> ProcessIdentity {
        let offset = layout.readerSlotOffset(reader)
        return ProcessIdentity(
            pid: base.load(fromByteOffset: offset + 12, as: Int32.self),
            startTime: base.load(fromByteOffset: offset + 16, as: UInt64.self),
            namespace: base.load(fromByteOffset: offset + 24, as: UInt64.self))
    }

    // Chunks.
    func chunkHeader(sequence: UInt64) -> UnsafeMutableRawPointer { base + layout.chunkOffset(sequence: sequence) }
    func chunkPayload(sequence: UInt64) -> UnsafeMutableRawPointer {
        base + layout.chunkOffset(sequence: sequence) + RingLayout.chunkHeaderBytes
    }
}

/// Reader and writer states stored in the segment.
enum SlotState {
    static let neverAttached: UInt32 = 0
    static let attached: UInt32 = 1
    static let detached: UInt32 = 2
    /// Slot claimed, identity not yet written: treated like never attached.
    static let attaching: UInt32 = 3
    static let writerOpen: UInt32 = 1
    static let writerClosed: UInt32 = 2
}

extension QueueOptions {
    /// Bytes of the broadcast queue's ring for `readers` local readers with these options (what
    /// `ccl doctor` holds against /dev/shm).
    package func ringBytes(readers: Int) throws(CCLError) -> Int {
        try RingLayout.validated(readerCount: readers, chunkCount: chunkCount, chunkBytes: chunkBytes, operation: "size a ring")
            .segmentSize
    }
}
