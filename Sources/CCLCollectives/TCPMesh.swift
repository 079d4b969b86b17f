import CCLCore
import CCLStore
import CCLSystem

/// One authenticated TCP connection to every other rank of a group (Gloo's `connectFullMesh`).
///
/// Each rank listens on `options.tcp.host` (port chosen by the kernel) and publishes the address
/// through the group's store; rank r connects to every rank below it and accepts from every rank
/// above it. The connecting side opens with a hello — magic, its rank, the world size, the group
/// name and the token — and the accepting side answers with its own magic and rank only when all
/// of it matches; anything else (garbage, wrong token, a rank already connected) is closed and
/// accepting goes on until the timeout, which then names the ranks that never connected.
enum TCPMesh {
    static let helloMagic: UInt64 = 0x3148_5345_4D4C_4343  // "CCLMESH1"
    static let answerMagic: UInt64 = 0x4148_5345_4D4C_4343  // "CCLMESHA"
    static let maxTokenBytes = AuthToken.maxBytes
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
        // Connect downwards.
        for peer in 0..<rank {
            guard addresses[peer].count == 2, let port = Int(addresses[peer][1]) else {
                throw CCLError(.malformed, operation: operation, rank: names[rank], "rank \(names[peer]) published no address")
            }
            let connection = try TCPConnection.connect(host: addresses[peer][0], port: port, timeout: budget.next(), operation: operation)
            connection.peerName = "rank \(names[peer])"
            connection.rank = names[rank]
            var hello = BinaryWriter()
            hello.append(helloMagic)
            hello.append(UInt32(rank))
            hello.append(UInt32(world))
            hello.append(UInt32(token.count))
            hello.append(UInt32(name.count))
            hello.bytes += token + name
            try send(hello.bytes, on: connection, timeout: budget.next(), operation: operation)
            var answer = [UInt8](repeating: 0, count: 12)
            try receive(into: &answer, on: connection, timeout: budget.next(), operation: operation)
            let reader = BinaryReader(answer)
            guard reader.u64(0) == answerMagic, reader.u32(8) == UInt32(peer) else {
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
            var answer = BinaryWriter()
            answer.append(answerMagic)
            answer.append(UInt32(rank))
            try send(answer.bytes, on: connection, timeout: budget.next(), operation: operation)
            connections[peer] = connection
            missing.remove(peer)
        }
        return connections
    }

    /// The rank a hello names, when its magic, world size, token and group name are right.
    private static func readHello(_ connection: TCPConnection, world: Int, token: [UInt8], name: [UInt8], budget: inout CallBudget)
        throws(CCLError) -> Int?
    {
        // A silent connection may hold the accept loop for at most 5 s.
        let limit: Timeout = budget.next().nanoseconds.map { .nanoseconds(min($0, 5_000_000_000)) } ?? .seconds(5)
        var header = [UInt8](repeating: 0, count: 24)
        try receive(into: &header, on: connection, timeout: limit, operation: "read a mesh hello")
        let reader = BinaryReader(header)
        let tokenLength = Int(reader.u32(16)), nameLength = Int(reader.u32(20))
        guard reader.u64(0) == helloMagic, Int(reader.u32(12)) == world, tokenLength <= maxTokenBytes, nameLength <= maxNameBytes else {
            return nil
        }
        var rest = [UInt8](repeating: 0, count: tokenLength + nameLength)
        try receive(into: &rest, on: connection, timeout: limit, operation: "read a mesh hello")
        guard AuthToken.matches(Array(rest[..<tokenLength]), token), Array(rest[tokenLength...]) == name else { return nil }
        let peer = Int(reader.u32(8))
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

/// Little-endian fields for handshakes and frame headers.
struct BinaryWriter {
    var bytes: [UInt8] = []
    mutating func append(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func append(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
}

struct BinaryReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u64(_ offset: Int) -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }
    func u32(_ offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }
}
