import CCLCore
import CCLSystem

/// Settings of the shared-memory backend (`ShmBackend`, `ShmCommunicator`). Every rank of a group
/// must use the same sizes and algorithm (the arena checks the sizes when it attaches).
public struct ShmOptions: Sendable {
    /// Bytes per rank per round in the arena (pieces of larger calls are pipelined;
    /// `CCL_SHM_SLOT_BYTES`).
    public var slotBytes = 256 << 10
    /// Bytes per send/recv mailbox buffer; nil sizes it by the world size.
    public var mailboxBytes: Int?
    /// Forces the all-reduce (`CCL_ALGO=oneshot|twoshot`); nil chooses by the cost model.
    public var allReduce: SlotAllReduce?
    /// The cost model's inputs, instead of measuring them when a communicator is made
    /// (`CCL_SHM_COST=SYNC_NS,COPY_GBPS,REDUCE_GBPS`); ranks per CPU still come from the node.
    /// Ranks that differ agree on the median of theirs.
    public var cost: ShmCostModel?
    /// How waits spin, yield and sleep.
    public var wait = WaitPolicy()

    /// The defaults.
    public init() {}

    /// 32 MiB across all ordered pairs, each buffer between 16 KiB and 256 KiB.
    static func defaultMailboxBytes(worldSize: Int) -> Int {
        let pairs = max(1, worldSize * (worldSize - 1) * 2)
        return min(256 << 10, max(16 << 10, (32 << 20) / pairs)) / 64 * 64
    }

    /// `CCL_SHM_SLOT_BYTES` and `CCL_SHM_COST` over `self`; the error names the variable and value.
    func reading(_ environment: [String: String]) throws(CCLError) -> ShmOptions {
        var options = self
        if let value = environment["CCL_SHM_SLOT_BYTES"], !value.isEmpty {
            guard let bytes = Int(value), bytes >= 4096, bytes % 64 == 0, bytes <= 1 << 30 else {
                throw CollectiveOptions.invalid("CCL_SHM_SLOT_BYTES", value, "a multiple of 64 in 4096...1073741824")
            }
            options.slotBytes = bytes
        }
        if let value = environment["CCL_SHM_COST"], !value.isEmpty {
            options.cost = try ShmCostModel.parse(value)
        }
        return options
    }
}
