import CCLCore
import CCLStore
import CCLSystem

/// One authenticated TCP connection to every other rank of a group (Gloo's `connectFullMesh`).
///
/// Each rank listens on `options.tcp.host` (port chosen by the kernel) and publishes the address
/// through the group's store; rank r connects to every rank below it and accepts from every rank
/// above it. The connecting side opens with the `Handshake` hello ("CCLMESH2", its rank, the
/// token, and as context the world size and the group name), and the accepting side answers with
/// the `Handshake` ack ("CCLMESHB", its own rank as the status) only when all of it matches; anything else (garbage, wrong token, a rank already connected) is closed and
/// accepting goes on until the timeout, which then names the ranks that never connected.
enum TCPMesh {
    // Version 2 since the hello became the common `Handshake` (a version-1 peer is refused at once).
    static let helloMagic: UInt64 = 0x3248_5345_4D4C_4343  // "CCLMESH2"
    static let answerMagic: UInt64 = 0x4248_5345_4D4C_4343  // "CCLMESHB"
    static let maxNameBytes = 1024

    /// Connections by group rank (nil at this rank's own index).
    static func connect(group: StatelessProcessGroup, options: CollectiveOptions) throws(CCLError) -> [TCPConnection?] {
        let rank = group.rank, world = group.worldSize
        let names = group.globalRanks ?? Array(0..<world)
        let operation = "connect TCP mesh of group \(group.name)"
        let listener = try TCPListener(host: options.tcp.host, port: 0)
        defer { listener.close() }
        let advertised = SocketAddressSpec(host: options.tcp.host, port: listener.port)
        let addresses = try group.allGatherObject([advertised.host, "\(advertised.port)"])
        var connections = [TCPConnection?](repeating: nil, count: world)
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
            let connection = try TCPConnection.connect(host: addresses[peer][0], port: port, timeout: budget.next(), operation: operation)
            connection.peerName = "rank \(names[peer])"
            connection.rank = names[rank]
            let hello = Handshake(rank: rank, token: token, context: context(world: world, name: name))
            try send(hello.encode(magic: helloMagic), on: connection, timeout: budget.next(), operation: operation)
            var answer = [UInt8](repeating: 0, count: Handshake.ackBytes)
            try receive(into: &answer, on: connection, timeout: budget.next(), operation: operation)
            guard Handshake.parseAck(answer, magic: answerMagic) == UInt32(peer) else {
                throw CCLError(
                    .unauthenticated, operation: operation, rank: names[rank], peer: connection.peerLabel,
                    "the peer at \(connection.peerDescription) did not answer as rank \(names[peer]) of group \(group.name)")
            }
            connections[peer] = connection
        }
        // Accept from above.
        var missing = Set((rank + 1)..<world)
        while !missing.isEmpty {
            let connection: TCPConnection
            do {
                connection = try listener.accept(timeout: budget.next(), operation: operation)
            } catch {
                guard error.code == .timeout else { throw error }
                throw CCLError(
                    .timeout, operation: operation, rank: names[rank],
                    "waited \(options.timeout); " + CCLError.missingRanks(missing.map { names[$0] }, "never connected"))
            }
            // A bad hello costs only that connection; the timeout bounds a silent one.
            guard let peer = try? readHello(connection, world: world, token: token, name: name, budget: &budget), missing.contains(peer)
            else {
                connection.close()
                continue
            }
            connection.peerName = "rank \(names[peer])"
            connection.rank = names[rank]
            try send(Handshake.ack(magic: answerMagic, status: UInt32(rank)), on: connection, timeout: budget.next(), operation: operation)
            connections[peer] = connection
            missing.remove(peer)
        }
        return connections
    }

    /// What both sides of a mesh connection must agree on besides the token.
    private static func context(world: Int, name: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: world).littleEndian) { Array($0) } + name
    }

    /// The rank a hello names, when its magic, token, world size and group name are right.
    private static func readHello(_ connection: TCPConnection, world: Int, token: [UInt8], name: [UInt8], budget: inout CallBudget)
        throws(CCLError) -> Int?
    {
        // A silent connection may hold the accept loop for at most 5 s.
        let limit: Timeout = budget.next().nanoseconds.map { .nanoseconds(min($0, 5_000_000_000)) } ?? .seconds(5)
        var head = [UInt8](repeating: 0, count: Handshake.headerBytes)
        try receive(into: &head, on: connection, timeout: limit, operation: "read a mesh hello")
        guard case .success(let header) = Handshake.parseHeader(head, magic: helloMagic) else { return nil }
        var rest = [UInt8](repeating: 0, count: header.totalBytes - Handshake.headerBytes)
        try receive(into: &rest, on: connection, timeout: limit, operation: "read a mesh hello")
        guard let hello = Handshake(header: header, rest: rest), AuthToken.matches(hello.token, token),
            hello.context == context(world: world, name: name), let peer = hello.rank
        else {
            return nil
        }
        return peer < world ? peer : nil
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
