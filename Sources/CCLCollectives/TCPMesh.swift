import CCLCore
import CCLStore
import CCLSystem

/// Authenticated TCP connections to every other rank of a group (Gloo's `connectFullMesh`): one
/// per pair, or `options.tcp.connections` to stripe large frames over (NCCL's
/// `NCCL_NSOCKS_PERTHREAD`).
///
/// Each rank listens on `options.tcp.host` (port chosen by the kernel) and publishes the address
/// through the group's store; rank r connects to every rank below it and accepts from every rank
/// above it. The connecting side opens with the `Handshake` hello ("CCLMESH3", its rank, the
/// token, and as context the world size, the connection's index and count, and the group name), and the accepting side answers with
/// the `Handshake` ack ("CCLMESHB", its own rank as the status) only when all of it matches; anything else (garbage, wrong token, a rank already connected) is closed and
/// accepting goes on until the timeout, which then names the ranks that never connected.
enum TCPMesh {
    // Version 3 since the hello's context names the connection's index and count (version 2: the
    // common `Handshake`); an older peer is refused at once.
    static let helloMagic: UInt64 = 0x3348_5345_4D4C_4343  // "CCLMESH3"
    static let answerMagic: UInt64 = 0x4248_5345_4D4C_4343  // "CCLMESHB"
    static let maxNameBytes = 1024

    /// Connections by group rank, `options.tcp.connections` to each peer (none to itself); the
    /// hello names the connection's index and count, so the two ends pair them alike.
    static func connect(group: StatelessProcessGroup, options: CollectiveOptions) throws(CCLError) -> [[TCPConnection]] {
        let count = options.tcp.connections
        guard (1...TCPOptions.maxConnections).contains(count) else {
            throw CCLError(
                .invalidArgument, operation: "connect TCP mesh of group \(group.name)", rank: group.globalRanks?[group.rank] ?? group.rank,
                "\(count) connections per peer: from 1 to \(TCPOptions.maxConnections)")
        }
        let rank = group.rank, world = group.worldSize
        let names = group.globalRanks ?? Array(0..<world)
        let operation = "connect TCP mesh of group \(group.name)"
        let listener = try TCPListener(host: options.tcp.host, port: 0)
        defer { listener.close() }
        let advertised = SocketAddressSpec(host: options.tcp.host, port: listener.port)
        let addresses = try group.allGatherObject([advertised.host, "\(advertised.port)"])
        var connections = [[TCPConnection]](repeating: [], count: world)
        var budget = CallBudget(options.timeout)
        let token = Array(options.tcp.token.utf8), name = Array(group.name.utf8)
        guard name.count <= maxNameBytes, token.count <= AuthToken.maxBytes else {
            throw CCLError(
                .invalidArgument, operation: operation, rank: names[rank],
                "the group name (\(name.count) bytes) or token (\(token.count) bytes) is too long: at most \(maxNameBytes) and \(AuthToken.maxBytes)"
            )
        }
        // Connect downwards.
        for peer in 0..<rank {
            guard addresses[peer].count == 2, let port = Int(addresses[peer][1]) else {
                throw CCLError(.malformed, operation: operation, rank: names[rank], "rank \(names[peer]) published no address")
            }
            for index in 0..<count {
                let connection = try TCPConnection.connect(
                    host: addresses[peer][0], port: port, timeout: budget.next(), operation: operation)
                connection.peerName = "rank \(names[peer])"
                connection.rank = names[rank]
                let hello = Handshake(rank: rank, token: token, context: context(world: world, name: name, index: index, of: count))
                try send(hello.encode(magic: helloMagic), on: connection, timeout: budget.next(), operation: operation)
                var answer = [UInt8](repeating: 0, count: Handshake.ackBytes)
                do { try receive(into: &answer, on: connection, timeout: budget.next(), operation: operation) } catch {
                    var refused = error
                    refused.message += " (a peer closes a hello it refuses: do all ranks use the same token and CCL_TCP_CONNECTIONS?)"
                    throw refused
                }
                guard Handshake.parseAck(answer, magic: answerMagic) == UInt32(peer) else {
                    throw CCLError(
                        .unauthenticated, operation: operation, rank: names[rank], peer: connection.peerLabel,
                        "the peer at \(connection.peerDescription) did not answer as rank \(names[peer]) of group \(group.name)")
                }
                connections[peer].append(connection)
            }
        }
        // Accept from above: every peer's connections, in any order.
        var missing = Set(((rank + 1) * count)..<(world * count))
        var accepted = [[TCPConnection?]](repeating: [TCPConnection?](repeating: nil, count: count), count: world)
        var refusals = Set<String>()
        while !missing.isEmpty {
            let connection: TCPConnection
            do {
                connection = try listener.accept(timeout: budget.next(), operation: operation)
            } catch {
                guard error.code == .timeout else { throw error }
                throw CCLError(
                    .timeout, operation: operation, rank: names[rank],
                    "waited \(options.timeout); "
                        + CCLError.missingRanks(Set(missing.map { $0 / count }).map { names[$0] }, "never connected")
                        + refusals.sorted().map { "; \($0)" }.joined())
            }
            // A bad hello costs only that connection; the timeout bounds a silent one.
            let hello = try? readHello(connection, world: world, count: count, token: token, name: name, budget: &budget)
            guard case .accepted(let peer, let index) = hello, missing.contains(peer * count + index) else {
                if case .otherCount(let peer, let theirs) = hello {
                    refusals.insert(
                        "rank \(names[peer]) asked for \(theirs) connections per peer, this rank uses \(count) (CCL_TCP_CONNECTIONS must match)"
                    )
                }
                connection.close()
                continue
            }
            connection.peerName = "rank \(names[peer])"
            connection.rank = names[rank]
            try send(Handshake.ack(magic: answerMagic, status: UInt32(rank)), on: connection, timeout: budget.next(), operation: operation)
            accepted[peer][index] = connection
            missing.remove(peer * count + index)
        }
        for peer in (rank + 1)..<max(rank + 1, world) { connections[peer] = accepted[peer].compactMap { $0 } }
        return connections
    }

