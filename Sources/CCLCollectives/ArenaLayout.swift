import Atomics
import CCLCore
import CCLSystem

/// Where everything lives in a shared-memory collective arena (one per communicator on a node).
///
/// ```
///  offset                    contents (u = plain, a = atomic; every rank's line is written only by it)
///  0         header line     u64 magic "CCLCOLL1" (a, release-stored last) · u32 version · u32 worldSize
///                            u64 slotBytes · u64 mailboxBytes · u64 segmentSize
///  128       wake line       u32 wakeWord (futex every sleeper waits on) · u32 sleepers (a)
///  256+256r  rank r, line 0  u64 epoch (a): sync points rank r has reached · fingerprint[2] (3 u64
///                            each, by collective sequence parity) · u32 aborted (a)
///            rank r, line 1  i32 pid · u64 startTime · u64 pidNamespace · u32 attached (a)
///                            · at +96: 3 f64, the costs rank r measured (sync ns, copy and reduce GB/s)
///            rank r, +128    u32 reason length · 124 bytes of UTF-8: why rank r gave up
///  slots     rank r, p       slotBytes each, at slotsOffset + (2r + p) · slotBytes, p = round parity
///  mailbox   (s → d)         line 0: u64 sent (a, by s) · line 1: u64 received (a, by d), u32 aborted (a)
///                            then 2 buffers of (64-byte header + mailboxBytes)
/// ```
///
/// | who      | may write                   | when                                                     |
/// |----------|-----------------------------|----------------------------------------------------------|
/// | rank r   | its slot of round k         | after every rank reached the sync point ending round k-1 |
/// | any rank | read slot of rank q, round k | after rank q reached the sync point that ends its write  |
/// | sender   | mailbox buffer of piece i   | `i - received < 2`, then `sent = i + 1` (release)         |
/// | receiver | reads piece i               | `sent > i` (acquire), then `received = i + 1` (release)   |
///
/// Rounds alternate between two slots per rank, so a rank may write round k + 1 while slower
/// ranks still read round k.
struct ArenaLayout: Sendable, Equatable {
    static let magic: UInt64 = 0x314C_4C4F_434C_4343  // "CCLCOLL1" little-endian
    static let version: UInt32 = 2
    static let rankLineBytes = 256
    static let ranksOffset = 256
    static let reasonBytes = 124
    static let mailboxHeaderBytes = 64
    static let mailboxControlBytes = 128
    static let maxRanks = 4096

    let worldSize: Int
    let slotBytes: Int
    let mailboxBytes: Int

    var slotsOffset: Int { Self.ranksOffset + worldSize * Self.rankLineBytes }
    var mailboxesOffset: Int { slotsOffset + 2 * worldSize * slotBytes }
    var mailboxStride: Int { Self.mailboxControlBytes + 2 * (Self.mailboxHeaderBytes + mailboxBytes) }
    var segmentSize: Int { mailboxesOffset + worldSize * worldSize * mailboxStride }

    func rankOffset(_ rank: Int) -> Int { Self.ranksOffset + rank * Self.rankLineBytes }
    func slotOffset(rank: Int, parity: Int) -> Int { slotsOffset + (2 * rank + parity) * slotBytes }
    func mailboxOffset(from source: Int, to destination: Int) -> Int {
        mailboxesOffset + (source * worldSize + destination) * mailboxStride
    }

    /// Checks sizes from options or from another process's header.
    static func validated(worldSize: Int, slotBytes: Int, mailboxBytes: Int, operation: String) throws(CCLError) -> ArenaLayout {
        guard (1...maxRanks).contains(worldSize) else {
            throw CCLError(.invalidArgument, operation: operation, "world size \(worldSize) is outside 1...\(maxRanks)")
        }
        for (name, value) in [("slot", slotBytes), ("mailbox", mailboxBytes)] {
            guard (4096...1 << 30).contains(value), value % 64 == 0 else {
                throw CCLError(.invalidArgument, operation: operation, "\(name) size \(value) must be a multiple of 64 in 4 KiB...1 GiB")
            }
        }
        guard slotBytes >= worldSize * 64 else {
            throw CCLError(
                .invalidArgument, operation: operation, "slot size \(slotBytes) is below 64 bytes per rank for \(worldSize) ranks")
        }
        let layout = ArenaLayout(worldSize: worldSize, slotBytes: slotBytes, mailboxBytes: mailboxBytes)
        let (total, overflow) = (worldSize * worldSize).multipliedReportingOverflow(by: layout.mailboxStride)
        guard !overflow, total < 1 << 40 else {
            throw CCLError(.invalidArgument, operation: operation, "an arena for \(worldSize) ranks would not fit in memory")
        }
        return layout
    }
}

