import CCL
import CCLMPI
import CCLSystem
import CCLTestSupport
import Foundation

// A real reader or writer process for the tests. Arguments are `key=value` words:
//
//   read   handle=<json> rank=R count=N seed=S [lengths=a,b,…|max=M] [typed=1] [token=T]
//          [timeout=SECONDS] [stallAfter=K] [rbuf=BYTES]
//   write  local=a,b remote=c,d count=N seed=S [lengths=…|max=M] [chunk=B] [chunks=C]
//          [token=T] [typed=1] [pauseAfter=K]
//   group  [host=H] port=P token=T rank=R world=W [node=ID] writer=R count=N seed=S [lengths=…] [qhost=H]
//   store  [host=H] token=T        (a store server; prints PORT p)
//   rank   [fail=R code=C] [killself=R]   (under `ccl launch`)
//   restart port=P token=T rank=R world=W transport=shm|tcp [die=K] [rejoin=1] [queue=N]  (Restart.swift)
//
// It prints `HANDLE <json>` (writer), `READY`, `DONE <n>`, or `ERROR <code> <description>` and
// exits 1. Everything the tests check is on stdout, one line each.

func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let arguments: [String: String] = {
    var parsed: [String: String] = [:]
    for word in CommandLine.arguments.dropFirst(2) {
        guard let equals = word.firstIndex(of: "=") else { continue }
        parsed[String(word[..<equals])] = String(word[word.index(after: equals)...])
    }
    return parsed
}()
func int(_ key: String, _ fallback: Int) -> Int { arguments[key].flatMap(Int.init) ?? fallback }
func ints(_ key: String) -> [Int] { (arguments[key] ?? "").split(separator: ",").compactMap { Int($0) } }

let messages = TestMessages(seed: UInt64(int("seed", 1)), lengths: ints("lengths"), maxRandomLength: int("max", 0))
let count = int("count", 0)
let typed = arguments["typed"] == "1"
let options: QueueOptions = {
    var options = QueueOptions()
    options.token = arguments["token"] ?? ""
    options.timeout = .seconds(Double(int("timeout", 30)))
    options.chunkBytes = int("chunk", 4096)
    options.chunkCount = int("chunks", 4)
    options.remoteBufferBytes = int("rbuf", options.remoteBufferBytes)
    options.remoteHost = arguments["qhost"] ?? options.remoteHost
    return options
}()

/// Reports the error and exits 1; with `linger=SECONDS`, after staying alive that long (a process
/// that survives its failed call, as a server would, keeps its connections open).
func fail(_ error: any Error) -> Never {
    let code = (error as? CCLError)?.code.name ?? "other"
    say("ERROR \(code) \(error)")
    MPIRuntime.markFailed()
    if let linger = arguments["linger"].flatMap(UInt32.init) { sleep(linger) }
    exit(1)
}

func read() throws {
    guard let json = arguments["handle"] else { throw CCLError(.invalidArgument, operation: "worker", "no handle=") }
    let handle = try JSONDecoder().decode(MessageQueueHandle.self, from: Data(json.utf8))
    let reader = try MessageQueueReader(handle: handle, rank: int("rank", 0), options: options)
    try reader.waitUntilReady()
    say("READY")
    let stallAfter = int("stallAfter", -1)
    for i in 0..<count {
        if i == stallAfter {
            say("STALLED \(i)")
            sleep(600)
        }
        if typed {
            let record = try reader.dequeue(decoding: TestRecord.self)
            guard record == TestRecord.make(i) else {
                throw CCLError(.malformed, operation: "verify", "typed message \(i) differs: \(record)")
            }
        } else {
            let ok = try reader.dequeue { raw in messages.matches(raw, index: i) }
            guard ok else { throw CCLError(.malformed, operation: "verify", "message \(i) differs") }
        }
    }
    say("DONE \(count)")
    // The writer closes after its last message: the next dequeue must say so.
    do {
        _ = try reader.dequeue()
        say("EXTRA")
    } catch {
        say(error.code == .closed ? "CLOSED" : "ERROR \(error.code) \(error)")
    }
}

