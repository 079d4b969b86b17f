import Atomics
import CCLCore
import CCLSystem

/// send/recv through the arena's mailbox for the pair: two buffers, so the sender fills one while
/// the receiver copies the other. Each piece carries the call's fingerprint (message number on the
/// pair, dtype, count, sender), which the receiver compares with its own call.
extension ShmCommunicator {
    /// One message on its way out or in, piece by piece.
    struct Transfer {
        let peer: Int
        let call: Fingerprint
        let words: (UInt64, UInt64, UInt64)
        let base: UnsafeMutableRawPointer
        let bytes: Int
        var offset = 0
        var started = false
        var done: Bool { started && offset >= bytes }
    }

    func runSend(_ buffer: UnsafeRawBufferPointer, count: Int, dtype: DType, to peer: Int) throws(CCLError) {
        var outgoing: Transfer? = try outgoing(buffer, count: count, dtype: dtype, to: peer)
        var incoming: Transfer?
        try run(&outgoing, &incoming)
    }

    func runRecv(into buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from peer: Int) throws(CCLError) {
        var outgoing: Transfer?
        var incoming: Transfer? = try incoming(buffer, count: count, dtype: dtype, from: peer)
        try run(&outgoing, &incoming)
    }

    func runSendRecv(
        _ buffer: UnsafeRawBufferPointer, to destination: Int, into output: UnsafeMutableRawBufferPointer, from source: Int, count: Int,
        dtype: DType
    ) throws(CCLError) {
        if destination == rank, source == rank {
            let bytes: Int
            do { bytes = try check("sendRecv with itself").sameSize(buffer, output, count: count, dtype: dtype) } catch {
                throw rejected(error)
            }
            if bytes > 0, let from = buffer.baseAddress, let to = output.baseAddress, from != UnsafeRawPointer(to) {
                to.copyMemory(from: from, byteCount: bytes)
            }
            return
        }
        var outgoing: Transfer? = try outgoing(buffer, count: count, dtype: dtype, to: destination)
        var incoming: Transfer? = try incoming(output, count: count, dtype: dtype, from: source)
        try run(&outgoing, &incoming)
    }

    /// Checks one side of a message and numbers it on its pair; the fingerprint names the sender.
    private func transfer(sending: Bool, _ base: UnsafeMutableRawPointer, available: Int, count: Int, dtype: DType, peer: Int)
        throws(CCLError) -> Transfer
    {
        let bytes: Int
        do throws(CCLError) {
            let check = check(sending ? "send to rank \(peer)" : "recv from rank \(peer)")
            try check.peer(peer, role: sending ? "destination" : "source")
            bytes = try check.count(count, dtype)
            try check.buffer("", has: available, needs: bytes)
            guard peer != rank else {
                throw CCLError(
                    .invalidArgument, operation: check.operation, rank: check.rank,
                    "a rank cannot \(sending ? "send to" : "receive from") itself")
            }
        } catch { throw rejected(error) }
        if let broken = arena.broken { throw broken }
        let sequence: UInt64
        if sending {
            messagesSent[peer] &+= 1
            sequence = messagesSent[peer]
        } else {
            messagesReceived[peer] &+= 1
            sequence = messagesReceived[peer]
        }
        let call = Fingerprint(sequence: sequence, kind: .sendRecv, dtype: dtype, count: count, root: sending ? rank : peer)
        return Transfer(peer: peer, call: call, words: call.words, base: base, bytes: bytes)
    }

    private func outgoing(_ buffer: UnsafeRawBufferPointer, count: Int, dtype: DType, to peer: Int) throws(CCLError) -> Transfer {
        try transfer(
            sending: true, UnsafeMutableRawPointer(mutating: address(buffer)), available: buffer.count, count: count, dtype: dtype,
            peer: peer)
    }

    private func incoming(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, from peer: Int) throws(CCLError) -> Transfer {
        try transfer(sending: false, address(buffer), available: buffer.count, count: count, dtype: dtype, peer: peer)
    }

