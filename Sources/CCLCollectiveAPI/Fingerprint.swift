import CCLCore

/// Which collective a rank called.
public enum CollectiveKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case allReduce = 1, allGather, reduceScatter, broadcast, gather, barrier, sendRecv

    /// "allReduce", "broadcast", …
    public var description: String {
        switch self {
        case .allReduce: "allReduce"
        case .allGather: "allGather"
        case .reduceScatter: "reduceScatter"
        case .broadcast: "broadcast"
        case .gather: "gather"
        case .barrier: "barrier"
        case .sendRecv: "send/recv"
        }
    }
}

/// What one rank called, compared across ranks before any data is combined: the collective's
/// sequence number in its communicator, kind, dtype, reduce op, element count and root. Ranks
/// that disagree all fail with an error naming each rank's call (torch's
/// `TORCH_DISTRIBUTED_DEBUG=DETAIL`, cheap enough to stay on: three words per rank).
///
/// Packed into three 64-bit words so it can sit in a shared cache line or a frame header:
/// `sequence`, `kind | dtype << 8 | op << 16 | (root + 1) << 32`, `count`.
public struct Fingerprint: Sendable, Hashable, CustomStringConvertible {
    /// The call's number on its communicator.
    public var sequence: UInt64
    /// Which collective.
    public var kind: CollectiveKind
    /// Its element type.
    public var dtype: DType
    /// `nil` for collectives without a reduction.
    public var op: ReduceOp?
    /// Its element count.
    public var count: Int
    /// `nil` for collectives without a root.
    public var root: Int?

    /// A fingerprint of call `sequence`.
    @inlinable
    public init(sequence: UInt64, kind: CollectiveKind, dtype: DType, op: ReduceOp? = nil, count: Int, root: Int? = nil) {
        self.sequence = sequence
        self.kind = kind
        self.dtype = dtype
        self.op = op
        self.count = count
        self.root = root
    }

    /// The packed form (see the type's comment).
    @inlinable @inline(__always)
    public var words: (UInt64, UInt64, UInt64) {
        let opBits = UInt64(op.map { $0.rawValue &+ 1 } ?? 0)
        let rootBits = UInt64(UInt32(truncatingIfNeeded: (root ?? -1) &+ 1))
        let middle = UInt64(kind.rawValue) | UInt64(dtype.rawValue) << 8 | opBits << 16 | rootBits << 32
        return (sequence, middle, UInt64(truncatingIfNeeded: count))
    }

    /// Unpacks words another process wrote; nil when they name no known kind, dtype or op.
    public init?(words: (UInt64, UInt64, UInt64)) {
        let middle = words.1
        guard let kind = CollectiveKind(rawValue: UInt8(truncatingIfNeeded: middle)),
            let dtype = DType(rawValue: UInt8(truncatingIfNeeded: middle >> 8))
        else { return nil }
        let opBits = UInt8(truncatingIfNeeded: middle >> 16)
        var op: ReduceOp?
        if opBits != 0 {
            guard let known = ReduceOp(rawValue: opBits &- 1) else { return nil }
            op = known
        }
        let rootBits = Int(UInt32(truncatingIfNeeded: middle >> 32))
        guard words.2 <= UInt64(Int.max) else { return nil }
        self.init(
            sequence: words.0, kind: kind, dtype: dtype, op: op, count: Int(words.2), root: rootBits == 0 ? nil : rootBits - 1)
    }

    /// "allReduce(sum, float32, count 7) #12".
    public var description: String {
        var parts: [String] = []
        if let op { parts.append("\(op)") }
        if kind != .barrier { parts.append("\(dtype)") }
        if kind != .barrier { parts.append("count \(count)") }
        if let root { parts.append(kind == .sendRecv ? "peer \(root)" : "root \(root)") }
        return "\(kind)(\(parts.joined(separator: ", "))) #\(sequence)"
    }
}

extension Fingerprint {
    /// The error every rank throws when the ranks' calls differ: which ranks called what.
    ///
    /// - Parameter calls: each rank's fingerprint, in rank order (rank = index, or `ranks[index]`).
    package static func mismatch(_ calls: [Fingerprint?], ranks: [Int], rank: Int, group: String) -> CCLError {
        var byCall: [(String, [Int])] = []
        for (index, call) in calls.enumerated() {
            let text = call.map { "\($0)" } ?? "an unreadable call"
            if let at = byCall.firstIndex(where: { $0.0 == text }) {
                byCall[at].1.append(ranks[index])
            } else {
                byCall.append((text, [ranks[index]]))
            }
        }
        let summary = byCall.map { call, who in
            "rank\(who.count > 1 ? "s" : "") \(who.map(String.init).joined(separator: ", ")) called \(call)"
        }
        return CCLError(
            .invalidArgument, operation: "collective on group \(group)", rank: rank,
            "ranks disagree on the call: " + summary.joined(separator: "; "))
    }
}
