import ArgumentParser
import CCL
import CCLSystem
import Foundation

/// `ccl bench queue`: latency, throughput and idle cost of the shared-memory broadcast queue,
/// with readers as separate processes.
///
/// For each reader count and size: one-way latency (ping-pong with reader 0 over a second queue,
/// halved), burst throughput (until the last reader verified the last message), idle reader CPU
/// and the one-way latency of a message that wakes readers after ≥ 1 s idle, beside the floor: a
/// futex wake-up after the same idle time in the same rounds (`WakeProbe`).
struct QueueBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Benchmark the shared-memory broadcast queue.")

    @Option(help: "Reader counts, comma separated.") var readers: String = "1,3"
    @Option(help: "Message sizes in bytes (suffix K or M), comma separated; each at least 32.")
    var sizes: String = "64,1K,64K,1M,16M"
    @Option(help: "Ring chunk size in bytes (suffix K or M).") var chunk: String = "1M"
    @Option(help: "Ring chunk count.") var chunks: Int = 8
    @Option(help: "Seconds readers stay idle before the wake-up message (each of 5 rounds).") var idleSeconds: Double = 1.0
    @Option(help: "Scale the iteration counts (0.1 for a quick run).") var scale: Double = 1.0
    @Option(help: "Nanoseconds a waiter spins before yielding (QueueOptions.wait).") var spinNs: UInt64 = WaitPolicy().spinNanoseconds
    @Option(help: "Nanoseconds a waiter spins and yields before sleeping.") var yieldNs: UInt64 = WaitPolicy().yieldNanoseconds
    @Flag(help: "One JSON object per line.") var json = false

    func validate() throws {
        try checkFinite(idleSeconds, in: 0...600, option: "--idle-seconds")
        try checkFinite(scale, in: 0.001...1000, option: "--scale")
        guard (1...1 << 20).contains(chunks) else { throw ValidationError("--chunks must be in 1...1048576") }
        for text in sizes.split(separator: ",") + [Substring(chunk)] { _ = try parseSize(String(text)) }
    }

    func run() throws {
        let readerCounts = try readers.split(separator: ",").map { text -> Int in
            guard let n = Int(text), (1...64).contains(n) else { throw ValidationError("bad reader count '\(text)'") }
            return n
        }
        let sizeList = try sizes.split(separator: ",").map { try parseSize(String($0)) }
        if let bad = sizeList.first(where: { $0 < BenchMessage.headerBytes }) {
            throw ValidationError("size \(bad) is below the 32-byte message header")
        }
        var options = QueueOptions()
        options.chunkBytes = try parseSize(chunk)
        options.chunkCount = chunks
        options.timeout = .seconds(60)
        options.wait.spinNanoseconds = spinNs
        options.wait.yieldNanoseconds = yieldNs
        if !json {
            print(
                "# ccl bench queue: chunk \(options.chunkBytes) B × \(options.chunkCount), \(ProcessInfo.processInfo.activeProcessorCount) CPUs"
            )
            print("readers        size   p50 (µs)   p99 (µs)      msgs/s      GB/s  idle CPU %  wake p50 (µs)  floor p50 (µs)  wrong")
        }
        for count in readerCounts {
            let rows = try QueueBenchRun(readerCount: count, sizes: sizeList, options: options, idleSeconds: idleSeconds, scale: scale)
                .run()
            for row in rows { print(json ? row.json : row.table) }
        }
    }
}

/// One line of results.
struct QueueBenchRow {
    var readers: Int
    var size: Int
    var p50: UInt64
    var p99: UInt64
    var messagesPerSecond: Double
    var gigabytesPerSecond: Double
    var idleCPUPercent: Double
    var wakeP50: UInt64
    /// A futex wake-up after the same idle time in the same rounds (`WakeProbe`): the floor.
    var wakeFloorP50: UInt64 = 0
    var wrong: Int

    var json: String {
        "{\"readers\": \(readers), \"size\": \(size), \"p50_ns\": \(p50), \"p99_ns\": \(p99), "
            + "\"msgs_per_s\": \(String(format: "%.1f", messagesPerSecond)), \"gb_per_s\": \(String(format: "%.3f", gigabytesPerSecond)), "
            + "\"idle_cpu_pct\": \(String(format: "%.3f", idleCPUPercent)), \"wake_p50_ns\": \(wakeP50), "
            + "\"wake_floor_p50_ns\": \(wakeFloorP50), \"wrong\": \(wrong)}"
    }

