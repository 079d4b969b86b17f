import CCLCore
import CCLStore
import Testing

@testable import CCLCollectives

/// The pure parts: algorithm and transport choice, option parsing, fingerprint packing.
@Suite struct CollectiveSelectionTests {
    @Test("shared memory without measured costs: the typical model's choice (one-shot small, two-shot large)")
    func slotChoice() {
        #expect(SlotAllReduce.choose(bytes: 8, worldSize: 4) == .oneShot)
        #expect(SlotAllReduce.choose(bytes: 2 << 10, worldSize: 4) == .oneShot)
        #expect(SlotAllReduce.choose(bytes: 64 << 10, worldSize: 4) == .twoShot)
        #expect(SlotAllReduce.choose(bytes: 8 << 10, worldSize: 2) == .oneShot)
        #expect(SlotAllReduce.choose(bytes: 64 << 20, worldSize: 2) == .twoShot)
        #expect(SlotAllReduce.choose(bytes: 64 << 20, worldSize: 1) == .oneShot)
    }

    @Test("TCP: recursive doubling only for small calls on power-of-two groups")
    func peerChoice() {
        #expect(PeerAllReduce.choose(bytes: 8, worldSize: 2) == .recursiveDoubling)
        #expect(PeerAllReduce.choose(bytes: 8, worldSize: 4) == .recursiveDoubling)
        #expect(PeerAllReduce.choose(bytes: 8, worldSize: 3) == .ring)
        #expect(PeerAllReduce.choose(bytes: 1 << 20, worldSize: 4) == .halvingDoubling)
        #expect(PeerAllReduce.choose(bytes: 64 << 20, worldSize: 8) == .halvingDoubling)
        #expect(PeerAllReduce.choose(bytes: 64 << 10, worldSize: 2) == .ring)
        #expect(PeerAllReduce.choose(bytes: 64 << 10, worldSize: 6) == .ring)
        #expect(PeerAllReduce.choose(bytes: 0, worldSize: 1) == .recursiveDoubling)
    }

