import CCLCore

/// vLLM's model-parallel rank layout (`initialize_model_parallel` in vLLM 0.33.0's
/// `vllm/distributed/parallel_state.py`), exactly: the same groups in the same order, so every
/// rank creates them in list order and agrees with vLLM processes.
///
/// With E = W / (DP·PP·PCP·TP) ("external" data parallel), ranks are laid out as
/// `arange(W).reshape(E, DP, PP, PCP, TP)`; then
///
/// | group | how (numpy terms)                                   | size        |
/// |-------|-----------------------------------------------------|-------------|
/// | TP    | `reshape(-1, TP)`: consecutive blocks               | TP          |
/// | DCP   | DCP > 1: `transpose(3, 4).reshape(-1, DCP)`        | DCP         |
/// | PCP   | `transpose(3, 4).reshape(-1, PCP)`                  | PCP         |
/// | PP    | `transpose(2, 4).reshape(-1, PP)`                   | PP          |
/// | DP    | `transpose(1, 4).reshape(-1, DP)`                   | DP          |
/// | EP    | `transpose(1, 2).reshape(-1, DP·PCP·TP)`            | DP·PCP·TP   |
///
/// DCP must divide TP when PCP = 1 (then its groups are consecutive blocks inside TP groups); with
/// PCP > 1 it must be 1, PCP or TP·PCP (vLLM's `ParallelConfig` rule).
///
/// Example, W=16 DP=2 PP=2 TP=4: PP `[[0,4],[1,5],[2,6],[3,7],[8,12],[9,13],[10,14],[11,15]]`,
/// DP `[[0,8],[4,12],[1,9],[5,13],[2,10],[6,14],[3,11],[7,15]]`,
/// EP `[[0,1,2,3,8,9,10,11],[4,5,6,7,12,13,14,15]]`.
public struct ParallelLayout: Sendable, Equatable {
    /// Ranks in the job (W).
    public let world: Int
    /// Tensor-parallel size.
    public let tp: Int
    /// Pipeline-parallel size.
    public let pp: Int
    /// Data-parallel size (inside the job).
    public let dp: Int
    /// Prefill-context-parallel size.
    public let pcp: Int
    /// Decode-context-parallel size.
    public let dcp: Int
    /// External data parallel: W / (DP·PP·PCP·TP).
    public let externalDP: Int

    /// Tensor-parallel groups, as vLLM lists them (global ranks; each list of groups holds every
    /// rank exactly once).
    public let tpGroups: [[Int]]
    /// Pipeline-parallel groups.
    public let ppGroups: [[Int]]
    /// Data-parallel groups.
    public let dpGroups: [[Int]]
    /// Expert-parallel groups.
    public let epGroups: [[Int]]
    /// Prefill-context-parallel groups.
    public let pcpGroups: [[Int]]
    /// Decode-context-parallel groups.
    public let dcpGroups: [[Int]]

    /// Checks the sizes and builds every group list. Sizes that do not divide fail with the
    /// arithmetic in the message.
    public init(world: Int, tp: Int = 1, pp: Int = 1, dp: Int = 1, pcp: Int = 1, dcp: Int = 1) throws(CCLError) {
        let operation = "parallel layout"
        for (name, value) in [("world", world), ("tp", tp), ("pp", pp), ("dp", dp), ("pcp", pcp), ("dcp", dcp)]
        where value < 1 || value > LaunchEnvironment.maxWorldSize {
            throw CCLError(
                .invalidArgument, operation: operation,
                "\(name) must be in 1...\(LaunchEnvironment.maxWorldSize) (the most ranks a job may have), got \(value)")
        }
        let (product, overflow) = [pp, pcp, tp].reduce((dp, false)) { partial, size in
            let next = partial.0.multipliedReportingOverflow(by: size)
            return (next.partialValue, partial.1 || next.overflow)
        }
        guard !overflow, world % product == 0 else {
            throw CCLError(
                .invalidArgument, operation: operation,
                "world size \(world) is not divisible by dp \(dp) × pp \(pp) × pcp \(pcp) × tp \(tp) = "
                    + (overflow ? "an overflowing product" : "\(product) (remainder \(world % product))"))
        }
        if pcp == 1 {
            guard tp % dcp == 0 else {
                throw CCLError(
                    .invalidArgument, operation: operation,
                    "dcp \(dcp) must divide tp \(tp) (\(tp) = \(tp / dcp) × \(dcp) + \(tp % dcp))")
            }
        } else {
            guard dcp == 1 || dcp == pcp || dcp == tp * pcp else {
                throw CCLError(
                    .invalidArgument, operation: operation,
                    "with pcp \(pcp), dcp must be 1, pcp (\(pcp)) or tp × pcp (\(tp * pcp)); got \(dcp)")
            }
        }
        self.world = world
        self.tp = tp
        self.pp = pp
        self.dp = dp
        self.pcp = pcp
        self.dcp = dcp
        externalDP = world / product
        // Axes: 0 E, 1 DP, 2 PP, 3 PCP, 4 TP.
        let shape = [externalDP, dp, pp, pcp, tp]
        tpGroups = Self.groups(shape: shape, swapping: nil, size: tp)
        dcpGroups = Self.groups(shape: shape, swapping: dcp > 1 ? (3, 4) : nil, size: dcp)
        pcpGroups = Self.groups(shape: shape, swapping: (3, 4), size: pcp)
        ppGroups = Self.groups(shape: shape, swapping: (2, 4), size: pp)
        dpGroups = Self.groups(shape: shape, swapping: (1, 4), size: dp)
        epGroups = Self.groups(shape: shape, swapping: (1, 2), size: dp * pcp * tp)
    }

    /// `arange(product(shape)).reshape(shape)`, with two axes swapped, flattened in row-major
    /// order and cut into rows of `size`.
    static func groups(shape: [Int], swapping axes: (Int, Int)?, size: Int) -> [[Int]] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        var order = Array(shape.indices)
        if let (a, b) = axes { order.swapAt(a, b) }
        let viewShape = order.map { shape[$0] }
        let viewStrides = order.map { strides[$0] }
        let count = shape.reduce(1, *)
        var flat: [Int] = []
        flat.reserveCapacity(count)
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            flat.append(zip(index, viewStrides).reduce(0) { $0 + $1.0 * $1.1 })
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < viewShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return stride(from: 0, to: count, by: size).map { Array(flat[$0..<($0 + size)]) }
    }

    /// The kinds of group, in the order `ccl topology` prints them.
    public enum Kind: String, CaseIterable, Sendable {
        case tp, pp, dp, ep, pcp, dcp
    }

    /// The groups of `kind` (`tpGroups`, `ppGroups`, …).
    public func groups(_ kind: Kind) -> [[Int]] {
        switch kind {
        case .tp: tpGroups
        case .pp: ppGroups
        case .dp: dpGroups
        case .ep: epGroups
        case .pcp: pcpGroups
        case .dcp: dcpGroups
        }
    }

    /// The index, in `groups(kind)`, of the group that holds `rank`.
    public func groupIndex(of rank: Int, in kind: Kind) -> Int? {
        groups(kind).firstIndex { $0.contains(rank) }
    }
}
