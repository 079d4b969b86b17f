import CCL
import CCLSystem
import Foundation

// `collectives` mode: one rank that checks every collective against a straightforward reference.
//
//   collectives port=P token=T rank=R world=W [node=ID] [transport=auto|shm|tcp] [backend=a,b strict=1] [counts=0,1,7]
//               [dtypes=float32,…] [mismatch=R what=count|op|dtype|root|kind]
//               [killself=R] [stall=R] [storebarrier=R barriertimeout=SECONDS] [repeat=ROUNDS] [timeout=SECONDS] [chost=ADDRESS] [host=STORE-ADDRESS] [slot=BYTES]
//               [cost=SYNC_NS,COPY_GBPS,REDUCE_GBPS] [sendthread=0|1] [stream=0|1] [receivethread=0|1] [algo=ring|rd|rhd] [connections=N]
//
// Prints `TRANSPORT <description>`, with shared memory `COSTS <model> BITS <inputs' bit patterns>`,
// then `DONE <checks>`, or `ERROR <code> <description>`.

/// Element types the checks run on, with exact conversions from small integers.
protocol CheckedScalar: CollectiveScalar, Equatable {
    static func from(_ value: Int) -> Self
    /// `sum / ranks` as the kernel computes it: float division in the accumulation type, or
    /// integer division truncating toward zero.
    static func average(sum: Int, ranks: Int) -> Self
    /// Wrapping conversion for integer types, exact for the small values floats get.
    static var isInteger: Bool { get }
    /// 8-bit floats get inputs in −2…2, so every partial sum over up to 4 ranks is exact (e5m2
    /// holds the integers up to 8).
    static var isFloat8: Bool { get }
}

extension CheckedScalar {
    static var isFloat8: Bool { false }
}

extension Float: CheckedScalar {
    static func from(_ value: Int) -> Float { Float(value) }
    static func average(sum: Int, ranks: Int) -> Float { Float(sum) / Float(ranks) }
    static var isInteger: Bool { false }
}
extension Double: CheckedScalar {
    static func from(_ value: Int) -> Double { Double(value) }
    static func average(sum: Int, ranks: Int) -> Double { Double(sum) / Double(ranks) }
    static var isInteger: Bool { false }
}
extension Float16: CheckedScalar {
    static func from(_ value: Int) -> Float16 { Float16(Float(value)) }
    static func average(sum: Int, ranks: Int) -> Float16 { Float16(Float(sum) / Float(ranks)) }
    static var isInteger: Bool { false }
}
extension BFloat16: CheckedScalar {
    static func from(_ value: Int) -> BFloat16 { BFloat16(Float(value)) }
    static func average(sum: Int, ranks: Int) -> BFloat16 { BFloat16(Float(sum) / Float(ranks)) }
    static var isInteger: Bool { false }
}
extension Float8E4M3: CheckedScalar {
    static func from(_ value: Int) -> Float8E4M3 { Float8E4M3(Float(value)) }
    static func average(sum: Int, ranks: Int) -> Float8E4M3 { Float8E4M3(Float(sum) / Float(ranks)) }
    static var isInteger: Bool { false }
    static var isFloat8: Bool { true }
}
extension Float8E5M2: CheckedScalar {
    static func from(_ value: Int) -> Float8E5M2 { Float8E5M2(Float(value)) }
    static func average(sum: Int, ranks: Int) -> Float8E5M2 { Float8E5M2(Float(sum) / Float(ranks)) }
    static var isInteger: Bool { false }
    static var isFloat8: Bool { true }
}
extension Int8: CheckedScalar {
    static func from(_ value: Int) -> Int8 { Int8(truncatingIfNeeded: value) }
    static func average(sum: Int, ranks: Int) -> Int8 { Int8(truncatingIfNeeded: sum) / Int8(truncatingIfNeeded: ranks) }
    static var isInteger: Bool { true }
}
extension UInt8: CheckedScalar {
    static func from(_ value: Int) -> UInt8 { UInt8(truncatingIfNeeded: value) }
    static func average(sum: Int, ranks: Int) -> UInt8 { UInt8(truncatingIfNeeded: sum) / UInt8(truncatingIfNeeded: ranks) }
    static var isInteger: Bool { true }
}
extension Int32: CheckedScalar {
    static func from(_ value: Int) -> Int32 { Int32(truncatingIfNeeded: value) }
    static func average(sum: Int, ranks: Int) -> Int32 { Int32(truncatingIfNeeded: sum) / Int32(truncatingIfNeeded: ranks) }
    static var isInteger: Bool { true }
}
extension Int64: CheckedScalar {
    static func from(_ value: Int) -> Int64 { Int64(value) }
    static func average(sum: Int, ranks: Int) -> Int64 { Int64(sum) / Int64(ranks) }
    static var isInteger: Bool { true }
}

