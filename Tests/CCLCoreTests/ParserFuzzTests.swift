import CCLCore
import CCLTestSupport
import Foundation
import Testing

/// Random and boundary inputs for the parsers that take input from outside (issue 9): each case
/// must end in a value or a thrown error, never a trap; a trap would end the test run. Seeds are
/// printed; `CCL_FUZZ_CASES` raises the count for a long run.
@Suite struct ParserFuzzTests {
    static var cases: Int { FuzzRandom.cases() }

    static let launchKeys = [
        "CCL_RANK", "CCL_WORLD_SIZE", "CCL_LOCAL_RANK", "CCL_LOCAL_WORLD_SIZE", "CCL_NODE_RANK", "CCL_NNODES", "CCL_MASTER_ADDR",
        "CCL_MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID",
        "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES", "SLURM_NODEID", "LOCAL_SIZE", "CCL_DP_RANK", "CCL_DP_SIZE", "CCL_DP_RANK_LOCAL",
        "CCL_DP_MASTER_IP", "CCL_DP_MASTER_PORT", "CCL_TOKEN", "CCL_NODE_ID",
    ]

    @Test("LaunchEnvironment.parse: random environments of the launchers' variables")
    func launchEnvironment() {
        var rng = FuzzRandom.seeded("launch")
        var outcomes = (parsed: 0, refused: 0)
        for _ in 0..<Self.cases {
            var environment: [String: String] = [:]
            for _ in 0..<Int(rng.next() % 8) {
                environment[Self.launchKeys[Int(rng.next() % UInt64(Self.launchKeys.count))]] = rng.value()
            }
            do {
                let launch = try LaunchEnvironment.parse(environment)
                #expect((0..<launch.worldSize).contains(launch.rank) && launch.worldSize <= LaunchEnvironment.maxWorldSize)
                outcomes.parsed += 1
            } catch {
                #expect(error.code == .invalidArgument && !error.message.isEmpty)
                outcomes.refused += 1
            }
        }
        #expect(outcomes.parsed > 0 && outcomes.refused > 0, "\(outcomes) (seed \(rng.seed))")
    }

    @Test("Handshake: random and mutated hellos and acks")
    func handshake() {
        var rng = FuzzRandom.seeded("handshake")
        let magic: UInt64 = 0x3254_5345_544C_4343
        let valid = Handshake(rank: 3, token: Array("token".utf8), context: [1, 2]).encode(magic: magic)
        for _ in 0..<Self.cases {
            let bytes = rng.mutated(valid, randomLength: 40, flips: 3)
            switch Handshake.parseHeader(bytes, magic: magic) {
            case .success(let header):
                #expect(header.tokenLength <= AuthToken.maxBytes && header.contextLength <= Handshake.maxContextBytes)
                let rest = Array(bytes.dropFirst(Handshake.headerBytes))
                if let hello = Handshake(header: header, rest: rest) {
                    #expect(hello.token.count == header.tokenLength)
                } else {
                    #expect(rest.count != header.tokenLength + header.contextLength)
                }
            case .failure: break
            }
            _ = Handshake.parseAck(bytes, magic: magic)
        }
    }

    struct Message: Codable {
        var step: Int64
        var name: String
        var tokens: [Int32]
        var tables: [String: [UInt8]]
        var scale: Double?
        var nested: [Message]?
    }

    @Test("CCLBinaryDecoder: random bytes and mutated encodings decode or throw")
    func binaryDecoder() throws {
        var rng = FuzzRandom.seeded("decoder")
        let sample = Message(
            step: 7, name: "step", tokens: [1, 2, 3], tables: ["a": [1, 2], "b": []], scale: 0.5,
            nested: [Message(step: 1, name: "", tokens: [], tables: [:], scale: nil, nested: nil)])
        let valid = try CCLBinaryEncoder().encode(sample)
        let decoder = CCLBinaryDecoder(maxDepth: 16, maxCollectionCount: 1 << 16)
        var decoded = 0
        for _ in 0..<Self.cases {
            var bytes = rng.next() % 3 == 0 ? (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } : valid
            for _ in 0..<Int(rng.next() % 6) where !bytes.isEmpty {
                let index = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[index] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.removeSubrange(index...)
                default: bytes.insert(contentsOf: [0xFF, 0xFF, 0xFF, 0x7F], at: index)
                }
            }
            if (try? decoder.decode(Message.self, from: bytes)) != nil { decoded += 1 }
        }
        #expect(decoded > 0, "some mutations keep a valid message (seed \(rng.seed))")
    }
}
