import CCLCore
import CCLTestSupport
import NIOCore
import Testing

@testable import CCLQueue

/// Random and mutated queue frame headers (issue 9): a header, nil (not enough bytes) or an
/// error, never a trap. `CCL_FUZZ_CASES` raises the count.
@Suite struct RemoteWireFuzzTests {
    @Test("frame headers: random bytes and mutated valid headers")
    func headers() {
        var rng = FuzzRandom.seeded("queue-wire")
        var valid = ByteBuffer()
        RemoteWire.writeFrameHeader(.init(kind: .data, payloadLength: 16, messageLength: 64, offset: 16), into: &valid)
        var outcomes = (headers: 0, errors: 0)
        for _ in 0..<FuzzRandom.cases() {
            var buffer = ByteBuffer(bytes: rng.mutated(Array(valid.readableBytesView), randomLength: 40, flips: 3))
            do {
                if let header = try RemoteWire.readFrameHeader(from: &buffer, maxMessageBytes: 1 << 20) {
                    #expect(Int(header.payloadLength) <= RemoteWire.maxFramePayload)
                    outcomes.headers += 1
                }
            } catch {
                outcomes.errors += 1
            }
        }
        #expect(outcomes.headers > 0 && outcomes.errors > 0, "\(outcomes) (seed \(rng.seed))")
    }
}
