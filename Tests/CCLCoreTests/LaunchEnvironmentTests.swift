import CCLCore
import Testing

// MARK: - Helpers

/// The error `parse` throws for `env`, or nil when it succeeds.
private func parseError(_ env: [String: String]) -> CCLError? {
    do {
        _ = try LaunchEnvironment.parse(env)
        return nil
    } catch {
        return error
    }
}

/// Expects `parse(env)` to fail with `.invalidArgument` and a message holding every fragment.
private func expectError(
    _ env: [String: String], mentions fragments: [String], sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error = parseError(env) else {
        Issue.record("expected an error for \(env)", sourceLocation: sourceLocation)
        return
    }
    #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
    #expect(error.operation == "read environment", sourceLocation: sourceLocation)
    for fragment in fragments {
        #expect(error.message.contains(fragment), "\(error.message) should mention \(fragment)", sourceLocation: sourceLocation)
    }
}

/// One launcher's variables for a process, and what parsing them alone must give.
private struct FamilyCase: CustomTestStringConvertible, Sendable {
    var env: [String: String]
    var expected: LaunchEnvironment
    var testDescription: String { expected.source.description }
}

private let familyCases: [FamilyCase] = [
    FamilyCase(
        env: [
            "CCL_RANK": "5", "CCL_WORLD_SIZE": "16", "CCL_LOCAL_RANK": "1", "CCL_LOCAL_WORLD_SIZE": "4",
            "CCL_NODE_RANK": "1", "CCL_NNODES": "4",
        ],
        expected: LaunchEnvironment(
            rank: 5, worldSize: 16, localRank: 1, localWorldSize: 4, nodeRank: 1, nodeCount: 4, source: .ccl,
            sourceVariables: ["CCL_RANK", "CCL_WORLD_SIZE", "CCL_LOCAL_RANK", "CCL_LOCAL_WORLD_SIZE"])),
    FamilyCase(
        env: [
            "RANK": "6", "WORLD_SIZE": "8", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1",
            "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500",
        ],
        expected: LaunchEnvironment(
            rank: 6, worldSize: 8, localRank: 2, localWorldSize: 4, nodeRank: 1, masterAddress: "10.0.0.1",
            masterPort: 29500, source: .torchrun,
            sourceVariables: ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"])),
    FamilyCase(
        env: [
            "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "6", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "3", "OMPI_COMM_WORLD_NODE_RANK": "0",
        ],
        expected: LaunchEnvironment(
            rank: 3, worldSize: 6, localRank: 0, localWorldSize: 3, source: .openMPI,
            sourceVariables: [
                "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
            ])),
    FamilyCase(
        env: ["PMI_RANK": "2", "PMI_SIZE": "4"],
        expected: LaunchEnvironment(rank: 2, worldSize: 4, source: .pmi, sourceVariables: ["PMI_RANK", "PMI_SIZE"])),
    FamilyCase(
        env: ["PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"],
        expected: LaunchEnvironment(
            rank: 2, worldSize: 4, localRank: 0, localWorldSize: 2, source: .pmi,
            sourceVariables: ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"])),
    FamilyCase(
        env: [
            "SLURM_PROCID": "7", "SLURM_NTASKS": "8", "SLURM_LOCALID": "3", "SLURM_NODEID": "1", "SLURM_NNODES": "2",
            "SLURM_NTASKS_PER_NODE": "4",
        ],
        expected: LaunchEnvironment(
            rank: 7, worldSize: 8, localRank: 3, localWorldSize: 4, nodeRank: 1, nodeCount: 2, source: .slurm,
            sourceVariables: [
                "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_NODEID", "SLURM_NNODES",
            ])),
    // srun with PMI-2: PMI's rank and size, Slurm's local rank and node.
    FamilyCase(
        env: [
            "PMI_RANK": "1", "PMI_SIZE": "2", "PMI_FD": "10", "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1",
            "SLURM_NODEID": "0", "SLURM_NNODES": "1",
        ],
        expected: LaunchEnvironment(
            rank: 1, worldSize: 2, localRank: 1, nodeRank: 0, nodeCount: 1, source: .pmi,
            sourceVariables: ["PMI_RANK", "PMI_SIZE", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NNODES"])),
    // Slurm's variables of another rank (a stale environment) are not taken.
    FamilyCase(
        env: ["PMI_RANK": "1", "PMI_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0"],
        expected: LaunchEnvironment(rank: 1, worldSize: 2, source: .pmi, sourceVariables: ["PMI_RANK", "PMI_SIZE"])),
    FamilyCase(
        env: ["SLURM_PROCID": "7", "SLURM_NTASKS": "8", "SLURM_LOCALID": "3", "SLURM_NODEID": "1", "SLURM_NNODES": "2"],
        expected: LaunchEnvironment(
            rank: 7, worldSize: 8, localRank: 3, nodeRank: 1, nodeCount: 2, source: .slurm,
            sourceVariables: ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NNODES"])),
]

// MARK: - Families and precedence

@Suite struct LaunchEnvironmentFamilyTests {
    @Test func nothingSetIsASingleProcess() throws {
        let parsed = try LaunchEnvironment.parse(["PATH": "/usr/bin", "HOME": "/root"])
        #expect(parsed == LaunchEnvironment())
        #expect(parsed.rank == 0 && parsed.worldSize == 1 && parsed.source == .single)
        #expect(parsed.localRank == nil && parsed.localWorldSize == nil && parsed.nodeRank == nil && parsed.nodeCount == nil)
        #expect(parsed.masterAddress == nil && parsed.masterPort == nil && parsed.dataParallel == nil)
        #expect(parsed.sourceVariables.isEmpty)
        #expect(!parsed.isLocalInfoKnown)
    }

    @Test func singleProcessKeepsTheOtherSettings() throws {
        let parsed = try LaunchEnvironment.parse([
            "MASTER_ADDR": "localhost", "MASTER_PORT": "1234", "CCL_NODE_RANK": "0", "CCL_NNODES": "1",
        ])
        #expect(parsed.source == .single)
        #expect(parsed.masterAddress == "localhost" && parsed.masterPort == 1234)
        #expect(parsed.nodeRank == 0 && parsed.nodeCount == 1)
    }

    @Test(arguments: familyCases)
    fileprivate func eachFamilyAlone(_ family: FamilyCase) throws {
        #expect(try LaunchEnvironment.parse(family.env) == family.expected)
    }

    /// Every family set at once, each with different values: the highest present one wins, whole.
    @Test(arguments: 0..<5)
    func precedence(_ first: Int) throws {
        let families: [(LaunchEnvironment.Source, [String: String], rank: Int, world: Int, local: Int?)] = [
            (.ccl, ["CCL_RANK": "1", "CCL_WORLD_SIZE": "10", "CCL_LOCAL_RANK": "1", "CCL_LOCAL_WORLD_SIZE": "2"], 1, 10, 1),
            (.torchrun, ["RANK": "2", "WORLD_SIZE": "20", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"], 2, 20, 2),
            (
                .openMPI,
                [
                    "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "30", "OMPI_COMM_WORLD_LOCAL_RANK": "3",
                    "OMPI_COMM_WORLD_LOCAL_SIZE": "6",
                ], 3, 30, 3
            ),
            (.pmi, ["PMI_RANK": "4", "PMI_SIZE": "40"], 4, 40, nil),
            (.slurm, ["SLURM_PROCID": "5", "SLURM_NTASKS": "50", "SLURM_LOCALID": "5"], 5, 50, 5),
        ]
        var env: [String: String] = [:]
        for family in families[first...] { env.merge(family.1) { _, new in new } }
        let parsed = try LaunchEnvironment.parse(env)
        let winner = families[first]
        #expect(parsed.source == winner.0)
        #expect(parsed.rank == winner.rank)
        #expect(parsed.worldSize == winner.world)
        #expect(parsed.localRank == winner.local)
    }

    /// Lower families are never read, so their values (even broken ones) cannot fail the parse.
    @Test func lowerFamiliesAreIgnoredEvenWhenBroken() throws {
        let parsed = try LaunchEnvironment.parse([
            "CCL_RANK": "0", "CCL_WORLD_SIZE": "2",
            "RANK": "abc", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "-1",
            "OMPI_COMM_WORLD_RANK": "9", "PMI_SIZE": "0",
            "SLURM_PROCID": "100", "SLURM_NTASKS": "3", "SLURM_NODEID": "7", "SLURM_NNODES": "2",
        ])
        #expect(parsed.source == .ccl)
        #expect(parsed.rank == 0 && parsed.worldSize == 2)
        #expect(parsed.localRank == nil && parsed.nodeRank == nil && parsed.nodeCount == nil)
    }

    @Test func torchrunInsideSlurmTakesTorchrunAndIgnoresSlurmNodes() throws {
        let parsed = try LaunchEnvironment.parse([
            "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NNODES": "2",
        ])
        #expect(parsed.source == .torchrun)
        #expect(parsed.rank == 3 && parsed.localRank == 1)
        #expect(parsed.nodeRank == nil && parsed.nodeCount == nil)
    }

    /// DeepSpeed's launcher sets LOCAL_RANK but LOCAL_SIZE, not LOCAL_WORLD_SIZE.
    @Test func torchrunLocalRankMayComeWithoutLocalWorldSize() throws {
        let parsed = try LaunchEnvironment.parse(["RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_SIZE": "4"])
        #expect(parsed.localRank == 1 && parsed.localWorldSize == nil)
        #expect(!parsed.isLocalInfoKnown)
        #expect(parsed.sourceVariables == ["RANK", "WORLD_SIZE", "LOCAL_RANK"])
    }

    @Test func cclNodeVariablesOverrideTheFamily() throws {
        let parsed = try LaunchEnvironment.parse([
            "SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_NODEID": "0", "SLURM_NNODES": "1",
            "CCL_NODE_RANK": "1", "CCL_NNODES": "2",
        ])
        #expect(parsed.source == .slurm)
        #expect(parsed.nodeRank == 1 && parsed.nodeCount == 2)
        #expect(parsed.sourceVariables == ["SLURM_PROCID", "SLURM_NTASKS"])
    }

    @Test func cclNodeVariablesOverrideOneAtATime() throws {
        let torchrun = try LaunchEnvironment.parse(["RANK": "0", "WORLD_SIZE": "4", "GROUP_RANK": "1", "CCL_NNODES": "2"])
        #expect(torchrun.nodeRank == 1 && torchrun.nodeCount == 2)
        #expect(torchrun.sourceVariables.contains("GROUP_RANK"))

        let slurm = try LaunchEnvironment.parse([
            "SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NODEID": "3", "SLURM_NNODES": "4", "CCL_NODE_RANK": "2",
        ])
        #expect(slurm.nodeRank == 2 && slurm.nodeCount == 4)
        #expect(slurm.sourceVariables == ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_NNODES"])
    }

    @Test func isLocalInfoKnownNeedsBoth() throws {
        #expect(try LaunchEnvironment.parse(["PMI_RANK": "0", "PMI_SIZE": "2"]).isLocalInfoKnown == false)
        #expect(
            try LaunchEnvironment.parse(["PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"])
                .isLocalInfoKnown)
        #expect(LaunchEnvironment(localWorldSize: 2).isLocalInfoKnown == false)
    }
}

// MARK: - Values

@Suite struct LaunchEnvironmentValueTests {
    @Test(arguments: [("3", 3), (" 3 ", 3), ("\t3\n", 3), ("007", 7), ("0", 0)])
    func integersAreTrimmedDecimals(_ raw: String, _ value: Int) throws {
        let parsed = try LaunchEnvironment.parse(["CCL_RANK": raw, "CCL_WORLD_SIZE": "8"])
        #expect(parsed.rank == value)
    }

    @Test func largestIntegerIsReadThenBoundedAsAWorldSize() throws {
        let parsed = try LaunchEnvironment.parse(["CCL_RANK": "0", "CCL_WORLD_SIZE": String(LaunchEnvironment.maxWorldSize)])
        #expect(parsed.worldSize == LaunchEnvironment.maxWorldSize)
        // Int.max is a valid integer (no overflow while reading it) but no valid world size.
        expectError(["CCL_RANK": "0", "CCL_WORLD_SIZE": String(Int.max)], mentions: ["CCL_WORLD_SIZE=\(Int.max)", "limit of 65536 ranks"])
    }

    @Test(arguments: [
        "", "  ", "+3", "-3", "- 3", "3.0", "0x3", "3a", "3 4", "\u{663}", "1e3", "9223372036854775808", "99999999999999999999",
    ])
    func nonDecimalIntegersAreRefused(_ raw: String) {
        expectError(["CCL_RANK": raw, "CCL_WORLD_SIZE": "8"], mentions: ["CCL_RANK=", raw.debugDescription])
    }

    @Test(arguments: [
        ("::1", "::1"), ("[::1]", "::1"), ("fe80::1%eth0", "fe80::1%eth0"), ("[fe80::1%eth0]", "fe80::1%eth0"),
        ("2001:db8::42", "2001:db8::42"), ("10.0.0.1", "10.0.0.1"), (" node-7.cluster ", "node-7.cluster"),
        ("[10.0.0.1]", "10.0.0.1"),
    ])
    func masterAddressForms(_ raw: String, _ stored: String) throws {
        #expect(try LaunchEnvironment.parse(["MASTER_ADDR": raw]).masterAddress == stored)
    }

    @Test(arguments: [
        ("", "empty"), ("   ", "empty"), ("a b", "spaces"), ("host\tname", "spaces"), ("[::1", "unbalanced"),
        ("::1]", "unbalanced"), ("[[::1]]", "unbalanced"), ("fe80::[1]", "unbalanced"), ("[::1]:29500", "after the closing bracket"),
        ("[]", "nothing between"), ("10.0.0.1:29500", "host:port"), ("localhost:80", "host:port"),
    ])
    func badMasterAddresses(_ raw: String, _ reason: String) {
        expectError(["CCL_MASTER_ADDR": raw], mentions: ["CCL_MASTER_ADDR=\(raw.debugDescription)", reason])
    }

    @Test func cclMasterWinsOverTorchrunMaster() throws {
        let parsed = try LaunchEnvironment.parse([
            "CCL_MASTER_ADDR": "[::1]", "MASTER_ADDR": "not valid here", "CCL_MASTER_PORT": "4000", "MASTER_PORT": "x",
        ])
        #expect(parsed.masterAddress == "::1" && parsed.masterPort == 4000)
        let fallback = try LaunchEnvironment.parse(["MASTER_ADDR": "10.1.1.1", "MASTER_PORT": "29500"])
        #expect(fallback.masterAddress == "10.1.1.1" && fallback.masterPort == 29500)
    }

    @Test func portWithoutAddressIsFine() throws {
        let parsed = try LaunchEnvironment.parse(["CCL_MASTER_PORT": "29500"])
        #expect(parsed.masterAddress == nil && parsed.masterPort == 29500)
        let mixed = try LaunchEnvironment.parse(["MASTER_ADDR": "h", "CCL_MASTER_PORT": "1"])
        #expect(mixed.masterAddress == "h" && mixed.masterPort == 1)
    }

    @Test(arguments: [("1", 1), ("65535", 65535), (" 29500 ", 29500)])
    func portsInRange(_ raw: String, _ port: Int) throws {
        #expect(try LaunchEnvironment.parse(["MASTER_PORT": raw]).masterPort == port)
    }

    @Test(arguments: ["0", "65536", "100000", "http", "", "-1", "99999999999999999999"])
    func portsOutOfRangeOrNotNumbers(_ raw: String) {
        expectError(["MASTER_PORT": raw], mentions: ["MASTER_PORT="])
        expectError(["CCL_MASTER_PORT": raw, "MASTER_PORT": "29500"], mentions: ["CCL_MASTER_PORT="])
    }

    @Test(arguments: [
        ("4", 4 as Int?), (" 4 ", 4), ("4(x2),3", nil), ("4(x2)", nil), ("2,2", nil), ("4(x2),4", nil), ("", nil), ("x", nil),
    ])
    func slurmTasksPerNodeForms(_ raw: String, _ expected: Int?) throws {
        let parsed = try LaunchEnvironment.parse([
            "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": raw,
        ])
        #expect(parsed.localWorldSize == expected)
        #expect(parsed.localRank == 1)
        #expect(parsed.isLocalInfoKnown == (expected != nil))
        #expect(parsed.sourceVariables.contains("SLURM_NTASKS_PER_NODE") == (expected != nil))
    }

    @Test(
        "SLURM_TASKS_PER_NODE: this node's count by SLURM_NODEID; a list that does not add up to SLURM_NTASKS, names too few nodes or is malformed leaves it unknown",
        arguments: [
            ("4(x2),3", 0, 4 as Int?), ("4(x2),3", 1, 4), ("4(x2),3", 2, 3), ("4(x2),3", 3, nil), ("4(x2),2", 2, nil), ("3,4(x2)", 0, 3),
            ("3,4(x2)", 2, 4), ("11", 0, 11), ("4(x99999999),3", 0, nil), ("4(x2", 0, nil), ("(x2),3", 0, nil), ("4(y2),3", 0, nil),
            ("4(x0),11", 0, nil), ("0(x2),11", 0, nil), ("", 0, nil), ("-4,15", 0, nil), ("4,,7", 0, nil),
            ("9223372036854775807,11", 0, nil), ("11(x9223372036854775807)", 0, nil), ("nan", 0, nil),
            (String(repeating: "1,", count: 5_000) + "1", 0, nil),
        ])
    func slurmTaskListByNode(_ raw: String, _ node: Int, _ expected: Int?) throws {
        let parsed = try LaunchEnvironment.parse([
            "SLURM_PROCID": "0", "SLURM_NTASKS": "11", "SLURM_LOCALID": "0", "SLURM_NODEID": "\(node)", "SLURM_NNODES": "4",
            "SLURM_TASKS_PER_NODE": raw,
        ])
        #expect(parsed.localWorldSize == expected, "\(raw) on node \(node)")
        #expect(parsed.sourceVariables.contains("SLURM_TASKS_PER_NODE") == (expected != nil))
    }

    @Test("SLURM_NTASKS_PER_NODE in list form counts too; a local rank beyond this node's count leaves the size unknown")
    func slurmTaskListOtherForms() throws {
        let listed = try LaunchEnvironment.parse([
            "SLURM_PROCID": "9", "SLURM_NTASKS": "11", "SLURM_LOCALID": "1", "SLURM_NODEID": "2", "SLURM_NTASKS_PER_NODE": "4(x2),3",
        ])
        #expect(listed.localWorldSize == 3 && listed.sourceVariables.contains("SLURM_NTASKS_PER_NODE"))
        let beyond = try LaunchEnvironment.parse([
            "SLURM_PROCID": "9", "SLURM_NTASKS": "11", "SLURM_LOCALID": "3", "SLURM_NODEID": "2", "SLURM_TASKS_PER_NODE": "4(x2),3",
        ])
        #expect(beyond.localWorldSize == nil && beyond.localRank == 3)
        // Under srun's PMI-2 the same comes through Slurm's variables.
        let pmi = try LaunchEnvironment.parse([
            "PMI_RANK": "9", "PMI_SIZE": "11", "SLURM_PROCID": "9", "SLURM_NTASKS": "11", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
            "SLURM_TASKS_PER_NODE": "4(x2),3",
        ])
        #expect(pmi.source == .pmi && pmi.localRank == 1 && pmi.localWorldSize == 3 && pmi.nodeRank == 2)
    }

    @Test func slurmTasksPerNodeAloneIsKept() throws {
        let parsed = try LaunchEnvironment.parse(["SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4"])
        #expect(parsed.localRank == nil && parsed.localWorldSize == 4)
    }

    @Test func plainStrings() throws {
        let parsed = try LaunchEnvironment.parse([
            "CCL_TOKEN": "s3cret value", "CCL_NODE_ID": "node-a", "CCL_NCCL_SO_PATH": "/opt/nccl/lib/libnccl.so.2",
        ])
        #expect(parsed.token == "s3cret value")
        #expect(parsed.nodeID == "node-a")
        #expect(parsed.ncclLibraryPath == "/opt/nccl/lib/libnccl.so.2")
        let empty = try LaunchEnvironment.parse(["CCL_TOKEN": "", "CCL_NODE_ID": "", "CCL_NCCL_SO_PATH": ""])
        #expect(empty.token == nil && empty.nodeID == nil && empty.ncclLibraryPath == nil)
    }
}

// MARK: - Data parallel

@Suite struct LaunchEnvironmentDataParallelTests {
    @Test func allFields() throws {
        let parsed = try LaunchEnvironment.parse([
            "CCL_DP_RANK": "3", "CCL_DP_RANK_LOCAL": "1", "CCL_DP_SIZE": "4", "CCL_DP_MASTER_IP": "[fe80::2%ib0]",
            "CCL_DP_MASTER_PORT": "13345",
        ])
        #expect(
            parsed.dataParallel
                == LaunchEnvironment.DataParallel(rank: 3, localRank: 1, size: 4, masterAddress: "fe80::2%ib0", masterPort: 13345))
        #expect(parsed.source == .single)
    }

    @Test func rankAndSizeAreEnough() throws {
        let parsed = try LaunchEnvironment.parse(["CCL_DP_RANK": "0", "CCL_DP_SIZE": "1"])
        #expect(parsed.dataParallel == LaunchEnvironment.DataParallel(rank: 0, size: 1))
    }

    @Test func absentWithoutRankOrSize() throws {
        #expect(try LaunchEnvironment.parse(["RANK": "0", "WORLD_SIZE": "1"]).dataParallel == nil)
    }

    @Test func localRankMayEqualRank() throws {
        let parsed = try LaunchEnvironment.parse(["CCL_DP_RANK": "2", "CCL_DP_SIZE": "4", "CCL_DP_RANK_LOCAL": "2"])
        #expect(parsed.dataParallel?.localRank == 2)
    }

    @Test(arguments: [
        (["CCL_DP_RANK": "1"], ["CCL_DP_RANK=\"1\"", "CCL_DP_SIZE"]),
        (["CCL_DP_SIZE": "2"], ["CCL_DP_SIZE=\"2\"", "CCL_DP_RANK"]),
        (["CCL_DP_RANK": "2", "CCL_DP_SIZE": "2"], ["CCL_DP_RANK=2", "0..<2", "CCL_DP_SIZE=2"]),
        (["CCL_DP_RANK": "0", "CCL_DP_SIZE": "0"], ["CCL_DP_SIZE=0", "at least 1"]),
        (["CCL_DP_RANK": "1", "CCL_DP_SIZE": "4", "CCL_DP_RANK_LOCAL": "2"], ["CCL_DP_RANK_LOCAL=2", "CCL_DP_RANK=1"]),
        (["CCL_DP_RANK": "x", "CCL_DP_SIZE": "4"], ["CCL_DP_RANK=\"x\""]),
        (["CCL_DP_RANK": "0", "CCL_DP_SIZE": "4", "CCL_DP_MASTER_PORT": "0"], ["CCL_DP_MASTER_PORT=0", "1...65535"]),
        (["CCL_DP_RANK": "0", "CCL_DP_SIZE": "4", "CCL_DP_MASTER_IP": "a b"], ["CCL_DP_MASTER_IP=\"a b\""]),
        (
            ["CCL_DP_RANK": "0", "CCL_DP_SIZE": "4", "CCL_DP_MASTER_IP": "h:1"],
            ["CCL_DP_MASTER_IP=\"h:1\"", "CCL_DP_MASTER_PORT"]
        ),
        (["CCL_DP_MASTER_IP": "10.0.0.2"], ["CCL_DP_MASTER_IP=\"10.0.0.2\"", "CCL_DP_RANK", "CCL_DP_SIZE"]),
        (["CCL_DP_RANK_LOCAL": "0"], ["CCL_DP_RANK_LOCAL=\"0\"", "CCL_DP_RANK", "CCL_DP_SIZE"]),
        (["CCL_DP_MASTER_PORT": "1"], ["CCL_DP_MASTER_PORT=\"1\""]),
    ])
    func errors(_ env: [String: String], _ fragments: [String]) {
        expectError(env, mentions: fragments)
    }
}

// MARK: - Errors

@Suite struct LaunchEnvironmentErrorTests {
    @Test(arguments: [
        // Partial families.
        (["CCL_RANK": "3"], ["CCL_RANK=\"3\"", "CCL_WORLD_SIZE"]),
        // World sizes above the documented bound (a store wait names at most 65536 keys).
        (["CCL_RANK": "0", "CCL_WORLD_SIZE": "4611686018427387904"], ["CCL_WORLD_SIZE=4611686018427387904", "limit of 65536 ranks"]),
        (["RANK": "0", "WORLD_SIZE": "100000000000"], ["WORLD_SIZE=100000000000", "limit of 65536 ranks"]),
        (["CCL_RANK": "0", "CCL_WORLD_SIZE": "65537"], ["CCL_WORLD_SIZE=65537", "limit of 65536 ranks"]),
        (["CCL_WORLD_SIZE": "8"], ["CCL_WORLD_SIZE=\"8\"", "CCL_RANK"]),
        (["CCL_LOCAL_RANK": "1", "RANK": "0", "WORLD_SIZE": "2"], ["CCL_LOCAL_RANK=\"1\"", "CCL_RANK", "CCL_WORLD_SIZE"]),
        (["CCL_LOCAL_WORLD_SIZE": "4"], ["CCL_LOCAL_WORLD_SIZE=\"4\"", "CCL_RANK"]),
        (["RANK": "0"], ["RANK=\"0\"", "WORLD_SIZE"]),
        (["WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"], ["WORLD_SIZE=\"2\"", "RANK"]),
        (["OMPI_COMM_WORLD_SIZE": "2"], ["OMPI_COMM_WORLD_SIZE=\"2\"", "OMPI_COMM_WORLD_RANK"]),
        (["PMI_RANK": "1"], ["PMI_RANK=\"1\"", "PMI_SIZE"]),
        (["SLURM_PROCID": "1"], ["SLURM_PROCID=\"1\"", "SLURM_NTASKS"]),
        (["SLURM_NTASKS": "4"], ["SLURM_NTASKS=\"4\"", "SLURM_PROCID"]),
        // Rank and world size.
        (["CCL_RANK": "8", "CCL_WORLD_SIZE": "8"], ["CCL_RANK=8", "0..<8", "CCL_WORLD_SIZE=8"]),
        (["RANK": "0", "WORLD_SIZE": "0"], ["WORLD_SIZE=0", "at least 1"]),
        (["SLURM_PROCID": "4", "SLURM_NTASKS": "4"], ["SLURM_PROCID=4", "SLURM_NTASKS=4"]),
        (["PMI_RANK": "x", "PMI_SIZE": "4"], ["PMI_RANK=\"x\""]),
        (["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "-2"], ["OMPI_COMM_WORLD_SIZE=\"-2\"", "sign"]),
        // Local rank and size.
        (
            ["RANK": "0", "WORLD_SIZE": "8", "LOCAL_RANK": "4", "LOCAL_WORLD_SIZE": "4"],
            ["LOCAL_RANK=4", "0..<4", "LOCAL_WORLD_SIZE=4"]
        ),
        (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4"], ["LOCAL_WORLD_SIZE=4", "WORLD_SIZE=2"]),
        (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "0"], ["LOCAL_WORLD_SIZE=0", "at least 1"]),
        (["RANK": "0", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"], ["LOCAL_WORLD_SIZE=4", "LOCAL_RANK"]),
        (["RANK": "0", "WORLD_SIZE": "8", "LOCAL_RANK": "8"], ["LOCAL_RANK=8", "0..<8", "WORLD_SIZE=8"]),
        (["CCL_RANK": "0", "CCL_WORLD_SIZE": "8", "CCL_LOCAL_RANK": "1"], ["CCL_LOCAL_RANK=1", "CCL_LOCAL_WORLD_SIZE"]),
        (["CCL_RANK": "0", "CCL_WORLD_SIZE": "8", "CCL_LOCAL_WORLD_SIZE": "2"], ["CCL_LOCAL_WORLD_SIZE=2", "CCL_LOCAL_RANK"]),
        (
            ["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0"],
            ["OMPI_COMM_WORLD_LOCAL_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE"]
        ),
        (["PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"], ["MPI_LOCALNRANKS=2", "MPI_LOCALRANKID"]),
        (["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "4"], ["SLURM_LOCALID=4", "SLURM_NTASKS=4"]),
        (
            ["SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_LOCALID": "2", "SLURM_NTASKS_PER_NODE": "2"],
            ["SLURM_LOCALID=2", "SLURM_NTASKS_PER_NODE=2"]
        ),
        (["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "8"], ["SLURM_NTASKS_PER_NODE=8", "SLURM_NTASKS=4"]),
        (["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "0"], ["SLURM_NTASKS_PER_NODE=0"]),
        (["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "x"], ["SLURM_LOCALID=\"x\""]),
        // Nodes.
        (["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NODEID": "2", "SLURM_NNODES": "2"], ["SLURM_NODEID=2", "SLURM_NNODES=2"]),
        (["RANK": "0", "WORLD_SIZE": "4", "GROUP_RANK": "2", "CCL_NNODES": "2"], ["GROUP_RANK=2", "CCL_NNODES=2"]),
        (["CCL_NODE_RANK": "3", "CCL_NNODES": "3"], ["CCL_NODE_RANK=3", "0..<3", "CCL_NNODES=3"]),
        (["CCL_NNODES": "0"], ["CCL_NNODES=0", "at least 1"]),
        (["CCL_NODE_RANK": "one"], ["CCL_NODE_RANK=\"one\""]),
        (["RANK": "0", "WORLD_SIZE": "4", "GROUP_RANK": "a"], ["GROUP_RANK=\"a\""]),
        (["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NNODES": ""], ["SLURM_NNODES=\"\"", "empty"]),
    ])
    func invalidEnvironments(_ env: [String: String], _ fragments: [String]) {
        expectError(env, mentions: fragments)
    }

    @Test func tooLargeSaysSo() {
        expectError(["CCL_RANK": "0", "CCL_WORLD_SIZE": "99999999999999999999"], mentions: ["CCL_WORLD_SIZE=", "too large"])
    }

    @Test func errorDescriptionReadsAsOneSentence() throws {
        let error = try #require(parseError(["RANK": "9", "WORLD_SIZE": "4"]))
        #expect(error.description == "read environment: RANK=9 is outside 0..<4 (WORLD_SIZE=4)")
    }
}

// MARK: - Summary

@Suite struct LaunchEnvironmentSummaryTests {
    @Test(arguments: [
        (
            [
                "RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "CCL_NODE_RANK": "1", "CCL_NNODES": "2",
                "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500",
            ],
            "rank 3 of 8 (local 1 of 4, node 1 of 2) from torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); "
                + "master 10.0.0.1:29500"
        ),
        ([:], "rank 0 of 1 as a single process (no rank variables set)"),
        (["PMI_RANK": "1", "PMI_SIZE": "2", "CCL_MASTER_PORT": "4000"], "rank 1 of 2 from PMI (PMI_RANK, PMI_SIZE); master port 4000"),
        (
            [
                "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NNODES": "2", "MASTER_ADDR": "[::1]",
                "MASTER_PORT": "1",
            ],
            "rank 5 of 8 (local 1, node ? of 2) from Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NNODES); master [::1]:1"
        ),
        (
            ["CCL_RANK": "0", "CCL_WORLD_SIZE": "2", "CCL_MASTER_ADDR": "head", "CCL_TOKEN": "hunter2", "CCL_NODE_ID": "n0"],
            "rank 0 of 2 from CCL (CCL_RANK, CCL_WORLD_SIZE); master head; node ID n0; token set"
        ),
        (
            [
                "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "CCL_DP_RANK": "1", "CCL_DP_RANK_LOCAL": "0",
                "CCL_DP_SIZE": "2", "CCL_DP_MASTER_IP": "10.0.0.2", "CCL_DP_MASTER_PORT": "13345", "CCL_NCCL_SO_PATH": "/lib/libnccl.so",
            ],
            "rank 1 of 2 from Open MPI (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE); "
                + "data parallel rank 1 (local 0) of 2, master 10.0.0.2:13345; NCCL /lib/libnccl.so"
        ),
    ])
    func summaries(_ env: [String: String], _ expected: String) throws {
        #expect(try LaunchEnvironment.parse(env).summary == expected)
    }

    @Test func summaryNeverShowsTheToken() throws {
        let parsed = try LaunchEnvironment.parse(["CCL_TOKEN": "hunter2"])
        #expect(!parsed.summary.contains("hunter2"))
    }

    @Test(arguments: LaunchEnvironment.Source.allCases)
    func sourcesHaveNames(_ source: LaunchEnvironment.Source) {
        #expect(!source.description.isEmpty)
    }
}
