import CCLCore
import CCLShims
import Glibc

/// A shared library opened at run time (`dlopen`), closed (`dlclose`) when its owner goes away:
/// how swift-ccl reaches NCCL, CUDA and MPI without linking them.
///
/// Search (`open`): the path in the environment variable, when it is set: then only that path,
/// since a path the user names is a demand, not a hint (loading another NCCL than the one asked
/// for would be worse than failing); otherwise each candidate in order (absolute paths, such as
/// a pip wheel's, then bare sonames, which the system loader looks up through
/// `LD_LIBRARY_PATH` and `ld.so.cache`). The error names every path tried with `dlerror`'s text.
///
/// Ownership: `~Copyable`; symbols resolved from it are valid while it lives. Keep it alive for as
/// long as anything made with the library (a communicator) exists.
/// Threading: `dlopen`/`dlsym` are thread-safe; the value can move between threads.
public struct DynamicLibrary: ~Copyable, @unchecked Sendable {
    /// What the library is, for messages ("NCCL", "the CUDA driver").
    public let what: String
    /// The path or soname that opened it.
    public let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens `path` (a file path or a soname). `global` makes its symbols visible to libraries
    /// loaded later (`RTLD_GLOBAL`: Open MPI's plugins need it).
    public init(path: String, what: String, global: Bool = false) throws(CCLError) {
        guard let handle = dlopen(path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL)) else {
            throw CCLError(.unavailable, operation: "load \(what)", "\(path): \(Self.lastError())")
        }
        self.handle = handle
        self.path = path
        self.what = what
    }

    /// Opens the first library that loads, in the search order above.
    ///
    /// - Parameters:
    ///   - variables: environment variables that may name the library's path, first first
    ///     (`CCL_NCCL_SO_PATH`, `VLLM_NCCL_SO_PATH`); the first one set is used, alone.
    ///   - candidates: paths and sonames to try when none is set.
    ///   - what: the library's name in messages ("NCCL").
    ///   - environment: where `variables` are looked up.
    ///   - global: `RTLD_GLOBAL` (the library's symbols serve libraries loaded after it).
    /// - Throws: `.unavailable`: "NCCL not found (tried: libnccl.so.2: <dlerror>; …)".
    public static func open(
        _ what: String, variables: [String] = [], environment: [String: String], candidates: [String], global: Bool = false
    ) throws(CCLError) -> DynamicLibrary {
        if let variable = variables.first(where: { !(environment[$0] ?? "").isEmpty }), let path = environment[variable] {
            do {
                return try DynamicLibrary(path: path, what: what, global: global)
            } catch {
                throw CCLError(
                    .unavailable, operation: "load \(what)",
                    "\(what) not loaded from \(variable)=\(path): \(error.message) (unset \(variable) to search \(candidates.joined(separator: ", ")))"
                )
            }
        }
        var tried: [String] = []
        for candidate in candidates {
            do {
                return try DynamicLibrary(path: candidate, what: what, global: global)
            } catch {
                tried.append(error.message)
            }
        }
        let hint = variables.first.map { "; set \($0) to its path" } ?? ""
        throw CCLError(.unavailable, operation: "load \(what)", "\(what) not found (tried: \(tried.joined(separator: "; ")))\(hint)")
    }

    deinit { dlclose(handle) }

    /// The address of `name`, or nil when the library has no such symbol (probing for a variant,
    /// such as Open MPI's `ompi_mpi_comm_self`).
    public func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        _ = dlerror()
        return dlsym(handle, name)
    }

    /// The address the process's global symbol lookup gives `name` (`dlsym(RTLD_DEFAULT, …)`): the
    /// first definition in load order, so a preloaded library's comes before libc's.
    public static func globalSymbol(_ name: String) -> UnsafeMutableRawPointer? { dlsym(nil, name) }

    /// Resolves every name, all or nothing: the addresses in the order of `names`, or an error
    /// listing every missing symbol and the library's path.
    public func resolve(_ names: [String]) throws(CCLError) -> [UnsafeMutableRawPointer] {
        var found: [UnsafeMutableRawPointer] = []
        var missing: [String] = []
        var detail = ""
        for name in names {
            if let address = symbol(name) {
                found.append(address)
            } else {
                missing.append(name)
                if detail.isEmpty { detail = Self.lastError() }
            }
        }
        guard missing.isEmpty else {
            throw CCLError(
                .unavailable, operation: "load \(what)",
                "\(path) lacks \(missing.count) of \(names.count) symbols: \(missing.joined(separator: ", ")) (dlerror: \(detail))")
        }
        return found
    }

    /// The file the system loader actually mapped (a soname resolved to its path), when it says.
    public var loadedPath: String? {
        guard let name = ccl_dl_loaded_path(handle), name.pointee != 0 else { return nil }
        return String(cString: name)
    }

    private static func lastError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}
