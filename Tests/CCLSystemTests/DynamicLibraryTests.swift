import CCLCore
import CCLSystem
import CCLTestSupport
import Foundation
import Testing

/// `DynamicLibrary` against a library that is not there and against a real one compiled here
/// (with the toolchain's C compiler) that lacks some symbols.
@Suite struct DynamicLibraryTests {
    @Test("a missing library: every path tried is named with the loader's reason")
    func missing() {
        let error = #expect(throws: CCLError.self) {
            _ = try DynamicLibrary.open(
                "Test library", variables: ["CCL_TEST_SO_PATH"], environment: [:],
                candidates: ["/nonexistent/libccl-test.so", "libccl-does-not-exist.so.1"])
        }
        #expect(error?.code == .unavailable)
        #expect(error?.operation == "load Test library")
        let message = error?.message ?? ""
        #expect(message.hasPrefix("Test library not found (tried: /nonexistent/libccl-test.so: "), "\(message)")
        #expect(message.contains("libccl-does-not-exist.so.1: libccl-does-not-exist.so.1: cannot open shared object file"), "\(message)")
        #expect(message.hasSuffix("; set CCL_TEST_SO_PATH to its path"), "\(message)")
    }

    @Test("a path named by the variable is used alone; its failure names the variable")
    func explicitPath() {
        let error = #expect(throws: CCLError.self) {
            _ = try DynamicLibrary.open(
                "Test library", variables: ["CCL_TEST_SO_PATH"], environment: ["CCL_TEST_SO_PATH": "/nonexistent/libx.so"],
                candidates: ["libc.so.6"])
        }
        #expect(
            error?.message.hasPrefix("Test library not loaded from CCL_TEST_SO_PATH=/nonexistent/libx.so: /nonexistent/libx.so: ") == true)
        #expect(error?.message.hasSuffix("(unset CCL_TEST_SO_PATH to search libc.so.6)") == true)
    }

    @Test("a real library: symbols resolve all or nothing, the error lists every missing one, calls work")
    func realLibrary() throws {
        let compiled = try CompiledLibrary(
            source: "int ccl_test_answer(void) { return 42; }\nint ccl_test_twice(int x) { return 2 * x; }\n", name: "libccltest.so")
        defer { compiled.remove() }
        let path = compiled.path
        let library = try DynamicLibrary.open(
            "Test library", variables: ["CCL_TEST_SO_PATH"], environment: ["CCL_TEST_SO_PATH": path], candidates: [])
        #expect(library.path == path)
        #expect(library.loadedPath == path)
        #expect(library.symbol("ccl_test_answer") != nil)
        #expect(library.symbol("ccl_test_missing_a") == nil)

        let error = #expect(throws: CCLError.self) {
            _ = try library.resolve(["ccl_test_answer", "ccl_test_missing_a", "ccl_test_twice", "ccl_test_missing_b"])
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.hasPrefix("\(path) lacks 2 of 4 symbols: ccl_test_missing_a, ccl_test_missing_b (dlerror: ") == true)
        #expect(error?.message.contains("undefined symbol: ccl_test_missing_a") == true, "\(error?.message ?? "")")

        let symbols = try library.resolve(["ccl_test_answer", "ccl_test_twice"])
        typealias Answer = @convention(c) () -> Int32
        typealias Twice = @convention(c) (Int32) -> Int32
        #expect(unsafeBitCast(symbols[0], to: Answer.self)() == 42)
        #expect(unsafeBitCast(symbols[1], to: Twice.self)(7) == 14)
    }

    @Test("a soname resolves through the system loader, and the path it mapped is reported")
    func soname() throws {
        let library = try DynamicLibrary.open("the C library", environment: [:], candidates: ["libccl-does-not-exist.so.1", "libc.so.6"])
        #expect(library.path == "libc.so.6")
        #expect(library.loadedPath?.hasSuffix("/libc.so.6") == true, "\(library.loadedPath ?? "nil")")
        _ = try library.resolve(["getpid"])
    }
}
