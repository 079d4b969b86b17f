import CCLCore
import CCLStore
import Dispatch

/// Collectives on a group that spans nodes with several ranks on some of them, composed of two
/// tiers: an intra-node communicator per node (shared memory by default) and an inter-node one
/// among the node leaders (each node's first rank; TCP by default), plus an inter-node
/// communicator over the whole group for send/recv between nodes. Any host communicators can be
/// the tiers (`init(group:nodes:intraNode:interNode:)`).
///
/// - allReduce: all-reduce in the node, all-reduce among leaders, broadcast in the node (avg
///   sums throughout and divides once at the end).
/// - allGather, gather: gather to the leader, leaders exchange node blocks (padded to the largest
///   node), the leader puts them in group order (and broadcasts them in the node).
/// - reduceScatter: the all-reduce above on the whole input, each rank keeping its block.
/// - broadcast: in the root's node, among leaders, then in the other nodes.
/// - send/recv: shared memory between ranks of one node, else a TCP mesh of the whole group.
///
/// Threading: one thread at a time (see `Communicator`).
public final class HierarchicalCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    let groupName: String
    public var transportDescription: String {
        "hierarchical (\(nodeRanks.count) nodes: \(local.backend) inside, \(mesh.backend) between)"
    }
    public var backend: String { "\(Self.backendName)" }
    static let backendName: StaticString = "hierarchical"
    public var device: Device { .host }
    /// The ranks of this node.
    let local: any Communicator
    /// The cost model of the node's shared memory, when that is what `local` runs on.
    package var nodeCostModel: ShmCostModel? { (local as? ShmCommunicator)?.costModel }
    /// Among node leaders; nil on other ranks.
    let leaders: (any Communicator)?
    /// The whole group, for send/recv between nodes.
    let mesh: any Communicator
    /// Global rank of each group rank (errors name global ranks).
    let globalRanks: [Int]
    private let site: CallSite
    /// Collectives called so far, and messages per peer: the numbers `execute` reports.
    private var sequence: UInt64 = 0
    private var messagesSent: [UInt64]
    private var messagesReceived: [UInt64]
    /// Group ranks of each node, node order by first rank.
    let nodeRanks: [[Int]]
    let myNode: Int
    private var scratchBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    /// Makes one communicator of a tier over the group it is given (a sub-group of `group`), with
    /// the node of each of its ranks.
    public typealias Tier = (StatelessProcessGroup, NodeLayout) throws(CCLError) -> any Communicator

    /// Composes `intraNode` communicators (one per node, over sub-group "node<i>") and
    /// `interNode` ones (over sub-group "leaders" of each node's first rank, and over the whole
    /// group for send/recv between nodes). Collective: every rank of `group` calls it.
    public init(group: StatelessProcessGroup, nodes: NodeLayout, intraNode: Tier, interNode: Tier) throws(CCLError) {
        rank = group.rank
        worldSize = group.worldSize
        groupName = group.name
        var byNode: [String: [Int]] = [:]
        var order: [String] = []
        for (member, node) in nodes.nodeOfRank.enumerated() {
            if byNode[node] == nil { order.append(node) }
            byNode[node, default: []].append(member)
        }
        nodeRanks = order.map { byNode[$0] ?? [] }
        myNode = nodeRanks.firstIndex { $0.contains(group.rank) } ?? 0
        globalRanks = group.globalRanks ?? Array(0..<group.worldSize)
        messagesSent = Array(repeating: 0, count: group.worldSize)
        messagesReceived = messagesSent
        site = CallSite(group: group.name, rank: globalRanks[group.rank], groupRank: group.rank, worldSize: group.worldSize)
        let local = try group.subgroup("node\(myNode)", members: nodeRanks[myNode])
        self.local = try intraNode(local, NodeLayout(nodeOfRank: Array(repeating: order[myNode], count: local.worldSize)))
        leaders =
            nodeRanks[myNode].first == group.rank
            ? try interNode(try group.subgroup("leaders", members: nodeRanks.map { $0[0] }), NodeLayout(nodeOfRank: order)) : nil
        mesh = try interNode(group, nodes)
    }

    deinit { scratchBuffer.deallocate() }

    private func scratch(_ bytes: Int) -> UnsafeMutableRawBufferPointer {
        if scratchBuffer.count < bytes {
            scratchBuffer.deallocate()
            scratchBuffer = .allocate(byteCount: max(bytes, 64), alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: scratchBuffer[0..<bytes])
    }

    private var isLeader: Bool { leaders != nil }

    private func check(_ name: String) -> CallCheck {
        site.check(name)
    }

    public func abort(_ error: CCLError) {
        local.abort(error)
        leaders?.abort(error)
        mesh.abort(error)
    }

    public func execute(_ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, on stream: DeviceStream)
        throws(CCLError) -> Completion
    {
        try guarded { () throws(CCLError) in
            try site.checkBuffers(call, input: input, output: output, stream: stream, device: .host, backend: Self.backendName)
        }
        let count = call.count, dtype = call.dtype
        let (input, output) = (input.hostBytes, output.mutableHostBytes)
        switch call.op {
        case .send(let peer):
            try runSend(input, count: count, dtype: dtype, to: peer)
            messagesSent[peer] &+= 1
            return .done(messagesSent[peer])
        case .recv(let peer):
            try runRecv(into: output, count: count, dtype: dtype, from: peer)
            messagesReceived[peer] &+= 1
            return .done(messagesReceived[peer])
        case .sendRecv(let destination, let source):
            try runSendRecv(input, to: destination, into: output, from: source, count: count, dtype: dtype)
            messagesSent[destination] &+= 1
            messagesReceived[source] &+= 1
            return .done(messagesSent[destination])
        default: break
        }
        sequence &+= 1
        switch call.op {
        case .allReduce(let op): try runAllReduce(input, into: output, count: count, dtype: dtype, op: op)
        case .allGather: try runAllGather(input, into: output, count: count, dtype: dtype)
        case .reduceScatter(let op): try runReduceScatter(input, into: output, count: count, dtype: dtype, op: op)
        case .broadcast(let root): try runBroadcast(output, count: count, dtype: dtype, from: root)
        case .gather(let root): try runGather(input, into: output, count: count, dtype: dtype, to: root)
        case .barrier: try runBarrier()
        case .send, .recv, .sendRecv: break
        }
        return .done(sequence)
    }

    /// Runs one call's steps; a failure in any part is passed to the others (their peers then
    /// fail with its reason instead of a lost connection or a timeout).
    private func guarded(_ body: () throws(CCLError) -> Void) throws(CCLError) {
        do {
            try body()
        } catch {
            abort(error)
            throw error
        }
    }

    private func runAllReduce(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        try guarded { () throws(CCLError) in
            let bytes = try check("allReduce").sameSize(input, output, count: count, dtype: dtype)
            let step = op == .avg ? ReduceOp.sum : op
            try local.allReduce(input, into: output, count: count, dtype: dtype, op: step)
            if let leaders {
                try leaders.allReduce(UnsafeRawBufferPointer(output), into: output, count: count, dtype: dtype, op: step)
            }
            try local.broadcast(output, count: count, dtype: dtype, from: 0)
            if op == .avg, bytes > 0, let base = output.baseAddress {
                [UnsafeRawPointer(base)].withUnsafeBufferPointer {
                    Reduction.reduce($0, into: base, count: count, dtype: dtype, op: .avg, divisor: worldSize)
                }
            }
        }
    }

    private func runAllGather(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError)
    {
        try guarded { () throws(CCLError) in
            let check = check("allGather")
            let bytes = try check.gathering(input, output, count: count, dtype: dtype)
            let workspace = scratch(try workspaceBytes(block: bytes, check: check))
            try gatherBlocks(input, into: output, count: count, dtype: dtype, toNode: nil, workspace: workspace)
            try local.broadcast(output, count: worldSize * count, dtype: dtype, from: 0)
        }
    }

    private func runGather(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, to root: Int
    ) throws(CCLError) {
        try guarded { () throws(CCLError) in
            let check = check("gather")
            let bytes = try check.gatheringTo(input, output, count: count, dtype: dtype, root: root, isRoot: rank == root)
            let all = try check.times(bytes, worldSize)
            let rootNode = nodeRanks.firstIndex { $0.contains(root) } ?? 0
            // One region: the workspace, then (on the root's leader) the gathered result.
            let needed = try workspaceBytes(block: bytes, check: check)
            let region = scratch(needed + all)
            let workspace = UnsafeMutableRawBufferPointer(rebasing: region[0..<needed])
            let leaderOutput =
                isLeader && myNode == rootNode
                ? UnsafeMutableRawBufferPointer(rebasing: region[needed..<(needed + all)])
                : UnsafeMutableRawBufferPointer(start: nil, count: 0)
            try gatherBlocks(
                input, into: rank == root ? output : leaderOutput, count: count, dtype: dtype, toNode: rootNode, workspace: workspace)
            // The root's leader holds the result; pass it to the root when that is another rank.
            let rootLeader = nodeRanks[rootNode][0]
            guard root != rootLeader, myNode == rootNode else { return }
            let localRoot = nodeRanks[rootNode].firstIndex(of: root) ?? 0
            if rank == rootLeader {
                try local.send(UnsafeRawBufferPointer(leaderOutput), count: worldSize * count, dtype: dtype, to: localRoot)
            } else if rank == root {
                try local.recv(into: output, count: worldSize * count, dtype: dtype, from: 0)
            }
        }
    }

    /// Bytes `gatherBlocks` needs as workspace for blocks of `block` bytes: this node's blocks and
    /// every node's, each padded to the widest node.
    private func workspaceBytes(block: Int, check: CallCheck) throws(CCLError) -> Int {
        let widest = nodeRanks.map(\.count).max() ?? 1
        return try check.times(try check.times(block, widest), nodeRanks.count + 1)
    }

    /// Gathers every rank's block, in group order, into the output of the leader of `toNode`
    /// (every leader when nil); `output` must hold worldSize × count elements there, and must not
    /// overlap `workspace` (`workspaceBytes`).
    private func gatherBlocks(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, toNode: Int?,
        workspace nodeBlocks: UnsafeMutableRawBufferPointer
    ) throws(CCLError) {
        let size = dtype.size, block = count * size
        let widest = nodeRanks.map(\.count).max() ?? 1
        let localGathered = UnsafeMutableRawBufferPointer(rebasing: nodeBlocks[0..<(widest * block)])
        try local.gather(input, into: localGathered, count: count, dtype: dtype, to: 0)
        guard let leaders else { return }
        let all = UnsafeMutableRawBufferPointer(rebasing: nodeBlocks[(widest * block)..<(widest * block * (1 + nodeRanks.count))])
        if let toNode {
            try leaders.gather(UnsafeRawBufferPointer(localGathered), into: all, count: widest * count, dtype: dtype, to: toNode)
            guard myNode == toNode else { return }
        } else {
            try leaders.allGather(UnsafeRawBufferPointer(localGathered), into: all, count: widest * count, dtype: dtype)
        }
        guard let target = output.baseAddress, let source = all.baseAddress, block > 0 else { return }
        for (node, members) in nodeRanks.enumerated() {
            for (index, member) in members.enumerated() {
                (target + member * block).copyMemory(from: source + (node * widest + index) * block, byteCount: block)
            }
        }
    }

    private func runReduceScatter(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, op: ReduceOp
    ) throws(CCLError) {
        try guarded { () throws(CCLError) in
            let block = try check("reduceScatter").scattering(input, output, count: count, dtype: dtype)
            let whole = UnsafeMutableRawBufferPointer.allocate(byteCount: max(64, worldSize * block), alignment: 64)
            defer { whole.deallocate() }
            try runAllReduce(
                input, into: UnsafeMutableRawBufferPointer(rebasing: whole[0..<(worldSize * block)]), count: worldSize * count,
                dtype: dtype, op: op)
            if block > 0, let target = output.baseAddress, let source = whole.baseAddress {
                target.copyMemory(from: source + rank * block, byteCount: block)
            }
        }
    }

    private func runBroadcast(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from root: Int) throws(CCLError) {
        try guarded { () throws(CCLError) in
            try check("broadcast").rooted(buffer, count: count, dtype: dtype, root: root)
            let rootNode = nodeRanks.firstIndex { $0.contains(root) } ?? 0
            if myNode == rootNode {
                try local.broadcast(buffer, count: count, dtype: dtype, from: nodeRanks[rootNode].firstIndex(of: root) ?? 0)
            }
            try leaders?.broadcast(buffer, count: count, dtype: dtype, from: rootNode)
            if myNode != rootNode { try local.broadcast(buffer, count: count, dtype: dtype, from: 0) }
        }
    }

    private func runSend(_ buffer: UnsafeRawBufferPointer, count: Int, dtype: DType, to peer: Int) throws(CCLError) {
        try guarded { () throws(CCLError) in
            if let localPeer = nodeRanks[myNode].firstIndex(of: peer) {
                try local.send(buffer, count: count, dtype: dtype, to: localPeer)
            } else {
                try mesh.send(buffer, count: count, dtype: dtype, to: peer)
            }
        }
    }

    private func runRecv(into buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from peer: Int) throws(CCLError) {
        try guarded { () throws(CCLError) in
            if let localPeer = nodeRanks[myNode].firstIndex(of: peer) {
                try local.recv(into: buffer, count: count, dtype: dtype, from: localPeer)
            } else {
                try mesh.recv(into: buffer, count: count, dtype: dtype, from: peer)
            }
        }
    }

    private func runSendRecv(
        _ buffer: UnsafeRawBufferPointer, to destination: Int, into output: UnsafeMutableRawBufferPointer, from source: Int, count: Int,
        dtype: DType
    ) throws(CCLError) {
        try guarded { () throws(CCLError) in
            let members = nodeRanks[myNode]
            let localDestination = members.firstIndex(of: destination), localSource = members.firstIndex(of: source)
            if let localDestination, let localSource {
                try local.sendRecv(buffer, to: localDestination, into: output, from: localSource, count: count, dtype: dtype)
            } else if localDestination == nil, localSource == nil {
                try mesh.sendRecv(buffer, to: destination, into: output, from: source, count: count, dtype: dtype)
            } else {
                // One side in the node, one outside: each message takes its pair's channel, so run the
                // send on another thread (the two communicators are independent) while receiving here.
                nonisolated(unsafe) let sending = buffer
                nonisolated(unsafe) var sendError: CCLError?
                let sent = DispatchSemaphore(value: 0)
                DispatchQueue.global().async { [self] in
                    do throws(CCLError) {
                        if let localDestination {
                            try local.send(sending, count: count, dtype: dtype, to: localDestination)
                        } else {
                            try mesh.send(sending, count: count, dtype: dtype, to: destination)
                        }
                    } catch { sendError = error }
                    sent.signal()
                }
                var receiveError: CCLError?
                do throws(CCLError) {
                    if let localSource {
                        try local.recv(into: output, count: count, dtype: dtype, from: localSource)
                    } else {
                        try mesh.recv(into: output, count: count, dtype: dtype, from: source)
                    }
                } catch { receiveError = error }
                sent.wait()
                if let error = receiveError ?? sendError { throw error }
            }
        }
    }

    private func runBarrier() throws(CCLError) {
        try guarded { () throws(CCLError) in
            try local.barrier()
            try leaders?.barrier()
            try local.barrier()
        }
    }
}
