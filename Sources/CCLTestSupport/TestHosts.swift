import CCL
import Foundation

/// Two test hosts made of network namespaces A (10.77.s.1) and B (10.77.s.2) joined by a veth
/// pair, for tests of what crosses a network. Needs root and iproute2 (`available` says whether
/// this machine allows it). `tearDown` removes both namespaces.
public struct TestHosts: Sendable {
    public let a: String
    public let b: String
    public let addressA: String
    public let addressB: String

    /// Runs a shell command quietly; its exit status.
    @discardableResult
    public static func sh(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Whether `ip netns add` works here.
    public static let available: Bool = {
        let probe = "cclprobe\(getpid())"
        defer { sh("ip netns del \(probe)") }
        return sh("ip netns add \(probe)") == 0
    }()

    /// `tag` keeps hosts of different tests in one process apart (0…9).
    public init(tag: Int = 0) throws {
        let id = (Int(getpid()) % 10_000) * 10 + tag
        a = "cclA\(id)"
        b = "cclB\(id)"
        let subnet = id % 250
        addressA = "10.77.\(subnet).1"
        addressB = "10.77.\(subnet).2"
        let commands = [
            "ip netns add \(a)", "ip netns add \(b)",
            "ip link add va\(id) type veth peer name vb\(id)",
            "ip link set va\(id) netns \(a)", "ip link set vb\(id) netns \(b)",
            "ip -n \(a) addr add \(addressA)/24 dev va\(id)", "ip -n \(b) addr add \(addressB)/24 dev vb\(id)",
            "ip -n \(a) link set va\(id) up", "ip -n \(b) link set vb\(id) up",
            "ip -n \(a) link set lo up", "ip -n \(b) link set lo up",
        ]
        for command in commands where Self.sh(command) != 0 {
            tearDown()
            throw CCLError(.system, operation: "make test hosts", "'\(command)' failed")
        }
    }

    public func tearDown() {
        Self.sh("ip netns del \(a)")
        Self.sh("ip netns del \(b)")
    }
}
