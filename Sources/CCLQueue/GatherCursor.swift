/// Walks a gather list (the parts of one message) and hands out its bytes in consecutive pieces,
/// so a message can be cut into chunks or frames without first joining its parts.
struct GatherCursor {
    private let parts: [UnsafeRawBufferPointer]
    private var partIndex = 0
    private var partOffset = 0

    init(_ parts: [UnsafeRawBufferPointer]) { self.parts = parts }

    /// Calls `body` with the next `count` bytes, as one or more non-empty pieces in order.
    /// Precondition: at least `count` bytes remain.
    mutating func take(_ count: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        var remaining = count
        while remaining > 0 {
            let part = parts[partIndex]
            let piece = min(part.count - partOffset, remaining)
            if piece > 0 { body(UnsafeRawBufferPointer(rebasing: part[partOffset..<(partOffset + piece)])) }
            remaining -= piece
            partOffset += piece
            if partOffset == part.count {
                partIndex += 1
                partOffset = 0
            }
        }
    }
}