/// The checks of one communicator: inputs are small integers (−4…4, 0…8 for uint8, −2…2 for
/// float8; 1…2 for products) so every reduction is exact and the reference is plain integer
/// arithmetic.
struct CollectiveChecks {
    let communicator: any Communicator
    var checks = 0

    var rank: Int { communicator.rank }
    var ranks: Int { communicator.worldSize }

    static func value<T: CheckedScalar>(_: T.Type, rank: Int, index: Int, op: ReduceOp?) -> Int {
        let mixed = (rank &* 7 &+ index &* 3) % 9
        if op == .prod { return mixed % 2 + 1 }
        if T.isFloat8 { return mixed % 5 - 2 }
        return T.self == UInt8.self ? mixed : mixed - 4
    }

    func expected<T: CheckedScalar>(_: T.Type, index: Int, op: ReduceOp, ranks group: Range<Int>) -> T {
        var sum = 0, product = 1, smallest = Int.max, largest = Int.min
        for rank in group {
            let value = Self.value(T.self, rank: rank, index: index, op: op)
            sum += value
            product *= value
            smallest = min(smallest, value)
            largest = max(largest, value)
        }
        switch op {
        case .sum: return T.from(sum)
        case .prod: return T.from(product)
        case .min: return T.from(smallest)
        case .max: return T.from(largest)
        case .avg: return T.average(sum: sum, ranks: group.count)
        }
    }

    func fail(_ what: String, index: Int, got: some Any, expected: some Any) -> CCLError {
        CCLError(.malformed, operation: "check \(what)", rank: rank, "element \(index): got \(got), expected \(expected)")
    }

