import CCL
import CCLTestSupport
import Foundation
import Testing

/// `MessageQueueEnd.create(from:writer:nodes:)` across real processes that meet through a TCP
/// store: two node identities on loopback, so the writer's node reads shared memory and the
/// other node reads over TCP. (Separate network namespaces: see the rendezvous issue's notes.)
@Suite(.serialized) struct QueueGroupTests {
    @Test("a group of 4 ranks on two nodes: ring for the writer's node, TCP for the other", arguments: [0, 3])
    func groupQueue(writer: Int) throws {
        let server = try TCPStoreServer(token: "grp")
        let nodes = ["nodeA", "nodeA", "nodeB", "nodeB"]
        let lengths = "0,100,5000,70000"
        let workers = try (0..<4).map { rank in
            try Worker(
                "group",
                [
                    "port": "\(server.port)", "token": "grp", "rank": "\(rank)", "world": "4", "node": nodes[rank],
                    "writer": "\(writer)", "count": "200", "seed": "21", "lengths": lengths,
                ])
        }
        for worker in workers {
            try worker.expect("NODES 2")
            try worker.expect("DONE 200")
            #expect(worker.exitStatus() == 0)
        }
    }
}