    var table: String {
        String(
            format: "%7d %11d %10.2f %10.2f %11.0f %9.3f %11.3f %14.2f %15.2f %6d", readers, size, Double(p50) / 1e3,
            Double(p99) / 1e3, messagesPerSecond, gigabytesPerSecond, idleCPUPercent, Double(wakeP50) / 1e3,
            Double(wakeFloorP50) / 1e3, wrong)
    }
}

/// The largest size a benchmark option takes (per rank or per message): 4 GiB, the queue's
/// message limit, and far below where any product with a rank count could overflow.
let maxBenchSize = 4 << 30

/// A byte count with an optional K, M or G suffix, in 0...maxBenchSize.
func parseSize(_ text: String) throws -> Int {
    let upper = text.uppercased()
    var multiplier = 1
    var digits = Substring(upper)
    if upper.hasSuffix("K") { multiplier = 1 << 10; digits = digits.dropLast() }
    if upper.hasSuffix("M") { multiplier = 1 << 20; digits = digits.dropLast() }
    if upper.hasSuffix("G") { multiplier = 1 << 30; digits = digits.dropLast() }
    guard let value = Int(digits), value >= 0 else { throw ValidationError("bad size '\(text)'") }
    let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
    guard !overflow, bytes <= maxBenchSize else { throw ValidationError("size '\(text)' is above the limit of \(maxBenchSize) bytes") }
    return bytes
}