    mutating func run<T: CheckedScalar>(_: T.Type, count: Int) throws {
        let n = ranks
        let input = (0..<count).map { T.from(Self.value(T.self, rank: rank, index: $0, op: nil)) }
        // all-reduce, every op, out of place; in place for sum.
        for op in ReduceOp.allCases {
            let mine = (0..<count).map { T.from(Self.value(T.self, rank: rank, index: $0, op: op)) }
            var output = [T](repeating: T.from(99), count: count)
            try mine.withUnsafeBytes { source in
                try output.withUnsafeMutableBytes { try communicator.allReduce(source, into: $0, count: count, dtype: T.dtype, op: op) }
            }
            for index in 0..<count where output[index] != expected(T.self, index: index, op: op, ranks: 0..<n) {
                throw fail(
                    "allReduce \(op) \(T.dtype) count \(count)", index: index, got: output[index],
                    expected: expected(T.self, index: index, op: op, ranks: 0..<n))
            }
            checks += 1
        }
        var inPlace = input
        try inPlace.withUnsafeMutableBytes {
            try communicator.allReduce(UnsafeRawBufferPointer($0), into: $0, count: count, dtype: T.dtype, op: .sum)
        }
        for index in 0..<count where inPlace[index] != expected(T.self, index: index, op: .sum, ranks: 0..<n) {
            throw fail(
                "in-place allReduce \(T.dtype) count \(count)", index: index, got: inPlace[index],
                expected: expected(T.self, index: index, op: .sum, ranks: 0..<n))
        }
        // all-gather, out of place and in place.
        var gathered = [T](repeating: T.from(99), count: n * count)
        try input.withUnsafeBytes { source in
            try gathered.withUnsafeMutableBytes { try communicator.allGather(source, into: $0, count: count, dtype: T.dtype) }
        }
        try checkGathered(gathered, count: count, what: "allGather")
        var gatheredInPlace = [T](repeating: T.from(99), count: n * count)
        for index in 0..<count { gatheredInPlace[rank * count + index] = input[index] }
        try gatheredInPlace.withUnsafeMutableBytes { all in
            let mine = UnsafeRawBufferPointer(
                rebasing: all[(rank * count * MemoryLayout<T>.stride)..<((rank + 1) * count * MemoryLayout<T>.stride)])
            try communicator.allGather(mine, into: all, count: count, dtype: T.dtype)
        }
        try checkGathered(gatheredInPlace, count: count, what: "in-place allGather")
        // reduce-scatter, every op: block b of rank r's input is element b·count + i.
        for op in ReduceOp.allCases {
            let blocks = (0..<(n * count)).map { T.from(Self.value(T.self, rank: rank, index: $0, op: op)) }
            var output = [T](repeating: T.from(99), count: count)
            try blocks.withUnsafeBytes { source in
                try output.withUnsafeMutableBytes { try communicator.reduceScatter(source, into: $0, count: count, dtype: T.dtype, op: op) }
            }
            for index in 0..<count {
                let want = expected(T.self, index: rank * count + index, op: op, ranks: 0..<n)
                if output[index] != want {
                    throw fail("reduceScatter \(op) \(T.dtype) count \(count)", index: index, got: output[index], expected: want)
                }
            }
            checks += 1
        }
        // broadcast and gather from a root that moves with the count.
        let root = count % n
        var broadcast = rank == root ? input : [T](repeating: T.from(99), count: count)
        try broadcast.withUnsafeMutableBytes { try communicator.broadcast($0, count: count, dtype: T.dtype, from: root) }
        for index in 0..<count {
            let want = T.from(Self.value(T.self, rank: root, index: index, op: nil))
            if broadcast[index] != want {
                throw fail("broadcast \(T.dtype) count \(count) root \(root)", index: index, got: broadcast[index], expected: want)
            }
        }
        var collected = [T](repeating: T.from(99), count: rank == root ? n * count : 0)
        try input.withUnsafeBytes { source in
            try collected.withUnsafeMutableBytes { try communicator.gather(source, into: $0, count: count, dtype: T.dtype, to: root) }
        }
        if rank == root { try checkGathered(collected, count: count, what: "gather") }
        // ring shift with sendRecv, then send/recv between rank 0 and the last rank.
        var shifted = [T](repeating: T.from(99), count: count)
        try input.withUnsafeBytes { source in
            try shifted.withUnsafeMutableBytes {
                try communicator.sendRecv(source, to: (rank + 1) % n, into: $0, from: (rank + n - 1) % n, count: count, dtype: T.dtype)
            }
        }
        for index in 0..<count {
            let want = T.from(Self.value(T.self, rank: (rank + n - 1) % n, index: index, op: nil))
            if shifted[index] != want {
                throw fail("sendRecv \(T.dtype) count \(count)", index: index, got: shifted[index], expected: want)
            }
        }
        if n > 1, rank == 0 {
            try input.withUnsafeBytes { try communicator.send($0, count: count, dtype: T.dtype, to: n - 1) }
        } else if n > 1, rank == n - 1 {
            var received = [T](repeating: T.from(99), count: count)
            try received.withUnsafeMutableBytes { try communicator.recv(into: $0, count: count, dtype: T.dtype, from: 0) }
            for index in 0..<count {
                let want = T.from(Self.value(T.self, rank: 0, index: index, op: nil))
                if received[index] != want {
                    throw fail("recv \(T.dtype) count \(count)", index: index, got: received[index], expected: want)
                }
            }
        }
        try communicator.barrier()
        checks += 6
    }

    func checkGathered<T: CheckedScalar>(_ values: [T], count: Int, what: String) throws {
        for index in 0..<values.count {
            let want = T.from(Self.value(T.self, rank: index / max(1, count), index: index % max(1, count), op: nil))
            if values[index] != want { throw fail("\(what) \(T.dtype) count \(count)", index: index, got: values[index], expected: want) }
        }
    }

