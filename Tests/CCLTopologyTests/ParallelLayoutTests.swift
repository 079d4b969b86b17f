import CCLCore
import Foundation
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

    @Test("DCP: consecutive blocks inside TP without PCP; across PCP first, then TP, with it")
    func decodeContextParallel() throws {
        let layout = try ParallelLayout(world: 8, tp: 4, dcp: 2)
        #expect(layout.dcpGroups == [[0, 1], [2, 3], [4, 5], [6, 7]])
        let withPCP = try ParallelLayout(world: 8, tp: 2, dp: 2, pcp: 2, dcp: 4)
        #expect(withPCP.dcpGroups == [[0, 2, 1, 3], [4, 6, 5, 7]])
        #expect(try ParallelLayout(world: 8, tp: 2, dp: 2, pcp: 2, dcp: 2).dcpGroups == [[0, 2], [1, 3], [4, 6], [5, 7]])
        #expect(throws: CCLError.self) { _ = try ParallelLayout(world: 8, tp: 4, pcp: 2, dcp: 4) }
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

/// Compares with vLLM's own construction, replayed in numpy by `vllm_layout_oracle.py`, over many
/// configurations. Skips, saying so, where python3 with numpy is missing.
@Suite struct ParallelLayoutOracleTests {
    static let oracle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("vllm_layout_oracle.py")

    static var hasNumpy: Bool {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import numpy"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }

    @Test(
        "every valid configuration up to 64 ranks matches vLLM 0.33.0",
        .enabled(if: hasNumpy, "needs python3 with numpy for the vLLM oracle"))
    func matchesVLLM() throws {
        var configs: [[Int]] = []
        for world in [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64] {
            for tp in [1, 2, 4, 8] where world % tp == 0 {
                for pp in [1, 2, 3, 4] where world % (tp * pp) == 0 {
                    for dp in [1, 2, 4] where world % (tp * pp * dp) == 0 {
                        for pcp in [1, 2] where world % (tp * pp * dp * pcp) == 0 {
                            let dcps = pcp == 1 ? [1, 2, 4, 8].filter { tp % $0 == 0 } : [1, pcp, tp * pcp]
                            for dcp in Set(dcps) { configs.append([world, tp, pp, dp, pcp, dcp]) }
                        }
                    }
                }
            }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.oracle.path]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let lines = configs.map { "[" + $0.map(String.init).joined(separator: ",") + "]\n" }.joined()
        input.fileHandleForWriting.write(Data(lines.utf8))
        try input.fileHandleForWriting.close()
        let answer = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let expected = String(decoding: answer, as: UTF8.self).split(separator: "\n")
        try #require(expected.count == configs.count)
        for (config, json) in zip(configs, expected) {
            let groups = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [[Int]]])
            let layout = try ParallelLayout(world: config[0], tp: config[1], pp: config[2], dp: config[3], pcp: config[4], dcp: config[5])
            for kind in ParallelLayout.Kind.allCases {
                #expect(layout.groups(kind) == groups[kind.rawValue], "\(kind) for \(config)")
            }
        }
        print("compared \(configs.count) configurations with vLLM's construction")
    }
}
