import CCL
import CCLCore
import CCLTestSupport
import Testing

@testable import CCLCollectives

/// The shared-memory all-reduce's cost model: the pure choice, `CCL_SHM_COST`, and the
/// measurement every rank of a real arena agrees on.
@Suite struct ShmCostModelTests {
    /// About what the 16-core host of the H200 machine shows (`../shared/anchors/device/tables.md`:
    /// 8 B on 16 ranks in 2.25 µs, memcpy of 1 MiB at 38.6 GB/s).
    static let manyCores = ShmCostModel(syncNanoseconds: 1_500, copyBytesPerNanosecond: 30, reduceBytesPerNanosecond: 25)
    /// What this 2-core machine measures with 8 ranks on it.
    static let oversubscribed = ShmCostModel(
        syncNanoseconds: 12_000, copyBytesPerNanosecond: 35, reduceBytesPerNanosecond: 40, ranksPerCPU: 4)

    @Test("many cores: two-shot at 64 KiB on 4, 8, 16 ranks (one-shot moved n times the data), one-shot at 8 B")
    func manyCoresChoice() {
        let slot = 256 << 10
        for ranks in [4, 8, 16, 32, 64] {
            #expect(Self.manyCores.choose(bytes: 64 << 10, worldSize: ranks, slotBytes: slot) == .twoShot, "\(ranks) ranks")
            #expect(Self.manyCores.choose(bytes: 64 << 20, worldSize: ranks, slotBytes: slot) == .twoShot, "\(ranks) ranks")
            #expect(Self.manyCores.choose(bytes: 8, worldSize: ranks, slotBytes: slot) == .oneShot, "\(ranks) ranks")
        }
        // 64 KiB on 16 ranks: one-shot reads 1 MiB per rank, two-shot 128 KiB and one more sync.
        let oneShot = Self.manyCores.nanoseconds(.oneShot, pieceBytes: 64 << 10, worldSize: 16)
        let twoShot = Self.manyCores.nanoseconds(.twoShot, pieceBytes: 64 << 10, worldSize: 16)
        #expect(oneShot > 4 * twoShot, "\(oneShot) ns against \(twoShot) ns")
        // The more ranks, the sooner two-shot pays.
        let from = [4, 8, 16, 64].map { Self.manyCores.twoShotFrom(worldSize: $0, slotBytes: slot) ?? Int.max }
        #expect(from == from.sorted(by: >) && Set(from).count == 4, "\(from)")
    }

    @Test("two ranks: one-shot while reducing costs no more than copying; a single rank always one-shot")
    func twoRanks() {
        let even = ShmCostModel(syncNanoseconds: 100, copyBytesPerNanosecond: 20, reduceBytesPerNanosecond: 20)
        #expect(even.twoShotFrom(worldSize: 2, slotBytes: 256 << 10) == nil)
        #expect(even.choose(bytes: 64 << 20, worldSize: 2, slotBytes: 256 << 10) == .oneShot)
        #expect(Self.manyCores.choose(bytes: 64 << 20, worldSize: 1, slotBytes: 256 << 10) == .oneShot)
        // Reduction at half the copy rate: two-shot (half the arithmetic) from sync · 2 · rate.
        let slowReduce = ShmCostModel(syncNanoseconds: 100, copyBytesPerNanosecond: 20, reduceBytesPerNanosecond: 10)
        let from = slowReduce.twoShotFrom(worldSize: 2, slotBytes: 256 << 10)
        #expect(from.map { (1_990...2_064).contains($0) } == true, "\(String(describing: from))")
    }

