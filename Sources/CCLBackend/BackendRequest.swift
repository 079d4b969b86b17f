import CCLCore

/// What the user asked for: backends in order of preference (`CCL_BACKEND=nccl,tcp`) and whether
/// an unavailable one is an error instead of a fallback (`CCL_BACKEND_STRICT=1`).
///
/// Names are checked against the registry when a backend is chosen, not here (this type does not
/// know the registry).
public struct BackendRequest: Sendable, Equatable {
    /// Preferred backends, first first; empty for the default choice (`auto`).
    public var preferred: [String]
    /// When true, only the preferred backends may be used: if none of those serving the buffers'
    /// device is available, choosing fails with their reasons.
    public var strict: Bool
    /// Where the request came from, for messages ("CCL_BACKEND=nccl", "--backend tcp").
    public var origin: String

    /// A request: backends in order of preference, strictness, and where it came from.
    public init(preferred: [String] = [], strict: Bool = false, origin: String = "the request") {
        self.preferred = preferred
        self.strict = strict
        self.origin = origin
    }

    /// The default: choose by device and node layout, fall back freely.
    public static let automatic = BackendRequest()

    /// Parses a comma-separated list; `auto` or empty is the default. Names are lower-cased and
    /// trimmed; an empty element (`"nccl,,tcp"`) is an error.
    public static func parse(_ text: String, strict: Bool = false, origin: String) throws(CCLError) -> BackendRequest {
        let trimmed = text.trimmingWhitespace.lowercased()
        if trimmed.isEmpty || trimmed == "auto" { return BackendRequest(strict: strict, origin: origin) }
        var names: [String] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let name = String(part).trimmingWhitespace
            guard !name.isEmpty, name != "auto" else {
                throw CCLError(
                    .invalidArgument, operation: "read the backend request",
                    "\(origin)=\(text) is invalid: expected backend names separated by commas, or auto")
            }
            if !names.contains(name) { names.append(name) }
        }
        return BackendRequest(preferred: names, strict: strict, origin: origin)
    }

    /// `CCL_BACKEND` and `CCL_BACKEND_STRICT` (`1`/`0`, `true`/`false`, `on`/`off`, `yes`/`no`).
    public static func fromEnvironment(_ environment: [String: String]) throws(CCLError) -> BackendRequest {
        var strict = false
        if let value = environment["CCL_BACKEND_STRICT"], !value.isEmpty {
            switch value.trimmingWhitespace.lowercased() {
            case "1", "true", "on", "yes": strict = true
            case "0", "false", "off", "no": strict = false
            default:
                throw CCLError(
                    .invalidArgument, operation: "read the backend request", "CCL_BACKEND_STRICT=\(value) is invalid: expected 0 or 1")
            }
        }
        return try parse(environment["CCL_BACKEND"] ?? "", strict: strict, origin: "CCL_BACKEND")
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
