import CCL
import Foundation

/// The messages of `ccl bench queue`: a 32-byte header then payload from a pool both sides
/// generate from the same seed, so a reader verifies every byte with one comparison.
///
/// ```
/// u32 kind · u32 phase · u64 sequence · u64 sendTimeNs · u64 poolIndex · payload…
/// ```
enum BenchMessage {
    static let headerBytes = 32
    static let poolSize = 4

    enum Kind: UInt32 {
        case data = 1
        case phaseEnd = 2
        case quit = 3
        case wake = 4
        case ack = 5
    }

    struct Header {
        var kind: Kind
        var phase: UInt32
        var sequence: UInt64
        var sendTimeNs: UInt64
        var poolIndex: UInt64
    }

    static func write(_ header: Header, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: header.kind.rawValue, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: header.phase, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: header.sequence, toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: header.sendTimeNs, toByteOffset: 16, as: UInt64.self)
        buffer.storeBytes(of: header.poolIndex, toByteOffset: 24, as: UInt64.self)
    }

    static func read(_ buffer: UnsafeRawBufferPointer) -> Header? {
        guard buffer.count >= headerBytes,
            let kind = Kind(rawValue: buffer.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        else { return nil }
        return Header(
            kind: kind,
            phase: buffer.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
            sequence: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            sendTimeNs: buffer.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
            poolIndex: buffer.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// `poolSize` payloads of `size` bytes (header space zeroed), the same in every process.
    static func pool(size: Int) -> [[UInt8]] {
        (0..<poolSize).map { index in
            var state = UInt64(size) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index)
            var bytes = [UInt8](repeating: 0, count: size)
            bytes.withUnsafeMutableBytes { raw in
                var offset = headerBytes
                while offset + 8 <= raw.count {
                    raw.storeBytes(of: splitMix(&state), toByteOffset: offset, as: UInt64.self)
                    offset += 8
                }
                while offset < raw.count {
                    raw[offset] = UInt8(truncatingIfNeeded: splitMix(&state))
                    offset += 1
                }
            }
            return bytes
        }
    }

    private static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True when `piece`, bytes `offset ..< offset + piece.count` of a message of `length` bytes,
    /// equals the pool entry the header names (the header's own 32 bytes excepted).
    static func verify(_ piece: UnsafeRawBufferPointer, offset: Int, length: Int, header: Header, pool: [[UInt8]]) -> Bool {
        guard header.poolIndex < UInt64(pool.count) else { return false }
        let expected = pool[Int(header.poolIndex)]
        guard expected.count == length, offset + piece.count <= length else { return false }
        let skip = max(0, headerBytes - offset)
        guard piece.count > skip else { return true }
        return expected.withUnsafeBytes { want in
            guard let a = want.baseAddress, let b = piece.baseAddress else { return false }
            return memcmp(a + offset + skip, b + skip, piece.count - skip) == 0
        }
    }
}