    @Test("ranks that outnumber CPUs: the sync's cost keeps small calls one-shot, large ones go two-shot")
    func oversubscribedChoice() {
        let slot = 256 << 10
        #expect(Self.oversubscribed.choose(bytes: 8, worldSize: 8, slotBytes: slot) == .oneShot)
        #expect(Self.oversubscribed.choose(bytes: 4 << 10, worldSize: 8, slotBytes: slot) == .oneShot)
        #expect(Self.oversubscribed.choose(bytes: 64 << 10, worldSize: 8, slotBytes: slot) == .twoShot)
        // Pieces never exceed a slot, so every call above it chooses as a full slot does.
        #expect(
            Self.oversubscribed.choose(bytes: 1 << 30, worldSize: 8, slotBytes: 4096)
                == Self.oversubscribed.choose(bytes: 4096, worldSize: 8, slotBytes: 4096))
        if let from = Self.oversubscribed.twoShotFrom(worldSize: 8, slotBytes: slot) {
            #expect(Self.oversubscribed.choose(bytes: from, worldSize: 8, slotBytes: slot) == .twoShot)
            #expect(Self.oversubscribed.choose(bytes: from - 64, worldSize: 8, slotBytes: slot) == .oneShot)
        } else {
            Issue.record("two-shot never wins for 8 oversubscribed ranks")
        }
    }

    @Test("inputs that are not finite or not positive become safe ones")
    func sanitized() {
        let model = ShmCostModel(syncNanoseconds: .nan, copyBytesPerNanosecond: 0, reduceBytesPerNanosecond: -.infinity, ranksPerCPU: 0.5)
        #expect(model.syncNanoseconds == 0 && model.copyBytesPerNanosecond > 0 && model.reduceBytesPerNanosecond > 0)
        #expect(model.ranksPerCPU == 1)
        #expect(model.choose(bytes: 1 << 20, worldSize: 4, slotBytes: 256 << 10) == .twoShot)
        #expect(ShmCostModel.typical.description == "sync 1.00 µs, copy 20.00 GB/s, reduce 10.00 GB/s, 1.00 ranks/CPU")
    }

    @Test("CCL_SHM_COST: three numbers; anything else is refused naming the variable and the value")
    func environment() throws {
        let options = try CollectiveOptions.fromEnvironment(["CCL_SHM_COST": "800, 20,10.5"])
        #expect(
            options.shm.cost == ShmCostModel(syncNanoseconds: 800, copyBytesPerNanosecond: 20, reduceBytesPerNanosecond: 10.5))
        #expect(try CollectiveOptions.fromEnvironment([:]).shm.cost == nil)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_SHM_COST": ""]).shm.cost == nil)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_SHM_COST": "0,1,1"]).shm.cost?.syncNanoseconds == 0)
        let long = String(repeating: "9", count: 10_000)
        for value in [
            "1,2", "1,2,3,4", "a,b,c", "-1,2,3", "1,0,3", "1,2,inf", "nan,1,1", "1,nan,1", "1,1,nan", "1,,2", "1e10,1,1", "1,1,1e5", ",",
            "0,0,0", "-1,-1,-1", "9223372036854775807,1,1", "1,9223372036854775807,1", "\(long),1,1", "1,1,\(long)",
        ] {
            #expect {
                _ = try CollectiveOptions.fromEnvironment(["CCL_SHM_COST": value])
            } throws: { error in
                "\(error)".contains("CCL_SHM_COST=\(value)") && (error as? CCLError)?.code == .invalidArgument
            }
        }
    }
}

/// The measurement in real processes on real shared memory.
@Suite(.serialized) struct ShmCostMeasurementTests {
    /// Each rank's `COSTS` line, after its communicator is made, and its exit checked.
    private func costs(world: Int, perRank: @escaping (Int) -> [String: String] = { _ in [:] }) throws -> [String] {
        let workers = try runCollectiveWorkers(
            world: world, ["transport": "shm", "counts": "1023,70001", "dtypes": "float32,bfloat16"], perRank: perRank)
        var lines: [String] = []
        for worker in workers {
            lines.append(try worker.expect("COSTS "))
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
        return lines
    }

    @Test("every rank measures at once and all take the same model (to the bit)", arguments: [2, 3])
    func agreed(world: Int) throws {
        let lines = try costs(world: world)
        #expect(Set(lines).count == 1, "\(lines)")
        let words = lines[0].split(separator: " ")
        // "COSTS sync S µs, copy C GB/s, reduce R GB/s, F ranks/CPU BITS …"
        let rates = [words[5], words[8]].compactMap { Double($0) }
        #expect(rates.count == 2 && rates.allSatisfy { $0 > 0.01 && $0 < 10_000 }, "\(lines[0])")
    }

    @Test("configured on one rank only: the ranks still agree on one model, and every call is right")
    func configuredOnOneRank() throws {
        let lines = try costs(world: 3) { rank in rank == 1 ? ["cost": "900000000,0.5,0.5"] : [:] }
        #expect(Set(lines).count == 1, "\(lines)")
        #expect(!lines[0].contains("sync 900000.00 µs"), "the median of three is a measured rank's: \(lines[0])")
    }

    @Test("configured on every rank: exactly those inputs, and ranks per CPU from the node")
    func configuredEverywhere() throws {
        let lines = try costs(world: 2) { _ in ["cost": "800,20,10"] }
        #expect(Set(lines).count == 1, "\(lines)")
        #expect(lines[0].hasPrefix("COSTS sync 0.80 µs, copy 20.00 GB/s, reduce 10.00 GB/s, "), "\(lines[0])")
    }
}
