import CCLCore
import CCLTestSupport
import NIOCore
import Testing

@testable import CCLStore

/// Random and mutated store frames through the server's frame and field readers (issue 9): each
/// must end in fields or `Malformed`, never a trap. `CCL_FUZZ_CASES` raises the count.
@Suite struct StoreWireFuzzTests {
    @Test("frames and fields: random bytes and mutated valid requests")
    func frames() {
        var rng = FuzzRandom.seeded("store-wire")
        let valid = StoreWire.frame(ByteBufferAllocator()) { out in
            out.writeInteger(StoreWire.Op.compareSet.rawValue)
            StoreWire.writeKey("rank/3", into: &out)
            StoreWire.writeBytes([1, 2, 3], into: &out)
            StoreWire.writeKeys(["a", "b"], into: &out)
            out.writeInteger(UInt64(5), endianness: .little)
        }
        var outcomes = (fields: 0, malformed: 0)
        for _ in 0..<FuzzRandom.cases() {
            var buffer = ByteBuffer(bytes: rng.mutated(Array(valid.readableBytesView), randomLength: 64, flips: 4))
            do throws(StoreWire.Malformed) {
                while var frame = try StoreWire.nextFrame(from: &buffer) {
                    _ = try StoreWire.readInteger(&frame, as: UInt8.self)
                    for _ in 0..<4 {
                        switch rng.next() % 4 {
                        case 0: _ = try StoreWire.readKey(&frame)
                        case 1: _ = try StoreWire.readBytes(&frame)
                        case 2: _ = try StoreWire.readKeys(&frame)
                        default: _ = try StoreWire.readInteger(&frame, as: UInt64.self)
                        }
                    }
                    outcomes.fields += 1
                }
            } catch {
                outcomes.malformed += 1
            }
        }
        #expect(outcomes.fields > 0 && outcomes.malformed > 0, "\(outcomes) (seed \(rng.seed))")
    }
}
