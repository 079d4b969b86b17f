import CCL
import CCLTestSupport
import Foundation
import Testing

/// Collectives across two hosts made of network namespaces joined by a veth pair: node identity
/// is derived (each namespace is a node), so the communicator is hierarchical — shared memory
/// inside each host, TCP between the hosts' addresses. Needs root and iproute2; elsewhere the
/// test says so and skips.
@Suite(.serialized) struct NetworkNamespaceCollectiveTests {
    @Test(
        "hierarchical collectives across two network-namespace hosts, one TCP connection per peer or three (large payloads striped)",
        .enabled(if: TestHosts.available, "needs root and iproute2 to create network namespaces (ip netns add)"),
        arguments: [("1", "0,7,1023,70001"), ("3", "0,7,300001")])
    func twoHosts(connections: String, counts: String) throws {
        let hosts = try TestHosts(tag: 3)
        defer { hosts.tearDown() }
        let store = try Worker("store", ["host": hosts.addressA, "token": "nsc"], namespace: hosts.a)
        let port = String(try store.expect("PORT ").dropFirst(5))
        defer { store.sigkill() }
        // Ranks 0 and 2 on host A, 1 and 3 on host B: interleaved, so group order ≠ node order.
        let workers = try (0..<4).map { rank in
            let onA = rank % 2 == 0
            return try Worker(
                "collectives",
                [
                    "host": hosts.addressA, "port": port, "token": "nsc", "rank": "\(rank)", "world": "4",
                    "chost": onA ? hosts.addressA : hosts.addressB, "counts": counts, "dtypes": "float32,bfloat16,int64",
                    "connections": connections,
                ],
                namespace: onA ? hosts.a : hosts.b)
        }
        for worker in workers {
            let transport = try worker.expect("TRANSPORT")
            #expect(transport.contains("hierarchical (2 nodes"), "\(transport)")
            try worker.expect("DONE")
            #expect(worker.exitStatus() == 0, "\(worker.lines)")
        }
    }
}
