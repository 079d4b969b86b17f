import CCLCore
import Testing

@testable import CCLTopology

/// Vectors worked out by hand from vLLM's `initialize_model_parallel` (numpy reshape/transpose).
@Suite struct ParallelLayoutTests {
    @Test("W=16 DP=2 PP=2 TP=4 (the issue's example)")
    func example() throws {
        let layout = try ParallelLayout(world: 16, tp: 4, pp: 2, dp: 2)
        #expect(layout.tpGroups == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]])
        #expect(layout.ppGroups == [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14], [11, 15]])
        #expect(layout.dpGroups == [[0, 8], [4, 12], [1, 9], [5, 13], [2, 10], [6, 14], [3, 11], [7, 15]])
        #expect(layout.epGroups == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]])
        #expect(layout.externalDP == 1)
    }

    @Test("W=8 DP=1 PP=4 TP=2")
    func pipeline() throws {
        let layout = try ParallelLayout(world: 8, tp: 2, pp: 4)
        #expect(layout.tpGroups == [[0, 1], [2, 3], [4, 5], [6, 7]])
        #expect(layout.ppGroups == [[0, 2, 4, 6], [1, 3, 5, 7]])
        #expect(layout.dpGroups == [[0], [2], [4], [6], [1], [3], [5], [7]])
        #expect(layout.epGroups == [[0, 1], [2, 3], [4, 5], [6, 7]])
    }

    @Test("W=8 DP=2 PCP=2 TP=2")
    func prefillContextParallel() throws {
        let layout = try ParallelLayout(world: 8, tp: 2, dp: 2, pcp: 2)
        #expect(layout.tpGroups == [[0, 1], [2, 3], [4, 5], [6, 7]])
        #expect(layout.pcpGroups == [[0, 2], [1, 3], [4, 6], [5, 7]])
        #expect(layout.ppGroups == [[0], [2], [1], [3], [4], [6], [5], [7]])
        #expect(layout.dpGroups == [[0, 4], [2, 6], [1, 5], [3, 7]])
        #expect(layout.epGroups == [[0, 1, 2, 3, 4, 5, 6, 7]])
        #expect(layout.dcpGroups == (0..<8).map { [$0] })
    }

    @Test("external data parallel: W=16 DP=2 PP=2 TP=2 gives E=2")
    func externalDataParallel() throws {
        let layout = try ParallelLayout(world: 16, tp: 2, pp: 2, dp: 2)
        #expect(layout.externalDP == 2)
        #expect(layout.ppGroups == [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9, 11], [12, 14], [13, 15]])
        #expect(layout.dpGroups == [[0, 4], [2, 6], [1, 5], [3, 7], [8, 12], [10, 14], [9, 13], [11, 15]])
        #expect(layout.epGroups == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
    }

    @Test("DCP groups are consecutive blocks inside TP")
    func decodeContextParallel() throws {
        let layout = try ParallelLayout(world: 8, tp: 4, dcp: 2)
        #expect(layout.dcpGroups == [[0, 1], [2, 3], [4, 5], [6, 7]])
    }

    @Test("every rank is in exactly one group of each kind", arguments: [(24, 2, 3, 2, 1, 1), (12, 2, 1, 3, 2, 2), (7, 1, 7, 1, 1, 1)])
    func partition(world: Int, tp: Int, pp: Int, dp: Int, pcp: Int, dcp: Int) throws {
        let layout = try ParallelLayout(world: world, tp: tp, pp: pp, dp: dp, pcp: pcp, dcp: dcp)
        for kind in ParallelLayout.Kind.allCases {
            #expect(layout.groups(kind).flatMap { $0 }.sorted() == Array(0..<world), "\(kind)")
        }
    }

    @Test("sizes that do not divide fail showing the arithmetic")
    func errors() {
        let error = #expect(throws: CCLError.self) { _ = try ParallelLayout(world: 12, tp: 4, pp: 2, dp: 2) }
        #expect(error?.message == "world size 12 is not divisible by dp 2 × pp 2 × pcp 1 × tp 4 = 16 (remainder 12)")
        let dcp = #expect(throws: CCLError.self) { _ = try ParallelLayout(world: 8, tp: 4, dcp: 3) }
        #expect(dcp?.message.contains("dcp 3 must divide tp 4") == true)
        #expect(throws: CCLError.self) { _ = try ParallelLayout(world: 8, tp: 0) }
    }
}