    @Test("TCP send thread: CCL_TCP_SEND_THREAD=auto|1|0; auto unless one CPU or more than two ranks per CPU")
    func sendThread() throws {
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_SEND_THREAD": "1"]).tcp.sendThread == true)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_SEND_THREAD": "off"]).tcp.sendThread == false)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_SEND_THREAD": "auto"]).tcp.sendThread == nil)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_SEND_THREAD": ""]).tcp.sendThread == nil)
        expectRefused("CCL_TCP_SEND_THREAD", ["maybe", "2", "-1", "9223372036854775807", "nan", String(repeating: "1", count: 10_000)])
        let auto = TCPOptions()
        #expect(auto.usesSendThread(ranksOnNode: 2, cpus: 2) && auto.usesSendThread(ranksOnNode: 4, cpus: 2))
        #expect(!auto.usesSendThread(ranksOnNode: 5, cpus: 2) && !auto.usesSendThread(ranksOnNode: 1, cpus: 1))
        #expect(auto.usesSendThread(ranksOnNode: 16, cpus: 16) && auto.usesSendThread(ranksOnNode: 32, cpus: 16))
        var forced = TCPOptions()
        forced.sendThread = true
        #expect(forced.usesSendThread(ranksOnNode: 64, cpus: 2))
    }

    @Test("TCP streams: CCL_TCP_STREAM=auto|1|0, auto when every rank of the node has two CPUs; CCL_TCP_RECEIVE_THREAD, three")
    func stream() throws {
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_STREAM": "1"]).tcp.stream == true)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_STREAM": "no"]).tcp.stream == false)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_STREAM": "AUTO"]).tcp.stream == nil)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_STREAM": ""]).tcp.stream == nil)
        expectRefused("CCL_TCP_STREAM", ["maybe", "2", "-1", "9223372036854775807", "nan", String(repeating: "0", count: 10_000)])
        let auto = TCPOptions()
        #expect(auto.streams(ranksOnNode: 2, cpus: 4) && auto.streams(ranksOnNode: 8, cpus: 16) && auto.streams(ranksOnNode: 1, cpus: 2))
        #expect(
            !auto.streams(ranksOnNode: 2, cpus: 2) && !auto.streams(ranksOnNode: 16, cpus: 16) && !auto.streams(ranksOnNode: 1, cpus: 1))
        var forced = TCPOptions()
        forced.stream = true
        #expect(forced.streams(ranksOnNode: 64, cpus: 2))
        // The receive thread: CCL_TCP_RECEIVE_THREAD, auto with three CPUs per rank.
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_RECEIVE_THREAD": "1"]).tcp.receiveThread == true)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_RECEIVE_THREAD": "0"]).tcp.receiveThread == false)
        expectRefused("CCL_TCP_RECEIVE_THREAD", ["3", "-1", "9223372036854775807", "nan", "maybe", String(repeating: "1", count: 10_000)])
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_RECEIVE_THREAD": ""]).tcp.receiveThread == nil)
        #expect(auto.usesReceiveThread(ranksOnNode: 2, cpus: 16) && auto.usesReceiveThread(ranksOnNode: 5, cpus: 16))
        #expect(!auto.usesReceiveThread(ranksOnNode: 8, cpus: 16) && !auto.usesReceiveThread(ranksOnNode: 2, cpus: 4))
    }

    @Test("TCP connections per peer: CCL_TCP_CONNECTIONS from 1 to 16, one by default")
    func connections() throws {
        #expect(try CollectiveOptions.fromEnvironment([:]).tcp.connections == 1)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_CONNECTIONS": "4"]).tcp.connections == 4)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_CONNECTIONS": "16"]).tcp.connections == 16)
        #expect(try CollectiveOptions.fromEnvironment(["CCL_TCP_CONNECTIONS": ""]).tcp.connections == 1)
        expectRefused(
            "CCL_TCP_CONNECTIONS",
            [
                "0", "17", "-1", "9223372036854775807", "99999999999999999999", "nan", "2.5", " 2", String(repeating: "1", count: 10_000),
            ])
    }

    @Test("options from the environment; bad values name the variable and value")
    func environment() throws {
        let options = try CollectiveOptions.fromEnvironment([
            "CCL_ALGO": "twoshot", "CCL_CHECK_CALLS": "0", "CCL_SHM_SLOT_BYTES": "65536", "CCL_TRANSPORT": "tcp", "CCL_TIMEOUT": "2.5",
            "CCL_TOKEN": "s",
        ])
        #expect(options.shm.allReduce == .twoShot && options.tcp.allReduce == nil)
        #expect(!options.checkCalls && options.shm.slotBytes == 65536 && options.transport == .tcp && options.tcp.token == "s")
        #expect(options.timeout == .seconds(2.5))
        #expect(try CollectiveOptions.fromEnvironment(["CCL_ALGO": "ring"]).tcp.allReduce == .ring)
        for (name, value) in [
            ("CCL_ALGO", "fast"), ("CCL_CHECK_CALLS", "maybe"), ("CCL_SHM_SLOT_BYTES", "100"), ("CCL_TRANSPORT", "ib"),
            ("CCL_TIMEOUT", "-1"),
        ] {
            do {
                _ = try CollectiveOptions.fromEnvironment([name: value])
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains("\(name)=\(value)"), "\(error)")
            }
        }
    }

    @Test("fingerprints pack into three words and back; unknown words are rejected")
    func fingerprintWords() {
        let calls = [
            Fingerprint(sequence: 12, kind: .allReduce, dtype: .bfloat16, op: .avg, count: 1 << 40),
            Fingerprint(sequence: 1, kind: .broadcast, dtype: .int8, count: 0, root: 0),
            Fingerprint(sequence: .max, kind: .sendRecv, dtype: .float64, count: 7, root: 4095),
            Fingerprint(sequence: 3, kind: .barrier, dtype: .uint8, count: 0),
        ]
        for call in calls { #expect(Fingerprint(words: call.words) == call) }
        #expect(Fingerprint(words: (1, 0xFF, 0)) == nil)
        #expect(Fingerprint(words: (1, 0x01 | 0x99 << 8, 0)) == nil)
        #expect("\(calls[0])" == "allReduce(avg, bfloat16, count 1099511627776) #12")
    }

    @Test("ranks disagreeing: the message groups ranks by what they called")
    func mismatchMessage() {
        let a = Fingerprint(sequence: 1, kind: .allReduce, dtype: .float32, op: .sum, count: 8)
        var b = a
        b.count = 7
        let error = Fingerprint.mismatch([a, b, a], ranks: [4, 5, 6], rank: 5, group: "tp1")
        #expect(
            error.message
                == "ranks disagree on the call: ranks 4, 6 called allReduce(sum, float32, count 8) #1; rank 5 called allReduce(sum, float32, count 7) #1"
        )
    }

    @Test("pieces split counts evenly, covering every element once")
    func parts() {
        for count in [0, 1, 7, 1023] {
            for parts in 1...5 {
                let ranges = (0..<parts).map { partRange($0, of: count, parts: parts) }
                #expect(ranges.map(\.count).reduce(0, +) == count)
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                #expect((ranges.map(\.count).max() ?? 0) - (ranges.map(\.count).min() ?? 0) <= 1)
            }
        }
    }
}

/// Each of `values` in `name` is refused with an error naming the variable and the value.
private func expectRefused(_ name: String, _ values: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    for bad in values {
        #expect(sourceLocation: sourceLocation) {
            _ = try CollectiveOptions.fromEnvironment([name: bad])
        } throws: { error in
            "\(error)".contains("\(name)=\(bad.prefix(40))")
        }
    }
}
