/// Slurm's tasks-per-node list (`SLURM_TASKS_PER_NODE`, and `SLURM_NTASKS_PER_NODE` in the same
/// form): counts in node order, a run of equal counts written `count(xREPEAT)`, as `4(x2),3`
/// for nodes of 4, 4 and 3 tasks.
enum SlurmTaskList {
    /// The number of tasks on node `node` (`SLURM_NODEID`), or nil when `text` is not such a list,
    /// names fewer nodes, or does not add up to `total` tasks. Bounded: at most `total` nodes are
    /// expanded, so a hostile repeat count costs nothing.
    static func tasks(onNode node: Int, in text: String, total: Int) -> Int? {
        guard node >= 0, total >= 1 else { return nil }
        var nodes = 0, tasks = 0
        var found: Int?
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let (count, repeats) = parse(entry), count >= 1, repeats >= 1, repeats <= total, count <= total else { return nil }
            if found == nil, node < nodes + repeats { found = count }
            nodes += repeats
            tasks += count * repeats
            guard tasks <= total else { return nil }
        }
        return tasks == total ? found : nil
    }

    /// "4" → (4, 1); "4(x2)" → (4, 2); anything else nil.
    private static func parse(_ entry: Substring) -> (count: Int, repeats: Int)? {
        guard let open = entry.firstIndex(of: "(") else { return number(entry).map { ($0, 1) } }
        let rest = entry[entry.index(after: open)...]
        guard rest.hasPrefix("x"), rest.hasSuffix(")"), let count = number(entry[..<open]),
            let repeats = number(rest.dropFirst().dropLast())
        else { return nil }
        return (count, repeats)
    }

    /// Plain decimal digits (at most 9), else nil.
    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return Int(text)
    }
}