    /// What both sides of a mesh connection must agree on besides the token: the world size,
    /// the connection's index among `count` to the same peer, and the group name.
    private static func context(world: Int, name: [UInt8], index: Int, of count: Int) -> [UInt8] {
        [world, count, index].flatMap { value in withUnsafeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian) { Array($0) } } + name
    }

    /// What a hello asked for.
    private enum Hello {
        /// The rank and connection index it names: its magic, token, world size, connection count
        /// and group name are right.
        case accepted(peer: Int, index: Int)
        /// From an authenticated rank of the same group and world that asked for another number
        /// of connections per peer: refused, and worth telling.
        case otherCount(peer: Int, connections: Int)
        /// Refused.
        case refused
    }

    private static func readHello(
        _ connection: TCPConnection, world: Int, count: Int, token: [UInt8], name: [UInt8], budget: inout CallBudget
    ) throws(CCLError) -> Hello {
        // A silent connection may hold the accept loop for at most 5 s.
        let limit: Timeout = budget.next().nanoseconds.map { .nanoseconds(min($0, 5_000_000_000)) } ?? .seconds(5)
        var head = [UInt8](repeating: 0, count: Handshake.headerBytes)
        try receive(into: &head, on: connection, timeout: limit, operation: "read a mesh hello")
        guard case .success(let header) = Handshake.parseHeader(head, magic: helloMagic) else { return .refused }
        var rest = [UInt8](repeating: 0, count: header.totalBytes - Handshake.headerBytes)
        try receive(into: &rest, on: connection, timeout: limit, operation: "read a mesh hello")
        guard let hello = Handshake(header: header, rest: rest), AuthToken.matches(hello.token, token), let peer = hello.rank, peer < world
        else { return .refused }
        if let index = (0..<count).first(where: { hello.context == context(world: world, name: name, index: $0, of: count) }) {
            return .accepted(peer: peer, index: index)
        }
        // Same world and group, another count: say so rather than time out in silence.
        let theirs = Array(hello.context)
        let word = { (at: Int) in theirs.count >= at + 4 ? theirs[at..<(at + 4)].reversed().reduce(0) { $0 << 8 | Int($1) } : -1 }
        let sameGroup = word(0) == world && theirs.count >= 12 && Array(theirs.dropFirst(12)) == name
        return sameGroup && word(4) != count ? .otherCount(peer: peer, connections: word(4)) : .refused
    }

    static func send(_ bytes: [UInt8], on connection: TCPConnection, timeout: Timeout, operation: String) throws(CCLError) {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(CCLError) in try connection.sendAll(raw, timeout: timeout, operation: operation) }
        }.get()
    }

    static func receive(into bytes: inout [UInt8], on connection: TCPConnection, timeout: Timeout, operation: String) throws(CCLError) {
        try bytes.withUnsafeMutableBytes { raw in
            Result { () throws(CCLError) in try connection.receiveAll(into: raw, timeout: timeout, operation: operation) }
        }.get()
    }
}
