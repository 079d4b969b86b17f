import ArgumentParser
import CCL
import Foundation

/// `ccl doctor`: what this node offers a job, row by row (ok, warn or fail, with the fix); exits
/// with status 1 when any row fails. Run as every rank of a job (under `ccl launch`, mpirun,
/// Slurm or torchrun) it checks the whole job and rank 0 prints one table (`DoctorJob`).
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract:
            "Check this node, or every node of a job when run as its ranks: shared memory, CPUs, addresses, the store and token, MPI, CUDA and NCCL, versions, settings, GPUs and clocks."
    )

    @Option(help: "Local ranks to plan for (default: the launcher's local size, else 1).") var nproc: Int?
    @Flag(help: "Check this node only, even when run as a rank of a job.") var local = false
    @Option(help: "Seconds a rank of a job waits for the others.") var timeout: Double = 60
    @Flag(help: "One JSON object per row.") var json = false

    func validate() throws {
        if let nproc, !(1...4096).contains(nproc) { throw ValidationError("--nproc must be in 1...4096") }
        try checkFinite(timeout, in: 1...3600, option: "--timeout")
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        var launch: LaunchEnvironment?
        var rows: [Doctor.Row] = []
        do { launch = try LaunchEnvironment.parse(environment) } catch {
            rows.append(
                Doctor.Row(
                    check: "launch environment", status: .fail, found: error.message,
                    fix: "correct the launcher's variables (or unset them to check this node alone)"))
        }
        let doctor = Doctor(environment: environment, localRanks: nproc ?? launch?.localWorldSize ?? 1)
        if !local, let launch, launch.worldSize > 1 {
            // The job's ranks check the store by meeting there (under torchrun's variables rank 0
            // serves it only once it runs); it gets a row of its own only when that fails.
            rows = doctor.rows(store: false) + rows
            var outcome: (rows: [Doctor.Row]?, failed: Bool)?
            do {
                let setup = try RankSetup(timeout: .seconds(timeout))
                outcome = try DoctorJob.run(setup: setup, localRows: rows)
            } catch {
                // This rank cannot reach the others: its own rows, the store's (unless it served
                // the store itself, as rank 0 does but under `ccl launch`), and why.
                if launch.rank != 0 || environment["CCL_STORE_IN_LAUNCHER"] == "1" { rows.append(doctor.store()) }
                rows.append(
                    Doctor.Row(
                        check: "job", status: .fail,
                        found: "rank \(launch.rank) of \(launch.worldSize): \((error as? CCLError)?.message ?? "\(error)")",
                        fix: "every rank must run ccl doctor, reach the store (MASTER_ADDR/MASTER_PORT) and share CCL_TOKEN"))
            }
            if let outcome {
                if let table = outcome.rows { try show(table) }
                if outcome.failed { throw ExitCode(1) }
                return
            }
        } else {
            rows = doctor.rows() + rows
        }
        try show(rows)
        if rows.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }

    private func show(_ rows: [Doctor.Row]) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for row in rows { Swift.print(String(decoding: try encoder.encode(row), as: UTF8.self)) }
        } else {
            let width = rows.map { $0.check.count }.max() ?? 0
            for row in rows {
                Swift.print(
                    row.status.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
                        + row.check.padding(toLength: width + 2, withPad: " ", startingAt: 0) + row.found)
                if let fix = row.fix { Swift.print(String(repeating: " ", count: width + 7) + "fix: " + fix) }
            }
        }
    }
}
