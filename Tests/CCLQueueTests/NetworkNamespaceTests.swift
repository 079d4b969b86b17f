import CCL
import CCLTestSupport
import Foundation
import Testing

/// Two hosts made of network namespaces joined by a veth pair, each with its own address: the
/// store, the process group, node identity and the broadcast queue across them. Needs root and
/// iproute2; elsewhere the test says so and skips.
@Suite(.serialized) struct NetworkNamespaceTests {
    @Test(
        "rendezvous and the broadcast queue across two network-namespace hosts",
        .enabled(if: TestHosts.available, "needs root and iproute2 to create network namespaces (ip netns add)"))
    func twoHosts() throws {
        let hosts = try TestHosts(tag: 1)
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
