import ArgumentParser
import CCLCommands
import CCLTestSupport
import Testing

/// Random and boundary values for every numeric option (issue 9), parsed and validated in
/// process (`parseAsRoot` runs each command's `validate`): a command or an error, never a trap.
/// `CCL_FUZZ_CASES` raises the count.
@Suite struct CommandLineFuzzTests {
    static let shapes: [[String]] = [
        ["topology", "--world", "$", "--tp", "$", "--pp", "$", "--nproc-per-node", "$"],
        ["bench", "allreduce", "--nproc", "$", "--sizes", "$", "--target-ms", "$", "--dtype", "$"],
        ["bench", "queue", "--scale", "$", "--idle-seconds", "$", "--sizes", "$", "--chunk", "$", "--chunks", "$", "--readers", "$"],
        ["launch", "--nproc-per-node", "$", "--nnodes", "$", "--node-rank", "$", "--master-port", "$", "--", "true"],
        ["store", "serve", "--port", "$"],
        ["store", "get", "--addr", "$", "--timeout", "$", "key"],
        ["demo", "--tp", "$", "--pp", "$", "--steps", "$", "--hidden", "$", "--ffn", "$", "--tokens", "$"],
        ["gpu-check", "--ranks", "$"],
    ]

    @Test("numeric options of every command")
    func commandLines() {
        var rng = FuzzRandom.seeded("command-line")
        var outcomes = (parsed: 0, refused: 0)
        // 1000 by default: parsing is ~5 ms a case (some values are 100 000 characters long).
        for _ in 0..<FuzzRandom.cases(1000) {
            let shape = Self.shapes[Int(rng.next() % UInt64(Self.shapes.count))]
            // Use the equals form so a value like "-1" is a value, not an option.
            var arguments: [String] = []
            var index = 0
            while index < shape.count {
                if index + 1 < shape.count, shape[index + 1] == "$", shape[index].hasPrefix("--") {
                    arguments.append("\(shape[index])=\(rng.value())")
                    index += 2
                } else {
                    arguments.append(shape[index])
                    index += 1
                }
            }
            do {
                _ = try CCLCommand.parseAsRoot(arguments)
                outcomes.parsed += 1
            } catch {
                outcomes.refused += 1
            }
        }
        #expect(outcomes.parsed > 0 && outcomes.refused > 0, "\(outcomes) (seed \(rng.seed))")
    }
}