    mutating func run(_ dtype: DType, count: Int) throws {
        switch dtype {
        case .float32: try run(Float.self, count: count)
        case .float64: try run(Double.self, count: count)
        case .float16: try run(Float16.self, count: count)
        case .bfloat16: try run(BFloat16.self, count: count)
        case .int8: try run(Int8.self, count: count)
        case .uint8: try run(UInt8.self, count: count)
        case .int32: try run(Int32.self, count: count)
        case .int64: try run(Int64.self, count: count)
        case .float8e4m3: try run(Float8E4M3.self, count: count)
        case .float8e5m2: try run(Float8E5M2.self, count: count)
        }
    }
}

/// The worker's `collectives` mode.
func collectives() throws {
    let store = try TCPStoreClient(
        host: arguments["host"] ?? "127.0.0.1", port: int("port", 0), token: arguments["token"] ?? "", timeout: .seconds(30))
    let world = try StatelessProcessGroup(rank: int("rank", 0), worldSize: int("world", 1), store: store, timeout: .seconds(60))
    let nodes = try NodeLayout(group: world, nodeID: arguments["node"] ?? NodeIdentity.current(environment: [:]))
    var options = CollectiveOptions()
    options.transport = CollectiveOptions.Transport(rawValue: arguments["transport"] ?? "auto") ?? .auto
    options.timeout = .seconds(Double(int("timeout", 60)))
    options.tcp.token = arguments["token"] ?? ""
    options.tcp.host = arguments["chost"] ?? options.tcp.host
    if let slot = arguments["slot"].flatMap(Int.init) { options.shm.slotBytes = slot }
    if let thread = arguments["sendthread"] { options.tcp.sendThread = thread == "1" }
    if let stream = arguments["stream"] { options.tcp.stream = stream == "1" }
    if let thread = arguments["receivethread"] { options.tcp.receiveThread = thread == "1" }
    if let algorithm = arguments["algo"] { options.tcp.allReduce = PeerAllReduce(rawValue: algorithm) }
    if let connections = arguments["connections"].flatMap(Int.init) { options.tcp.connections = connections }
    if let cost = arguments["cost"] { options.shm.cost = try CollectiveOptions.fromEnvironment(["CCL_SHM_COST": cost]).shm.cost }
    options.request = try BackendRequest.parse(arguments["backend"] ?? "", strict: arguments["strict"] == "1", origin: "CCL_BACKEND")
    say("CHOOSING")
    let started = ContinuousClock.now
    let communicator: any Communicator
    do { communicator = try CPUCommunicatorFactory.create(group: world, nodes: nodes, options: options) } catch {
        let elapsed = ContinuousClock.now - started
        say("NO COMMUNICATOR after \(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000) ms")
        throw error
    }
    say("TRANSPORT \(communicator.transportDescription) BACKEND \(communicator.backend)")
    if let model = communicator.sharedMemoryCosts {
        let inputs = [model.syncNanoseconds, model.copyBytesPerNanosecond, model.reduceBytesPerNanosecond, model.ranksPerCPU]
        say("COSTS \(model) BITS \(inputs.map { String($0.bitPattern, radix: 16) }.joined(separator: " "))")
    }
    if let counter = arguments["counter"] {
        try countAllocations(communicator, counter: counter)
        return
    }
    if int("storebarrier", -1) == communicator.rank {
        // The process group's barrier while the others are in a collective: its timeout names them.
        say("STOREBARRIER")
        try world.barrier(timeout: .seconds(Double(int("barriertimeout", int("timeout", 60)))))
    }
    let counts = arguments["counts"].map { _ in ints("counts") } ?? [0, 1, 7, 1023]
    let dtypes = (arguments["dtypes"] ?? "").split(separator: ",").compactMap { DType(name: String($0)) }
    var checks = CollectiveChecks(communicator: communicator)
    if let bad = arguments["mismatch"].flatMap(Int.init) {
        try mismatch(communicator, bad: bad, what: arguments["what"] ?? "count")
        return
    }
    if int("stall", -1) == communicator.rank {
        say("STALLING")
        sleep(UInt32(int("timeout", 60) * 3))
    }
    let victim = int("killself", -1)
    let rounds = int("repeat", 1)
    if rounds > 1 { say("LOOPING") }
    for _ in 0..<rounds {
        for dtype in dtypes.isEmpty ? DType.allCases : dtypes {
            for count in counts {
                if victim == communicator.rank, count == counts.last {
                    say("KILLING")
                    kill(getpid(), SIGKILL)
                }
                try checks.run(dtype, count: count)
            }
        }
    }
    say("DONE \(checks.checks)")
}

