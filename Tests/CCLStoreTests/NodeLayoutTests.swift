import CCLSystem
import Foundation
import Testing

@testable import CCLStore

@Suite struct NodeLayoutTests {
    @Test("nodes, node count, local ranks and same-node queries")
    func layout() {
        let layout = NodeLayout(nodeOfRank: ["b", "a", "b", "a", "c"])
        #expect(layout.nodes == ["b", "a", "c"])
        #expect(layout.nodeCount == 3)
        #expect(layout.nodeIndex(of: 3) == 1)
        #expect(layout.ranksOnSameNode(as: 2) == [0, 2])
        #expect(layout.local(2) == (1, 2))
        #expect(layout.sameNode(as: 0, ranks: [0, 1, 2, 3, 4]) == [true, false, true, false, false])
    }

    @Test("CCL_NODE_ID wins; otherwise the id is stable within this process and names boot and network namespace")
    func identity() {
        #expect(NodeIdentity.current(environment: ["CCL_NODE_ID": "rack3-node7"]) == "rack3-node7")
        let derived = NodeIdentity.current(environment: [:])
        #expect(derived == NodeIdentity.current(environment: ["CCL_NODE_ID": ""]))
        #expect(derived.contains("/net:"))
    }

    @Test("gathered through a process group")
    func gathered() throws {
        let store = InMemoryStore()
        let results = LockedResults<NodeLayout>(count: 3)
        for r in 0..<3 {
            Thread {
                results.set(
                    r,
                    Result {
                        try NodeLayout(group: try StatelessProcessGroup(rank: r, worldSize: 3, store: store), nodeID: r == 2 ? "n1" : "n0")
                    })
            }.start()
        }
        results.waitAll()
        for result in results.values { #expect(try result.get().nodeOfRank == ["n0", "n0", "n1"]) }
    }
}