/// Typed access to an arena's words; `base` must stay mapped while the view is used.
struct ArenaView: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let layout: ArenaLayout

    private func atomic64(_ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }
    private func atomic32(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    // Header.
    var magic: UnsafeAtomic<UInt64> { atomic64(0) }
    func writeHeader() {
        base.storeBytes(of: ArenaLayout.version, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt32(layout.worldSize), toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: UInt64(layout.slotBytes), toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: UInt64(layout.mailboxBytes), toByteOffset: 24, as: UInt64.self)
        base.storeBytes(of: UInt64(layout.segmentSize), toByteOffset: 32, as: UInt64.self)
        magic.store(ArenaLayout.magic, ordering: .releasing)
    }
    static func readClaimedSizes(_ base: UnsafeRawPointer) -> (version: UInt32, world: Int, slot: Int, mailbox: Int, size: UInt64) {
        (
            base.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
            Int(base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
            Int(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            Int(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self)),
            base.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
        )
    }

    // Wake line.
    var wakeWord: UnsafeAtomic<UInt32> { atomic32(128) }
    var wakeWordAddress: UnsafeMutablePointer<UInt32> { (base + 128).assumingMemoryBound(to: UInt32.self) }
    var sleepers: UnsafeAtomic<UInt32> { atomic32(132) }

    // Rank lines.
    func epoch(_ rank: Int) -> UnsafeAtomic<UInt64> { atomic64(layout.rankOffset(rank)) }
    func fingerprintAddress(_ rank: Int, parity: Int) -> UnsafeMutablePointer<UInt64> {
        (base + layout.rankOffset(rank) + 8 + 24 * parity).assumingMemoryBound(to: UInt64.self)
    }
    func aborted(_ rank: Int) -> UnsafeAtomic<UInt32> { atomic32(layout.rankOffset(rank) + 56) }
    func attached(_ rank: Int) -> UnsafeAtomic<UInt32> { atomic32(layout.rankOffset(rank) + 88) }

    /// The cost model's inputs rank `rank` measured: sync ns, copy and reduce bytes per ns.
    func costs(_ rank: Int) -> UnsafeMutablePointer<Double> {
        (base + layout.rankOffset(rank) + 96).assumingMemoryBound(to: Double.self)
    }

    func setIdentity(_ rank: Int, _ identity: ProcessIdentity) {
        let line = base + layout.rankOffset(rank) + 64
        line.storeBytes(of: identity.pid, toByteOffset: 0, as: Int32.self)
        line.storeBytes(of: identity.startTime, toByteOffset: 8, as: UInt64.self)
        line.storeBytes(of: identity.namespace, toByteOffset: 16, as: UInt64.self)
    }
    func identity(_ rank: Int) -> ProcessIdentity {
        let line = UnsafeRawPointer(base + layout.rankOffset(rank) + 64)
        return ProcessIdentity(
            pid: line.load(fromByteOffset: 0, as: Int32.self), startTime: line.load(fromByteOffset: 8, as: UInt64.self),
            namespace: line.load(fromByteOffset: 16, as: UInt64.self))
    }

    /// Records why `rank` gave up (truncated to fit), before its `aborted` flag is raised.
    func setReason(_ rank: Int, _ text: String) {
        let area = base + layout.rankOffset(rank) + 128
        let bytes = Array(text.utf8.prefix(ArenaLayout.reasonBytes))
        area.storeBytes(of: UInt32(bytes.count), as: UInt32.self)
        bytes.withUnsafeBytes { (area + 4).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(area), byteCount: $0.count) }
    }
    func reason(_ rank: Int) -> String {
        let area = UnsafeRawPointer(base + layout.rankOffset(rank) + 128)
        let length = min(Int(area.load(as: UInt32.self)), ArenaLayout.reasonBytes)
        return String(decoding: UnsafeRawBufferPointer(start: area + 4, count: length), as: UTF8.self)
    }

    func slot(rank: Int, parity: Int) -> UnsafeMutableRawPointer { base + layout.slotOffset(rank: rank, parity: parity) }

    // Mailboxes.
    func sent(from source: Int, to destination: Int) -> UnsafeAtomic<UInt64> {
        atomic64(layout.mailboxOffset(from: source, to: destination))
    }
    func received(from source: Int, to destination: Int) -> UnsafeAtomic<UInt64> {
        atomic64(layout.mailboxOffset(from: source, to: destination) + 64)
    }
    func mailboxAborted(from source: Int, to destination: Int) -> UnsafeAtomic<UInt32> {
        atomic32(layout.mailboxOffset(from: source, to: destination) + 72)
    }
    /// Header (64 bytes) then payload of buffer `index & 1`.
    func mailboxBuffer(from source: Int, to destination: Int, piece: UInt64) -> UnsafeMutableRawPointer {
        base + layout.mailboxOffset(from: source, to: destination) + ArenaLayout.mailboxControlBytes
            + Int(piece & 1) * (ArenaLayout.mailboxHeaderBytes + layout.mailboxBytes)
    }
}

extension ShmOptions {
    /// Bytes of the shared-memory arena a group of `worldSize` ranks on one node makes with these
    /// options (what `ccl doctor` holds against /dev/shm).
    package func arenaBytes(worldSize: Int) throws(CCLError) -> Int {
        try ArenaLayout.validated(
            worldSize: worldSize, slotBytes: slotBytes, mailboxBytes: mailboxBytes ?? Self.defaultMailboxBytes(worldSize: worldSize),
            operation: "size an arena"
        ).segmentSize
    }
}
