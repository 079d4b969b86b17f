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
