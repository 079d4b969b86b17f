import CCLCore
import Testing

@Suite struct CCLErrorTests {
    struct Underlying: Error, Sendable, CustomStringConvertible {
        let errno: Int32
        var description: String { "underlying errno \(errno)" }
    }

    @Test("the cause stays typed; the description names group, global rank, group rank and peer")
    func typedCauseAndRanks() {
        let error = CCLError(
            .timeout, operation: "allReduce", group: "tp1", rank: 5, groupRank: 1, peer: "rank 4", "waited 1 s",
            cause: Underlying(errno: 110))
        #expect((error.cause as? Underlying)?.errno == 110)
        #expect(error.description == "allReduce (group tp1, rank 5, group rank 1, peer rank 4): waited 1 s [cause: underlying errno 110]")
        // The group rank is left out where it equals the global rank, the group where the operation names it.
        let world = CCLError(.timeout, operation: "barrier on group world", group: "world", rank: 2, groupRank: 2, "x")
        #expect(world.groupRank == nil)
        #expect(world.description == "barrier on group world (rank 2): x")
        #expect(error == error)
        #expect(error != CCLError(.timeout, operation: "allReduce", group: "tp1", rank: 5, groupRank: 1, peer: "rank 4", "waited 1 s"))
    }

    @Test("one wording for missing ranks")
    func missingRanks() {
        #expect(CCLError.missingRanks([3]) == "rank 3 never arrived")
        #expect(CCLError.missingRanks([5, 3]) == "ranks 3 and 5 never arrived")
        #expect(CCLError.missingRanks([5, 1, 2], "never connected") == "ranks 1, 2 and 5 never connected")
        #expect(CCLError.missingRanks([]).hasPrefix("no rank was missing"))
    }
}

@Suite struct AuthTokenTests {
    @Test("tokens match only byte for byte, whatever the lengths")
    func matches() {
        #expect(AuthToken.matches(Array("secret".utf8), Array("secret".utf8)))
        #expect(!AuthToken.matches(Array("secreT".utf8), Array("secret".utf8)))
        #expect(!AuthToken.matches(Array("secret!".utf8), Array("secret".utf8)))
        #expect(!AuthToken.matches([], Array("s".utf8)))
        #expect(AuthToken.matches([], []))
    }
}

@Suite struct HandshakeTests {
    static let magic: UInt64 = 0x3154_5345_544C_4343

    @Test("a hello round-trips; header and ack are parsed against the service's magic")
    func roundTrip() throws {
        let hello = Handshake(rank: 7, token: Array("tok".utf8), context: [1, 2, 3])
        let bytes = hello.encode(magic: Self.magic)
        #expect(bytes.count == Handshake.headerBytes + 6)
        let header = try Handshake.parseHeader(Array(bytes.prefix(Handshake.headerBytes)), magic: Self.magic).get()
        #expect(header == Handshake.Header(rank: 7, tokenLength: 3, contextLength: 3))
        #expect(Handshake(header: header, rest: Array(bytes.dropFirst(Handshake.headerBytes))) == hello)
        #expect(Handshake(header: header, rest: [1]) == nil)
        let anonymous = Handshake(token: [9]).encode(magic: Self.magic)
        #expect(try Handshake.parseHeader(anonymous, magic: Self.magic).get().rank == nil)
        #expect(Handshake.parseAck(Handshake.ack(magic: Self.magic, status: 3), magic: Self.magic) == 3)
        #expect(Handshake.parseAck(Handshake.ack(magic: Self.magic + 1, status: 3), magic: Self.magic) == nil)
    }

    @Test("wrong magic, oversized token or context, and short input are rejected before anything else is read")
    func rejections() {
        func header(_ magic: UInt64, token: UInt32, context: UInt32) -> [UInt8] {
            var bytes = Handshake(token: []).encode(magic: magic)
            withUnsafeBytes(of: token.littleEndian) { bytes.replaceSubrange(12..<16, with: $0) }
            withUnsafeBytes(of: context.littleEndian) { bytes.replaceSubrange(16..<20, with: $0) }
            return bytes
        }
        #expect(Handshake.parseHeader(header(Self.magic + 1, token: 1, context: 0), magic: Self.magic) == .failure(.notThisService))
        #expect(Handshake.parseHeader(header(Self.magic, token: 4097, context: 0), magic: Self.magic) == .failure(.tokenTooLong(4097)))
        #expect(
            Handshake.parseHeader(header(Self.magic, token: 1, context: .max), magic: Self.magic)
                == .failure(.contextTooLong(Int(UInt32.max))))
        #expect(Handshake.parseHeader([1, 2, 3], magic: Self.magic) == .failure(.short(3)))
        #expect(
            Handshake.parseHeader(header(Self.magic, token: 4096, context: 4096), magic: Self.magic).map(\.totalBytes) == .success(8212))
    }
}