    /// Moves pieces of both transfers as the mailboxes allow, sleeping when neither can move.
    private func run(_ outgoing: inout Transfer?, _ incoming: inout Transfer?) throws(CCLError) {
        var budget = CallBudget(options.timeout)
        let what =
            [
                outgoing.map { "send \($0.call) to \(arena.name(of: $0.peer))" },
                incoming.map { "recv \($0.call) from \(arena.name(of: $0.peer))" },
            ]
            .compactMap { $0 }.joined(separator: " and ") + " on group \(arena.groupName)"
        while !(outgoing?.done ?? true) || !(incoming?.done ?? true) {
            var moved = false
            if var transfer = outgoing, !transfer.done, canPush(transfer) {
                push(&transfer)
                outgoing = transfer
                moved = true
            }
            if var transfer = incoming, !transfer.done, canPull(transfer) {
                try pull(&transfer, what)
                incoming = transfer
                moved = true
            }
            if moved { continue }
            let out = outgoing, into = incoming
            let peers = [out, into].compactMap { $0 }.filter { !$0.done }.map(\.peer)
            try arena.wait(
                until: {
                    (out.map { !$0.done && canPush($0) } ?? false) || (into.map { !$0.done && canPull($0) } ?? false)
                }, budget: &budget, { what }, waitingFor: { peers })
        }
    }

    private func canPush(_ transfer: Transfer) -> Bool {
        piecesSent[transfer.peer] &- arena.view.received(from: rank, to: transfer.peer).load(ordering: .acquiring) < 2
    }

    private func canPull(_ transfer: Transfer) -> Bool {
        arena.view.sent(from: transfer.peer, to: rank).load(ordering: .acquiring) > piecesReceived[transfer.peer]
    }

    private func push(_ transfer: inout Transfer) {
        let peer = transfer.peer
        let piece = piecesSent[peer]
        let length = min(arena.view.layout.mailboxBytes, transfer.bytes - transfer.offset)
        let slot = arena.view.mailboxBuffer(from: rank, to: peer, piece: piece)
        slot.storeBytes(of: transfer.words.0, toByteOffset: 0, as: UInt64.self)
        slot.storeBytes(of: transfer.words.1, toByteOffset: 8, as: UInt64.self)
        slot.storeBytes(of: transfer.words.2, toByteOffset: 16, as: UInt64.self)
        (slot + ArenaLayout.mailboxHeaderBytes).copyMemory(from: transfer.base + transfer.offset, byteCount: length)
        piecesSent[peer] = piece &+ 1
        arena.view.sent(from: rank, to: peer).store(piece &+ 1, ordering: .sequentiallyConsistent)
        arena.notify()
        transfer.offset += length
        transfer.started = true
    }

    private func pull(_ transfer: inout Transfer, _ what: String) throws(CCLError) {
        let peer = transfer.peer
        let piece = piecesReceived[peer]
        let slot = UnsafeRawPointer(arena.view.mailboxBuffer(from: peer, to: rank, piece: piece))
        let header = (
            slot.load(fromByteOffset: 0, as: UInt64.self), slot.load(fromByteOffset: 8, as: UInt64.self),
            slot.load(fromByteOffset: 16, as: UInt64.self)
        )
        guard header == transfer.words else {
            let theirs = Fingerprint(words: header).map { "\($0)" } ?? "an unreadable message"
            let error = CCLError(
                .invalidArgument, operation: what, rank: arena.globalRanks[rank], peer: arena.name(of: peer),
                "\(arena.name(of: peer)) sent \(theirs) but \(arena.name(of: rank)) receives \(transfer.call)")
            arena.fail(error)
            throw error
        }
        let length = min(arena.view.layout.mailboxBytes, transfer.bytes - transfer.offset)
        (transfer.base + transfer.offset).copyMemory(from: slot + ArenaLayout.mailboxHeaderBytes, byteCount: length)
        piecesReceived[peer] = piece &+ 1
        arena.view.received(from: peer, to: rank).store(piece &+ 1, ordering: .sequentiallyConsistent)
        arena.notify()
        transfer.offset += length
        transfer.started = true
    }
}
