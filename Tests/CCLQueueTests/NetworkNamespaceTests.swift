import CCL
import Foundation
import Testing

/// Two hosts made of network namespaces joined by a veth pair, each with its own address: the
/// store, the process group, node identity and the broadcast queue across them. Needs root and
/// iproute2; elsewhere the test says so and skips.
@Suite(.serialized) struct NetworkNamespaceTests {
    static func sh(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static let available: Bool = {
        let probe = "cclprobe\(getpid())"
        defer { _ = sh("ip netns del \(probe)") }
        return sh("ip netns add \(probe)") == 0
    }()

    /// Namespaces A (10.77.s.1) and B (10.77.s.2) joined by a veth pair; removed by `tearDown`.
    struct Hosts {
        let a: String
        let b: String
        let addressA: String
        let addressB: String

        init() throws {
            let id = getpid() % 100_000
            a = "cclA\(id)"
            b = "cclB\(id)"
            let subnet = Int(id % 250)
            addressA = "10.77.\(subnet).1"
            addressB = "10.77.\(subnet).2"
            let commands = [
                "ip netns add \(a)", "ip netns add \(b)",
                "ip link add va\(id) type veth peer name vb\(id)",
                "ip link set va\(id) netns \(a)", "ip link set vb\(id) netns \(b)",
                "ip -n \(a) addr add \(addressA)/24 dev va\(id)", "ip -n \(b) addr add \(addressB)/24 dev vb\(id)",
                "ip -n \(a) link set va\(id) up", "ip -n \(b) link set vb\(id) up",
                "ip -n \(a) link set lo up", "ip -n \(b) link set lo up",
            ]
            for command in commands where NetworkNamespaceTests.sh(command) != 0 {
                tearDown()
                throw CCLError(.system, operation: "make test hosts", "'\(command)' failed")
            }
        }

        func tearDown() {
            _ = NetworkNamespaceTests.sh("ip netns del \(a)")
            _ = NetworkNamespaceTests.sh("ip netns del \(b)")
        }
    }

    @Test(
        "rendezvous and the broadcast queue across two network-namespace hosts",
        .enabled(if: available, "needs root and iproute2 to create network namespaces (ip netns add)"))
    func twoHosts() throws {
        let hosts = try Hosts()
        defer { hosts.tearDown() }
        let store = try Worker("store", ["host": hosts.addressA, "token": "ns"], namespace: hosts.a)
        let portLine = try store.expect("PORT ")
        let port = String(portLine.dropFirst(5))
        // Ranks 0, 1 on host A and 2, 3 on host B; node identity is derived, not set.
        let workers = try (0..<4).map { rank in
            try Worker(
                "group",
                [
                    "host": hosts.addressA, "port": port, "token": "ns", "rank": "\(rank)", "world": "4", "writer": "0",
                    "count": "300", "seed": "5", "lengths": "10,4097,100000", "qhost": hosts.addressA,
                ],
                namespace: rank < 2 ? hosts.a : hosts.b)
        }
        for worker in workers {
            try worker.expect("NODES 2")
            try worker.expect("DONE 300")
            #expect(worker.exitStatus() == 0)
        }
        store.sigkill()
    }
}
