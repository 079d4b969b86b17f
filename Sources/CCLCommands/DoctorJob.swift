import CCL
import CCLNCCL
import CCLSystem
import Foundation

/// `ccl doctor` across a job: every rank checks its node and describes itself (`RankReport`),
/// rank 0 gathers the reports through the world group and makes one table: the job's shape, the
/// same swift-ccl version and `CCL_*` settings everywhere (differences named by rank), the rank →
/// GPU mapping with duplicates named, clock offsets between nodes, then each node check over
/// every node.
enum DoctorJob {
    /// Runs this rank's part; returns the table on rank 0, nil elsewhere, and whether any row
    /// failed (the same answer on every rank).
    static func run(setup: RankSetup, localRows: [Doctor.Row]) throws -> (rows: [Doctor.Row]?, failed: Bool) {
        let world = setup.world
        let (offset, uncertainty) = try clockOffset(world)
        let node = setup.nodes.nodeOfRank[world.rank]
        let (gpu, note) = RankReport.gpu(
            localRank: setup.nodes.local(world.rank).rank, node: node, environment: setup.environment)
        let mine = RankReport(
            rank: world.rank, host: NodeIdentity.hostName(), node: node, version: SwiftCCLVersion.current,
            build: RankReport.executableBytes(), settings: RankReport.settings(setup.environment), gpu: gpu, gpuNote: note,
            clockOffset: offset, clockUncertainty: uncertainty, rows: localRows)
        let reports = try world.allGatherObject(mine)
        let rows = world.rank == 0 ? table(reports, source: setup.launch.source) : nil
        let failed = try world.broadcastObject(rows.map { $0.contains { $0.status == .fail } }, from: 0)
        return (rows, failed)
    }

    /// How far this rank's CLOCK_REALTIME is ahead of rank 0's, from one round trip through the
    /// store (rank 0 answers each rank in turn): the offset and half the round trip.
    static func clockOffset(_ world: StatelessProcessGroup) throws(CCLError) -> (Double, Double) {
        if world.rank == 0 {
            // One rank at a time, each told to start only when rank 0 is ready for it, so that no
            // round trip includes waiting for another rank's.
            for peer in 1..<max(1, world.worldSize) {
                try world.sendObject(true, to: peer)
                _ = try world.recvObject(Double.self, from: peer)
                try world.sendObject(Date().timeIntervalSince1970, to: peer)
            }
            return (0, 0)
        }
        _ = try world.recvObject(Bool.self, from: 0)
        let sent = Date().timeIntervalSince1970
        try world.sendObject(sent, to: 0)
        let theirs = try world.recvObject(Double.self, from: 0)
        let received = Date().timeIntervalSince1970
        return ((sent + received) / 2 - theirs, (received - sent) / 2)
    }

    /// The job's table from every rank's report (rank order).
    static func table(_ reports: [RankReport], source: LaunchEnvironment.Source) -> [Doctor.Row] {
        var nodes: [String: [Int]] = [:]
        var order: [String] = []
        for report in reports {
            if nodes[report.node] == nil { order.append(report.node) }
            nodes[report.node, default: []].append(report.rank)
        }
        let hosts = order.map { node in
            "\(reports.first { $0.node == node }?.host ?? node): ranks \(nodes[node, default: []].map(String.init).joined(separator: " "))"
        }
        var rows = [
            Doctor.Row(
                check: "job", status: .ok,
                found: "\(reports.count) ranks on \(order.count) node\(order.count == 1 ? "" : "s") (\(source)): "
                    + hosts.joined(separator: "; "))
        ]
        rows.append(versions(reports))
        rows.append(settings(reports))
        rows.append(gpus(reports))
        rows.append(clocks(reports))
        // Each node check over every node, from the node's first rank.
        let firsts = order.compactMap { node in reports.first { $0.node == node } }
        for check in firsts.first?.rows.map(\.check) ?? [] {
            let perNode = firsts.compactMap { report in report.rows.first { $0.check == check }.map { (report, $0) } }
            let worst = perNode.map(\.1.status).max() ?? .ok
            let shown = perNode.count == 1 ? perNode : perNode.filter { worst == .ok || $0.1.status != .ok }
            let found = shown.prefix(8).map { perNode.count == 1 ? $0.1.found : "\($0.0.host): \($0.1.found)" }.joined(separator: "; ")
            let more = shown.count > 8 ? "; and \(shown.count - 8) more nodes" : ""
            rows.append(Doctor.Row(check: check, status: worst, found: found + more, fix: shown.first { $0.1.fix != nil }?.1.fix))
        }
        return rows
    }

