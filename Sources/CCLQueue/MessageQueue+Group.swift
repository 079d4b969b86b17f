import CCLCore
import CCLStore

/// One end of a broadcast queue made for a whole group.
public enum MessageQueueEnd: Sendable {
    case writer(MessageQueueWriter)
    case reader(MessageQueueReader)
}

extension MessageQueueEnd {
    /// Creates the group's broadcast queue (vLLM's `MessageQueue.create_from_process_group`).
    /// Collective: every rank of `group` calls it with the same `writer`.
    ///
    /// The writer makes the ring for the readers on its node (by `nodes`) and a TCP listener for
    /// the others, on `options.remoteHost:remotePort` (which must be an address the other nodes
    /// reach); the handle travels through the group; every rank returns once all are attached.
    public static func create(
        from group: StatelessProcessGroup, writer: Int, nodes: NodeLayout, options: QueueOptions = QueueOptions()
    ) throws(CCLError) -> MessageQueueEnd {
        let operation = "create broadcast queue on group \(group.name) (writer rank \(writer))"
        guard (0..<group.worldSize).contains(writer), nodes.nodeOfRank.count == group.worldSize else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: group.rank,
                "writer must be in 0..<\(group.worldSize) and the node layout must cover the group")
        }
        if group.rank == writer {
            let readers = (0..<group.worldSize).filter { $0 != writer }
            let local = readers.filter { nodes.nodeOfRank[$0] == nodes.nodeOfRank[writer] }
            let remote = readers.filter { nodes.nodeOfRank[$0] != nodes.nodeOfRank[writer] }
            if !remote.isEmpty, ["127.0.0.1", "::1", "localhost"].contains(options.remoteHost) {
                // Right only when the "nodes" share this machine's loopback (tests); say so.
                let advice = "set QueueOptions.remoteHost to an address of this node they can reach"
                options.logger.warning(
                    "\(operation): ranks \(remote) are on other nodes but remote readers are served on \(options.remoteHost); \(advice)")
            }
            var options = options
            let globalRanks = group.globalRanks, store = group.jobStore
            options.readerActivity = { readers in RankActivity.describe(readers.map { globalRanks?[$0] ?? $0 }, store: store) }
            let queue = try MessageQueueWriter(localReaders: local, remoteReaders: remote, rank: writer, options: options)
            _ = try group.broadcastObject(queue.handle, from: writer)
            try queue.waitUntilReady()
            return .writer(queue)
        }
        let handle = try group.broadcastObject(MessageQueueHandle?.none, from: writer)
        let queue = try MessageQueueReader(handle: handle, rank: group.rank, options: options)
        try queue.waitUntilReady()
        return .reader(queue)
    }
}