func write() throws {
    let writer = try MessageQueueWriter(localReaders: ints("local"), remoteReaders: ints("remote"), rank: 0, options: options)
    say("HANDLE " + String(decoding: try JSONEncoder().encode(writer.handle), as: UTF8.self))
    try writer.waitUntilReady()
    say("READY")
    let pauseAfter = int("pauseAfter", -1)
    for i in 0..<count {
        if i == pauseAfter {
            say("PAUSED \(i)")
            sleep(600)
        }
        if typed { try writer.enqueue(encoding: TestRecord.make(i)) } else { try writer.enqueue(messages.message(i)) }
    }
    writer.close()
    say("DONE \(count)")
}

/// A rank of a group: joins through the TCP store, learns the node layout, creates the group's
/// broadcast queue (rank `writer` writes `count` messages, everyone else verifies them).
func group() throws {
    let store = try TCPStoreClient(
        host: arguments["host"] ?? "127.0.0.1", port: int("port", 0), token: options.token, timeout: .seconds(30))
    let group = try StatelessProcessGroup(rank: int("rank", 0), worldSize: int("world", 1), store: store, timeout: .seconds(30))
    let nodes = try NodeLayout(group: group, nodeID: arguments["node"] ?? NodeIdentity.current(environment: [:]))
    say("NODES \(nodes.nodeCount)")
    switch try MessageQueueEnd.create(from: group, writer: int("writer", 0), nodes: nodes, options: options) {
    case .writer(let writer):
        for i in 0..<count { try writer.enqueue(messages.message(i)) }
        writer.close()
    case .reader(let reader):
        for i in 0..<count {
            guard try reader.dequeue({ raw in messages.matches(raw, index: i) }) else {
                throw CCLError(.malformed, operation: "verify", "message \(i) differs")
            }
        }
    }
    try group.barrier()
    say("DONE \(count)")
}

/// A rank started by `ccl launch`: reads the launch environment, joins the store, gathers every
/// rank's identity, and either finishes or fails as told (`fail=R code=C`, `killself=R`).
func launchedRank() throws {
    let launch = try LaunchEnvironment.parse(ProcessInfo.processInfo.environment)
    let (store, server) = try Rendezvous.join(launch, environment: ProcessInfo.processInfo.environment, timeout: .seconds(30))
    defer { withExtendedLifetime(server) {} }
    let group = try StatelessProcessGroup(rank: launch.rank, worldSize: launch.worldSize, store: store, timeout: .seconds(60))
    let ranks = try group.allGatherObject(launch.rank)
    say("RANK \(launch.rank) of \(launch.worldSize) local \(launch.localRank ?? -1)/\(launch.localWorldSize ?? -1) saw \(ranks)")
    if int("fail", -1) == launch.rank {
        say("failing on purpose")
        exit(Int32(int("code", 1)))
    }
    if int("killself", -1) == launch.rank { kill(getpid(), SIGKILL) }
    try group.barrier()
    // The rank that hosts the store keeps it up until every other rank is past the barrier (the
    // Rendezvous contract): exiting first could cut off a barrier reply still on its way.
    if server != nil {
        try store.wait((0..<launch.worldSize).filter { $0 != launch.rank }.map { "bye/\($0)" }, timeout: .seconds(30))
    } else {
        try store.set("bye/\(launch.rank)", [1])
    }
    say("BYE")
}

/// A store server for other workers; prints its port, runs until killed.
func serveStore() throws {
    let server = try TCPStoreServer(host: arguments["host"] ?? "127.0.0.1", port: 0, token: options.token)
    say("PORT \(server.port)")
    while true { sleep(60) }
}

do {
    switch CommandLine.arguments.dropFirst().first {
    case "store": try serveStore()
    case "rank": try launchedRank()
    case "read": try read()
    case "write": try write()
    case "group": try group()
    case "collectives": try collectives()
    case "dispatch": try dispatch()
    case "restart": try restartingRank()
    case "mpi": try mpiJob()
    case "mpiloop": try mpiLoop()
    default: throw CCLError(.invalidArgument, operation: "worker", "first argument must be read or write")
    }
} catch {
    fail(error)
}
