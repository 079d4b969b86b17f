import ArgumentParser
import CCL
import Foundation

/// `ccl doctor`: what this node offers a job, row by row (ok, warn or fail, with the fix); exits
/// with status 1 when any row fails.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this node for a job: shared memory, CPUs, addresses, the store and token, MPI, CUDA and NCCL.")

    @Option(help: "Local ranks to plan for (default: the launcher's local size, else 1).") var nproc: Int?
    @Flag(help: "One JSON object per row.") var json = false

    func validate() throws {
        if let nproc, !(1...4096).contains(nproc) { throw ValidationError("--nproc must be in 1...4096") }
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let launched = (try? LaunchEnvironment.parse(environment))?.localWorldSize
        let rows = Doctor(environment: environment, localRanks: nproc ?? launched ?? 1).rows()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for row in rows { print(String(decoding: try encoder.encode(row), as: UTF8.self)) }
        } else {
            let width = rows.map { $0.check.count }.max() ?? 0
            for row in rows {
                print(
                    row.status.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
                        + row.check.padding(toLength: width + 2, withPad: " ", startingAt: 0) + row.found)
                if let fix = row.fix { print(String(repeating: " ", count: width + 7) + "fix: " + fix) }
            }
        }
        if rows.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }
}