/// A finite number of seconds or milliseconds in `range` (NaN, infinities and out-of-range
/// values are refused with the option's name).
func checkFinite(_ value: Double, in range: ClosedRange<Double>, option: String) throws {
    guard value.isFinite, range.contains(value) else {
        throw ValidationError("\(option) must be a number in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
}

func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// The writer's side of one reader count.
struct QueueBenchRun {
    let readerCount: Int
    let sizes: [Int]
    let options: QueueOptions
    let idleSeconds: Double
    let scale: Double

    /// The bench's own rank in both queues: the one after the readers' (errors name it as the
    /// writer, so it reads as a rank of the run).
    var benchRank: Int { readerCount }
    /// Idle-then-wake samples per reader count (each after `idleSeconds` of silence).
    static let wakeRounds = 5

    func iterations(_ size: Int) -> (warmup: Int, latency: Int, burst: Int) {
        let base: (Int, Int, Int) =
            switch size {
            case ..<4096: (500, 5000, 20000)
            case ..<(256 << 10): (200, 3000, 5000)
            case ..<(4 << 20): (50, 500, 1000)
            default: (5, 50, 60)
            }
        return (base.0, max(5, Int(Double(base.1) * scale)), max(5, Int(Double(base.2) * scale)))
    }

    func run() throws -> [QueueBenchRow] {
        let writer = try MessageQueueWriter(localReaders: Array(0..<readerCount), rank: benchRank, options: options)
        let handle = String(decoding: try JSONEncoder().encode(writer.handle), as: UTF8.self)
        let executable = currentExecutable()
        var children: [ChildProcess] = []
        defer { for child in children { child.kill() } }
        for r in 0..<readerCount {
            var args = ["bench", "queue-reader", "--rank", "\(r)", "--bench-rank", "\(benchRank)", "--handle", handle]
            args += ["--spin-ns", "\(options.wait.spinNanoseconds)", "--yield-ns", "\(options.wait.yieldNanoseconds)"]
            args += ["--sizes", sizes.map(String.init).joined(separator: ",")]
            children.append(try ChildProcess(executable: executable, arguments: args))
        }
        let replyHandleJSON = try children[0].expect("HANDLE").dropFirst().joined(separator: " ")
        let replyHandle = try JSONDecoder().decode(MessageQueueHandle.self, from: Data(replyHandleJSON.utf8))
        let replies = try MessageQueueReader(handle: replyHandle, rank: benchRank, options: options)
        try writer.waitUntilReady()
        try replies.waitUntilReady()

        var rows: [QueueBenchRow] = []
        var phase: UInt32 = 0
        var sequence: UInt64 = 0
        // Control messages are built here, not allocated per send: the wake-up sample starts its
        // clock just before `sendControl` and should time the queue, not the harness.
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchMessage.headerBytes, alignment: 8)
        defer { control.deallocate() }
        for size in sizes {
            // Prebuilt messages: sending one only stamps its header.
            var messages = BenchMessage.pool(size: size)
            let plan = iterations(size)
            var wrong = 0

            func send(_ kind: BenchMessage.Kind, index: Int) throws {
                let header = BenchMessage.Header(
                    kind: kind, phase: phase, sequence: sequence, sendTimeNs: monotonicNanoseconds(),
                    poolIndex: UInt64(index % BenchMessage.poolSize))
                let slot = index % BenchMessage.poolSize
                messages[slot].withUnsafeMutableBytes { BenchMessage.write(header, into: $0) }
                try messages[slot].withUnsafeBytes { raw in
                    try writer.enqueue(kind == .data ? raw : UnsafeRawBufferPointer(rebasing: raw[0..<BenchMessage.headerBytes]))
                }
                sequence &+= 1
            }
            func endPhase() throws -> [(time: UInt64, cpu: UInt64, wrong: Int)] {
                try send(.phaseEnd, index: 0)
                let results = try children.map { child -> (UInt64, UInt64, Int) in
                    let words = try child.expect("END")
                    guard words.count == 5, let t = UInt64(words[2]), let cpu = UInt64(words[3]), let bad = Int(words[4]) else {
                        throw BenchFailure("bad END line from reader \(child.pid)")
                    }
                    return (t, cpu, bad)
                }
                phase += 1
                return results
            }

            // Latency: ping-pong with reader 0.
            var samples: [UInt64] = []
            samples.reserveCapacity(plan.latency)
            for i in 0..<(plan.warmup + plan.latency) {
                let start = monotonicNanoseconds()
                try send(.data, index: i)
                _ = try replies.dequeue { _ in }
                if i >= plan.warmup { samples.append((monotonicNanoseconds() - start) / 2) }
            }
            wrong += try endPhase().reduce(0) { $0 + $1.wrong }
            samples.sort()

            // Throughput: a burst, timed until the last reader verified the last message.
            let burstStart = monotonicNanoseconds()
            for i in 0..<plan.burst { try send(.data, index: i) }
            let burst = try endPhase()
            wrong += burst.reduce(0) { $0 + $1.wrong }
            let burstEnd = burst.map(\.time).max() ?? burstStart
            let seconds = Double(burstEnd - burstStart) / 1e9
            rows.append(
                QueueBenchRow(
                    readers: readerCount, size: size, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99),
                    messagesPerSecond: Double(plan.burst) / seconds,
                    gigabytesPerSecond: Double(plan.burst) * Double(size) / seconds / 1e9,
                    idleCPUPercent: 0, wakeP50: 0, wrong: wrong))
        }

        // Idle: readers wait in dequeue; then one message wakes them.
        // Each round, a futex sleeper (the floor) idles as long as the readers and is woken just
        // before them.
        var wakes: [UInt64] = []
        var floors: [UInt64] = []
        var idleCPU: UInt64 = 0
        var idleWall: UInt64 = 0
        for _ in 0..<QueueBenchRun.wakeRounds {
            let before = try endPhaseTimes()
            let floor = WakeProbe.armed()
            Thread.sleep(forTimeInterval: idleSeconds)
            if let sample = floor.wake() { floors.append(sample) }
            let sendTime = monotonicNanoseconds()
            try sendWake(sendTime)
            for (child, start) in zip(children, before) {
                let words = try child.expect("WAKE")
                guard words.count == 4, let latency = UInt64(words[1]), let cpu = UInt64(words[2]), let t = UInt64(words[3]) else {
                    throw BenchFailure("bad WAKE line from reader \(child.pid)")
                }
                wakes.append(latency)
                idleCPU += cpu - start.cpu
                idleWall += t - start.time
            }
        }
        wakes.sort()
        let idlePercent = idleWall == 0 ? 0 : 100 * Double(idleCPU) / Double(idleWall)
        try sendQuit()
        for child in children { _ = child.waitForExit() }
        children.removeAll()
        return rows.map { row in
            var row = row
            row.idleCPUPercent = idlePercent
            row.wakeP50 = percentile(wakes, 0.5)
            row.wakeFloorP50 = percentile(floors.sorted(), 0.5)
            return row
        }

        func sendControl(_ kind: BenchMessage.Kind, time: UInt64) throws {
            BenchMessage.write(.init(kind: kind, phase: 0, sequence: sequence, sendTimeNs: time, poolIndex: 0), into: control)
            try writer.enqueue(UnsafeRawBufferPointer(control))
            sequence &+= 1
        }
        func endPhaseTimes() throws -> [(time: UInt64, cpu: UInt64)] {
            try sendControl(.phaseEnd, time: 0)
            return try children.map { child in
                let words = try child.expect("END")
                guard words.count == 5, let t = UInt64(words[2]), let cpu = UInt64(words[3]) else {
                    throw BenchFailure("bad END line from reader \(child.pid)")
                }
                return (t, cpu)
            }
        }
        func sendWake(_ time: UInt64) throws { try sendControl(.wake, time: time) }
        func sendQuit() throws { try sendControl(.quit, time: 0) }
    }
}

