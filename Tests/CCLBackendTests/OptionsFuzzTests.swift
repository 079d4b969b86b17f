import CCL
import CCLTestSupport
import Testing

/// Random environments through the collective options and the backend request (issue 9): options
/// or an error naming the variable, never a trap. `CCL_FUZZ_CASES` raises the count.
@Suite struct OptionsFuzzTests {
    static let keys = [
        "CCL_ALGO", "CCL_CHECK_CALLS", "CCL_SHM_SLOT_BYTES", "CCL_TRANSPORT", "CCL_BACKEND", "CCL_BACKEND_STRICT", "CCL_TIMEOUT",
        "CCL_HOST", "CCL_TOKEN", "CCL_RANK", "CCL_WORLD_SIZE",
    ]

    @Test("CollectiveOptions.fromEnvironment and BackendRequest.fromEnvironment")
    func options() {
        var rng = FuzzRandom.seeded("options")
        var outcomes = (accepted: 0, refused: 0)
        for _ in 0..<FuzzRandom.cases() {
            var environment: [String: String] = [:]
            for _ in 0..<Int(rng.next() % 5) { environment[Self.keys[Int(rng.next() % UInt64(Self.keys.count))]] = rng.value() }
            do {
                let options = try CollectiveOptions.fromEnvironment(environment)
                #expect(options.shm.slotBytes >= 4096)
                _ = try BackendRequest.fromEnvironment(environment)
                outcomes.accepted += 1
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains("="), "\(error)")
                outcomes.refused += 1
            }
        }
        #expect(outcomes.accepted > 0 && outcomes.refused > 0, "\(outcomes) (seed \(rng.seed))")
    }
}
