import ArgumentParser
import CCL

/// `ccl topology`: prints vLLM's TP/PP/DP/EP/PCP/DCP groups for a world size, as a table or JSON.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology", abstract: "Print the parallel groups (exactly vLLM's layout) for a world size.")

    @Option(help: "World size (number of ranks).") var world: Int
    @Option(help: "Tensor-parallel size.") var tp: Int = 1
    @Option(help: "Pipeline-parallel size.") var pp: Int = 1
    @Option(help: "Data-parallel size.") var dp: Int = 1
    @Option(help: "Prefill context-parallel size.") var pcp: Int = 1
    @Option(help: "Decode context-parallel size (divides tp).") var dcp: Int = 1
    @Option(help: "Ranks per node, to show which node each rank is on.") var nprocPerNode: Int?
    @Flag(help: "One JSON object: {\"world\": W, \"tp\": [[…]], \"pp\": …, \"dp\": …, \"ep\": …, \"pcp\": …, \"dcp\": …}.")
    var json = false

    func run() throws {
        let layout: ParallelLayout
        do {
            layout = try ParallelLayout(world: world, tp: tp, pp: pp, dp: dp, pcp: pcp, dcp: dcp)
        } catch {
            throw ValidationError(error.message)
        }
        if let nprocPerNode, !(1...LaunchEnvironment.maxWorldSize).contains(nprocPerNode) {
            throw ValidationError("--nproc-per-node must be in 1...\(LaunchEnvironment.maxWorldSize)")
        }
        print(json ? Self.json(layout) : Self.table(layout, nprocPerNode: nprocPerNode))
    }

    static func json(_ layout: ParallelLayout) -> String {
        let lists = ParallelLayout.Kind.allCases.map { kind in
            "\"\(kind.rawValue)\": ["
                + layout.groups(kind).map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }
                .joined(separator: ", ") + "]"
        }
        return "{\"world\": \(layout.world), " + lists.joined(separator: ", ") + "}"
    }

    static func table(_ layout: ParallelLayout, nprocPerNode: Int?) -> String {
        var lines: [String] = []
        lines.append(
            "world \(layout.world) = external dp \(layout.externalDP) × dp \(layout.dp) × pp \(layout.pp) × pcp \(layout.pcp) "
                + "× tp \(layout.tp); dcp \(layout.dcp)")
        let kinds = ParallelLayout.Kind.allCases
        var header = ["rank"]
        if nprocPerNode != nil { header += ["node", "local"] }
        header += kinds.map(\.rawValue)
        lines.append(header.map { $0.padding(5) }.joined(separator: " "))
        for rank in 0..<layout.world {
            var row = ["\(rank)"]
            if let perNode = nprocPerNode { row += ["\(rank / perNode)", "\(rank % perNode)"] }
            row += kinds.map { kind in layout.groupIndex(of: rank, in: kind).map { "\(kind.rawValue)\($0)" } ?? "-" }
            lines.append(row.map { $0.padding(5) }.joined(separator: " "))
        }
        lines.append("")
        for kind in kinds {
            let groups = layout.groups(kind)
            let described = groups.enumerated().map { index, ranks in
                var text = "\(kind.rawValue)\(index)=[" + ranks.map(String.init).joined(separator: ",") + "]"
                if let perNode = nprocPerNode {
                    let nodes = Set(ranks.map { $0 / perNode }).sorted()
                    text += nodes.count == 1 ? "@node\(nodes[0])" : "@nodes" + nodes.map(String.init).joined(separator: "+")
                }
                return text
            }
            lines.append(
                "\(kind.rawValue.uppercased()) (\(groups.count) groups of \(groups.first?.count ?? 0)): " + described.joined(separator: " ")
            )
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// Left-aligned in a column of `width` characters.
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