    static func versions(_ reports: [RankReport]) -> Doctor.Row {
        let builds = Dictionary(grouping: reports) { "\($0.version) (\($0.build) bytes)" }
        guard builds.count > 1 else {
            return Doctor.Row(check: "swift-ccl version", status: .ok, found: "\(reports.first?.version ?? "?") on every rank")
        }
        let parts = builds.sorted { $0.value[0].rank < $1.value[0].rank }.map { "\($0.key) on \(ranks($0.value.map(\.rank)))" }
        return Doctor.Row(
            check: "swift-ccl version", status: .fail, found: "ranks run different builds: " + parts.joined(separator: "; "),
            fix: "install one build of ccl on every node")
    }

    static func settings(_ reports: [RankReport]) -> Doctor.Row {
        let keys = Set(reports.flatMap { $0.settings.keys }).sorted()
        var differences: [String] = []
        for key in keys {
            let values = Dictionary(grouping: reports) { $0.settings[key] ?? "unset" }
            guard values.count > 1 else { continue }
            differences.append(
                "\(key): "
                    + values.sorted { $0.value[0].rank < $1.value[0].rank }.map { "\($0.key) on \(ranks($0.value.map(\.rank)))" }
                    .joined(separator: ", "))
        }
        guard differences.isEmpty else {
            return Doctor.Row(
                check: "CCL_* settings", status: .warn, found: differences.joined(separator: "; "),
                fix: "give every rank the same settings (a launcher passes its environment to every rank)")
        }
        return Doctor.Row(
            check: "CCL_* settings", status: .ok,
            found: keys.isEmpty ? "none set on any rank" : "the same on every rank: " + keys.joined(separator: ", "))
    }

    static func gpus(_ reports: [RankReport]) -> Doctor.Row {
        let placed = reports.filter { $0.gpu != nil }
        guard !placed.isEmpty else {
            let note = reports.first?.gpuNote ?? ""
            return Doctor.Row(
                check: "rank → GPU", status: .ok, found: "no rank has a GPU (host buffers only)" + (note.isEmpty ? "" : ": \(note)"))
        }
        let mapping = placed.map { "rank \($0.rank) → \($0.host) cuda:\($0.gpu?.ordinal ?? 0) \($0.gpu?.busId ?? "?")" }
        var found = mapping.prefix(16).joined(separator: ", ") + (mapping.count > 16 ? ", …" : "")
        do {
            try GPUPlacement.checkDistinct(placed.compactMap(\.gpu), ranks: placed.map(\.rank), group: "world", rank: 0)
        } catch {
            return Doctor.Row(check: "rank → GPU", status: .fail, found: error.message, fix: "CUDA_VISIBLE_DEVICES per rank")
        }
        let without = reports.filter { $0.gpu == nil }
        if !without.isEmpty {
            found += "; \(ranks(without.map(\.rank))) without: \(without[0].gpuNote)"
            return Doctor.Row(check: "rank → GPU", status: .warn, found: found, fix: "one GPU per local rank, or fewer ranks per node")
        }
        return Doctor.Row(check: "rank → GPU", status: .ok, found: found)
    }

    static func clocks(_ reports: [RankReport]) -> Doctor.Row {
        let home = reports.first?.node
        let away = reports.filter { $0.node != home }
        guard !away.isEmpty else { return Doctor.Row(check: "clocks", status: .ok, found: "one node: one clock") }
        let byNode = Dictionary(grouping: away, by: \.node).compactMap { $0.value.min { $0.clockUncertainty < $1.clockUncertainty } }
        let worst = byNode.map { abs($0.clockOffset) - $0.clockUncertainty }.max() ?? 0
        let found = byNode.sorted { $0.rank < $1.rank }.prefix(8).map { report in
            "\(report.host) \(milliseconds(report.clockOffset)) (±\(milliseconds(report.clockUncertainty, signed: false)))"
        }
        let text = "against rank 0's: " + found.joined(separator: ", ")
        guard worst < 0.1 else {
            return Doctor.Row(
                check: "clocks", status: .warn, found: text,
                fix: "synchronise the nodes' clocks (chrony or ntpd): logs and timestamps from different nodes will not line up")
        }
        return Doctor.Row(check: "clocks", status: .ok, found: text)
    }

    static func milliseconds(_ seconds: Double, signed: Bool = true) -> String {
        let value = (seconds * 10_000).rounded() / 10
        return (signed && value >= 0 ? "+" : "") + "\(value) ms"
    }

    static func ranks(_ list: [Int]) -> String {
        (list.count == 1 ? "rank " : "ranks ") + list.map(String.init).joined(separator: " ")
    }
}
