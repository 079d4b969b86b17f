import Foundation
import Testing

/// Absurd command-line values are refused with a message naming the option, before anything is
/// started or allocated (each of these crashed, hung or misbehaved before: issue 9, items 4–6, 10).
@Suite struct CommandBoundsTests {
    static let cases: [([String], String)] = [
        (["topology", "--world", "9223372036854775807"], "world must be in 1...65536"),
        (["topology", "--world", "4611686018427387904", "--tp", "2"], "world must be in 1...65536"),
        (["store", "serve", "--port", "99999"], "port 99999 is outside 0...65535"),
        (["store", "serve", "--port", "131072"], "port 131072 is outside 0...65535"),
        (["launch", "--nproc-per-node", "100000", "--", "true"], "--nproc-per-node must be in 1...1024"),
        (["launch", "--nproc-per-node", "1000", "--nnodes", "100", "--master-port", "1", "--", "true"], "above the limit of 65536 ranks"),
        (["bench", "allreduce", "--target-ms", "nan"], "--target-ms must be a number"),
        (["bench", "allreduce", "--sizes", "9223372036854775807"], "above the limit of 4294967296 bytes"),
        (["bench", "allreduce", "--sizes", "3"], "size 3 is not a whole number of float32 elements"),
        (["bench", "queue", "--scale", "nan"], "--scale must be a number"),
        (["bench", "queue", "--idle-seconds=-1"], "--idle-seconds must be a number"),
        (["bench", "queue", "--sizes", "9223372036854775807K"], "above the limit of 4294967296 bytes"),
        (["store", "get", "--addr", "127.0.0.1:1", "--timeout", "nan", "k"], "--timeout must be a number"),
    ]

    @Test("refused with the option named", arguments: cases)
    func refused(_ arguments: [String], _ message: String) throws {
        let result = try runCCL(arguments, environment: ["CCL_TOKEN": "bounds"])
        #expect(result.status != 0)
        #expect(result.error.contains(message), "\(arguments): \(result.error)")
    }
}
