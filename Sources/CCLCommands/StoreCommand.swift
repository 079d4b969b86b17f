import ArgumentParser
import CCL
import Foundation

/// `ccl store`: run a standalone TCP store, or look inside a live one when a job hangs.
/// The token comes from `CCL_TOKEN`, for server and client alike.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Run or inspect a rendezvous TCP store (token from CCL_TOKEN).",
        subcommands: [Serve.self, Get.self, Set.self, Add.self, Keys.self])

    static func token() throws -> String {
        guard let token = ProcessInfo.processInfo.environment["CCL_TOKEN"], !token.isEmpty else {
            throw ValidationError("CCL_TOKEN is not set: the store's server and clients share it")
        }
        return token
    }

    /// `--addr H:P` or `--addr [v6]:P`.
    struct Address: ParsableArguments {
        @Option(help: "The store's address, HOST:PORT ([IPv6]:PORT).") var addr: String
        @Option(help: "Seconds to wait for the server and for keys.") var timeout: Double = 10

        func validate() throws { try checkFinite(timeout, in: 0...31_536_000, option: "--timeout") }

        func connect() throws -> TCPStoreClient { try Self.connect(addr, timeout: timeout) }

        /// A client of the store at `addr` (HOST:PORT or [IPv6]:PORT), with the token of `CCL_TOKEN`.
        static func connect(_ addr: String, timeout: Double) throws -> TCPStoreClient {
            guard let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]), (1...65535).contains(port) else {
                throw ValidationError("--addr must be HOST:PORT, got '\(addr)'")
            }
            var host = String(addr[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return try TCPStoreClient(host: host, port: port, token: try StoreCommand.token(), timeout: .seconds(timeout))
        }
    }

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a store server until interrupted.")
        @Option(help: "Address to bind (default loopback only).") var host: String = "127.0.0.1"
        @Option(help: "Port; 0 picks a free one and prints it.") var port: Int = 0

        func run() throws {
            let server = try TCPStoreServer(host: host, port: port, token: try StoreCommand.token())
            print("ccl store listening on \(server.host):\(server.port)")
            fflushStandardOutput()
            waitForTerminationSignal()
            server.close()
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a key's value (waits for it up to --timeout).")
        @OptionGroup var address: Address
        @Argument var key: String
        func run() throws {
            let value = try address.connect().get(key, timeout: .seconds(address.timeout))
            print(String(validating: value, as: UTF8.self) ?? value.map { String(format: "%02x", $0) }.joined())
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a key to a text value.")
        @OptionGroup var address: Address
        @Argument var key: String
        @Argument var value: String
        func run() throws { try address.connect().set(key, Array(value.utf8)) }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add to a counter key and print the new value.")
        @OptionGroup var address: Address
        @Argument var key: String
        @Argument var delta: Int64 = 1
        func run() throws { print(try address.connect().add(key, delta)) }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List keys (with a prefix): who registered, what is missing.",
            discussion: "Every matching key, one per line on standard output, then the count on standard error.")
        @OptionGroup var address: Address
        @Argument var prefix: String = ""
        func run() throws {
            let keys = try address.connect().keys(prefix: prefix)
            for key in keys { print(key) }
            fflushStandardOutput()
            FileHandle.standardError.write(Data("\(keys.count) key\(keys.count == 1 ? "" : "s")\n".utf8))
        }
    }
}

func fflushStandardOutput() { fflush(nil) }

/// Blocks until SIGINT or SIGTERM.
func waitForTerminationSignal() {
    let done = DispatchSemaphore(value: 0)
    var sources: [any DispatchSourceSignal] = []
    for signalNumber in [SIGINT, SIGTERM] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber)
        source.setEventHandler { done.signal() }
        source.resume()
        sources.append(source)
    }
    done.wait()
    withExtendedLifetime(sources) {}
}
