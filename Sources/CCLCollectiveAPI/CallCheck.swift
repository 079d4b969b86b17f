import CCLCore

/// What a communicator's argument errors name: its group, this rank's global rank, the group's
/// size. Made once per communicator, which keeps it alive for its own lifetime.
package final class CallSite: Sendable {
    package let group: String
    /// The global rank (errors name global ranks).
    package let rank: Int
    /// This process's rank in the group.
    package let groupRank: Int
    package let worldSize: Int

    package init(group: String, rank: Int, groupRank: Int, worldSize: Int) {
        self.group = group
        self.rank = rank
        self.groupRank = groupRank
        self.worldSize = worldSize
    }

    /// The checks of one call named `name`.
    @inlinable
    package func check(_ name: String) -> CallCheck { CallCheck(name: name, site: self) }

    /// The first check of every call, before anything else: both buffers well formed (no
    /// negative size, a start whenever there are bytes) and, where not empty, on `device`, and
    /// the stream on it too. Free of allocation and text unless it fails.
    @inlinable @inline(__always)
    package func checkBuffers(
        _ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, stream: DeviceStream, device: Device, backend: StaticString
    ) throws(CCLError) {
        guard input.isWellFormed, output.isWellFormed, input.bytes == 0 || input.device == device,
            output.bytes == 0 || output.device == device, stream.device == device
        else { throw badBuffers(call, input: input, output: output, stream: stream, device: device, backend: backend) }
    }

    @usableFromInline
    func badBuffers(
        _ call: CollectiveCall, input: DeviceBuffer, output: DeviceBuffer, stream: DeviceStream, device: Device, backend: StaticString
    ) -> CCLError {
        let check = check("\(call.op)")
        for (side, buffer) in [("input", input), ("output", output)] {
            if !buffer.isWellFormed {
                return CCLError(
                    .invalidArgument, operation: check.operation, group: group, rank: rank, groupRank: groupRank,
                    "the \(side) buffer of \(buffer.bytes) bytes has \(buffer.bytes < 0 ? "a negative size" : "no start address")")
            }
            if buffer.bytes > 0, buffer.device != device {
                return CCLError(
                    .invalidArgument, operation: check.operation, group: group, rank: rank, groupRank: groupRank,
                    "the \(side) buffer is on \(buffer.device), but the \(backend) communicator works on \(device) buffers")
            }
        }
        return CCLError(
            .invalidArgument, operation: check.operation, group: group, rank: rank, groupRank: groupRank,
            "the stream is on \(stream.device), but the \(backend) communicator works on \(device)")
    }
}

/// Checks one call's arguments before any rank is waited on; errors name the call and the rank.
///
/// A temporary on the per-call path: it refers to its `CallSite` without reference counting
/// (the communicator owns the site and outlives every call), and builds text only for errors.
package struct CallCheck {
    package let name: String
    @usableFromInline unowned(unsafe) let site: CallSite

    /// Made only through `CallSite.check`: the site must outlive the check.
    @usableFromInline
    init(name: String, site: CallSite) {
        self.name = name
        self.site = site
    }

    @inlinable package var group: String { site.group }
    /// The global rank (errors name global ranks).
    @inlinable package var rank: Int { site.rank }
    @inlinable package var worldSize: Int { site.worldSize }

    /// Built only when an error needs it (the checks run on every call).
    package var operation: String { "\(name) on group \(group)" }

    @inlinable @inline(__always)
    package func count(_ count: Int, _ dtype: DType) throws(CCLError) -> Int {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard count >= 0, !overflow else {
            throw CCLError(
                .invalidArgument, operation: operation, group: group, rank: rank, groupRank: site.groupRank,
                "count \(count) of \(dtype) is not a valid size")
        }
        return bytes
    }

    @inlinable @inline(__always)
    package func buffer(_ name: String, has available: Int, needs bytes: Int) throws(CCLError) {
        guard available >= bytes else {
            throw CCLError(
                .invalidArgument, operation: operation, group: group, rank: rank, groupRank: site.groupRank,
                "\(name) buffer holds \(available) bytes, the call needs \(bytes)")
        }
    }

    // One check per call shape; each returns the bytes of one rank's block.

    /// Input and output of `count` elements (all-reduce).
    @inlinable @inline(__always)
    package func sameSize(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError) -> Int
    {
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: bytes)
        try buffer("output", has: output.count, needs: bytes)
        return bytes
    }

    /// Input of `count` elements, output of worldSize × count (all-gather).
    @inlinable
    package func gathering(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError) -> Int
    {
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: bytes)
        try buffer("output", has: output.count, needs: times(bytes, worldSize))
        return bytes
    }

    /// Input of worldSize × count elements, output of `count` (reduce-scatter).
    @inlinable
    package func scattering(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType)
        throws(CCLError) -> Int
    {
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: times(bytes, worldSize))
        try buffer("output", has: output.count, needs: bytes)
        return bytes
    }

    /// A root in range and a buffer of `count` elements (broadcast).
    @inlinable
    package func rooted(_ buffer: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, root: Int) throws(CCLError) {
        try peer(root, role: "root")
        try self.buffer("", has: buffer.count, needs: self.count(count, dtype))
    }

    /// A root in range, input of `count` elements and, at the root, output of worldSize × count.
    @inlinable
    package func gatheringTo(
        _ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, count: Int, dtype: DType, root: Int, isRoot: Bool
    ) throws(CCLError) -> Int {
        try peer(root, role: "root")
        let bytes = try self.count(count, dtype)
        try buffer("input", has: input.count, needs: bytes)
        if isRoot { try buffer("output", has: output.count, needs: times(bytes, worldSize)) }
        return bytes
    }

    @inlinable
    package func peer(_ peer: Int, role: String) throws(CCLError) {
        guard (0..<worldSize).contains(peer) else {
            throw CCLError(
                .invalidArgument, operation: operation, group: group, rank: rank, groupRank: site.groupRank,
                "\(role) \(peer) is outside 0..<\(worldSize)")
        }
    }

    @inlinable
    package func times(_ bytes: Int, _ factor: Int) throws(CCLError) -> Int {
        let (total, overflow) = bytes.multipliedReportingOverflow(by: factor)
        guard !overflow else {
            throw CCLError(
                .invalidArgument, operation: operation, group: group, rank: rank, groupRank: site.groupRank,
                "\(bytes) bytes × \(factor) ranks overflows")
        }
        return total
    }
}

extension CCLError {
    /// What a failing rank tells the others: its operation, the peer it blames, the message.
    package var relayText: String { "\(operation): " + (peer.map { "\($0): " } ?? "") + message }
}