/// `ccl bench queue-reader`: one reader process of `ccl bench queue` (started by it).
struct QueueBenchReaderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue-reader", abstract: "A reader process of `ccl bench queue` (internal).",
        shouldDisplay: false)

    @Option var rank: Int
    /// The bench's rank: the reader of rank 0's reply queue.
    @Option var benchRank: Int
    @Option var handle: String
    @Option var sizes: String
    @Option var spinNs: UInt64
    @Option var yieldNs: UInt64

    func run() throws {
        let handle = try JSONDecoder().decode(MessageQueueHandle.self, from: Data(self.handle.utf8))
        var options = QueueOptions()
        options.timeout = .seconds(120)
        options.wait.spinNanoseconds = spinNs
        options.wait.yieldNanoseconds = yieldNs
        let reader = try MessageQueueReader(handle: handle, rank: rank, options: options)
        var replies: MessageQueueWriter?
        if rank == 0 {
            var replyOptions = options
            replyOptions.chunkBytes = 4096
            replyOptions.chunkCount = 4
            let writer = try MessageQueueWriter(localReaders: [benchRank], rank: rank, options: replyOptions)
            emitLine("HANDLE " + String(decoding: try JSONEncoder().encode(writer.handle), as: UTF8.self))
            try writer.waitUntilReady()
            replies = writer
        }
        try reader.waitUntilReady()
        var pools: [Int: [[UInt8]]] = [:]
        for size in try sizes.split(separator: ",").map({ try parseSize(String($0)) }) {
            pools[size] = BenchMessage.pool(size: size)
        }
        var wrong = 0
        var expected: UInt64 = 0
        let ack = [UInt8](repeating: 0, count: 8)
        while true {
            // Stream each message through in place and compare every byte with the pool.
            var header: BenchMessage.Header?
            var ok = true
            var arrival: UInt64 = 0
            try reader.dequeueFragments { piece, offset, length in
                if offset == 0 {
                    header = BenchMessage.read(piece)
                    if header?.kind == .wake { arrival = monotonicNanoseconds() }
                }
                guard let header, header.kind == .data else { return }
                if offset == 0 { ok = header.sequence == expected }
                ok = ok && BenchMessage.verify(piece, offset: offset, length: length, header: header, pool: pools[length] ?? [])
            }
            guard let header else {
                wrong += 1
                continue
            }
            switch header.kind {
            case .data:
                if !ok { wrong += 1 }
                expected = header.sequence &+ 1
                if let replies, header.phase % 2 == 0 { try replies.enqueue(ack) }
            case .phaseEnd:
                expected = header.sequence &+ 1
                emitLine("END \(header.phase) \(monotonicNanoseconds()) \(processCPUNanoseconds()) \(wrong)")
                wrong = 0
            case .wake:
                emitLine("WAKE \(arrival &- header.sendTimeNs) \(processCPUNanoseconds()) \(arrival)")
            case .quit:
                return
            case .ack:
                wrong += 1
            }
        }
    }
}

/// Writes one line to stdout unbuffered (the parent reads it at once).
func emitLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