/// Rank `bad` calls something different from the others; every rank must fail naming it. With
/// `recover=1` (shared memory) the ranks then check that the communicator still works.
func mismatch(_ communicator: any Communicator, bad: Int, what: String) throws {
    var values = [Float](repeating: 1, count: 8)
    let isBad = communicator.rank == bad
    do {
        try values.withUnsafeMutableBytes { bytes in
            let input = UnsafeRawBufferPointer(bytes)
            switch what {
            case "op": try communicator.allReduce(input, into: bytes, count: 8, dtype: .float32, op: isBad ? .max : .sum)
            case "dtype": try communicator.allReduce(input, into: bytes, count: isBad ? 4 : 8, dtype: isBad ? .float64 : .float32, op: .sum)
            case "root": try communicator.broadcast(bytes, count: 8, dtype: .float32, from: isBad ? 1 : 0)
            case "barrier":
                if isBad {
                    try communicator.barrier()
                } else {
                    try communicator.allReduce(input, into: bytes, count: 8, dtype: .float32, op: .sum)
                }
            case "kind":
                if isBad {
                    try communicator.broadcast(bytes, count: 8, dtype: .float32, from: 0)
                } else {
                    try communicator.allReduce(input, into: bytes, count: 8, dtype: .float32, op: .sum)
                }
            default: try communicator.allReduce(input, into: bytes, count: isBad ? 7 : 8, dtype: .float32, op: .sum)
            }
        }
        // Over TCP a rank that only sent in the mismatched call (a broadcast root) learns of it here.
        try communicator.barrier()
    } catch {
        guard arguments["recover"] == "1" else { throw error }
        say("MISMATCH \(error)")
        var checks = CollectiveChecks(communicator: communicator)
        try checks.run(.float32, count: 1023)
        say("DONE \(checks.checks)")
        return
    }
    say("DONE 1")
}

/// Heap allocations on this thread during 1000 small calls of each kind, after a warm-up, counted
/// by the malloc interposer preloaded from `counter` (it exports `ccl_alloc_count`, this thread's
/// count of malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign calls).
func countAllocations(_ communicator: any Communicator, counter path: String) throws {
    let library = try DynamicLibrary(path: path, what: "the allocation counter")
    guard let symbol = library.symbol("ccl_alloc_count") else {
        throw CCLError(.unavailable, operation: "count allocations", "\(path) has no ccl_alloc_count")
    }
    let count = unsafeBitCast(symbol, to: (@convention(c) () -> Int).self)
    // The counter must see this process's allocations (LD_PRELOAD took effect: the process's
    // malloc is the counter's), or a 0 below would prove nothing.
    guard let counted = library.symbol("malloc"), DynamicLibrary.globalSymbol("malloc") == counted else {
        throw CCLError(.unavailable, operation: "count allocations", "\(path) does not see malloc: LD_PRELOAD did not take effect")
    }
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * communicator.worldSize, alignment: 64)
    let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * communicator.worldSize, alignment: 64)
    defer {
        input.deallocate()
        output.deallocate()
    }
    input.initializeMemory(as: UInt8.self, repeating: 1)
    let source = UnsafeRawBufferPointer(input)
    let calls: [(String, () throws(CCLError) -> Void)] = [
        ("allReduce", { () throws(CCLError) in try communicator.allReduce(source, into: output, count: 2, dtype: .float32, op: .sum) }),
        ("broadcast", { () throws(CCLError) in try communicator.broadcast(output, count: 2, dtype: .float32, from: 0) }),
        ("allGather", { () throws(CCLError) in try communicator.allGather(source, into: output, count: 2, dtype: .float32) }),
        ("barrier", { () throws(CCLError) in try communicator.barrier() }),
    ]
    for (name, call) in calls {
        for _ in 0..<200 { try call() }
        let before = count()
        for _ in 0..<1000 { try call() }
        let after = count()
        say("ALLOCATIONS \(name) \(after - before)")
    }
    say("DONE")
}
