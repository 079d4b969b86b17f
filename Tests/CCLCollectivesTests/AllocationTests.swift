import CCL
import CCLSystem
import CCLTestSupport
import Foundation
import Testing

/// The per-call path allocates nothing: real ranks count their own thread's heap allocations with
/// a malloc interposer compiled here and preloaded into them.
@Suite(.serialized) struct AllocationTests {
    static let interposer = """
        #define _GNU_SOURCE
        #include <stddef.h>
        extern void *__libc_malloc(size_t);
        extern void *__libc_calloc(size_t, size_t);
        extern void *__libc_realloc(void *, size_t);
        extern void *__libc_memalign(size_t, size_t);
        static __thread long count __attribute__((tls_model("initial-exec")));
        void *malloc(size_t n) { count++; return __libc_malloc(n); }
        void *calloc(size_t a, size_t b) { count++; return __libc_calloc(a, b); }
        void *realloc(void *p, size_t n) { count++; return __libc_realloc(p, n); }
        void *memalign(size_t a, size_t n) { count++; return __libc_memalign(a, n); }
        void *aligned_alloc(size_t a, size_t n) { count++; return __libc_memalign(a, n); }
        int posix_memalign(void **out, size_t a, size_t n) {
            count++;
            void *p = __libc_memalign(a, n);
            if (!p) return 12;
            *out = p;
            return 0;
        }
        long ccl_alloc_count(void) { return count; }
        """

    @Test("small allReduce, broadcast, allGather and barrier allocate nothing per call", arguments: ["shm", "tcp"])
    func noAllocations(transport: String) throws {
        let library = try CompiledLibrary(source: Self.interposer, name: "libcclalloc.so")
        defer { library.remove() }
        let workers = try runCollectiveWorkers(
            world: 2, ["transport": transport, "counter": library.path], environment: ["LD_PRELOAD": library.path])
        for worker in workers {
            try worker.expect("DONE")
            let counts = worker.lines.filter { $0.hasPrefix("ALLOCATIONS ") }
            #expect(counts.count == 4, "\(worker.lines)")
            for line in counts { #expect(line.hasSuffix(" 0"), "\(line) (allocations in 1000 calls)") }
            #expect(worker.exitStatus() == 0)
        }
    }

    @Test("the counter counts: a call that allocates is seen")
    func counterWorks() throws {
        let library = try CompiledLibrary(source: Self.interposer, name: "libcclalloc.so")
        defer { library.remove() }
        let loaded = try DynamicLibrary(path: library.path, what: "the allocation counter")
        let count = unsafeBitCast(try loaded.resolve(["ccl_alloc_count"])[0], to: (@convention(c) () -> Int).self)
        let malloc = unsafeBitCast(try loaded.resolve(["malloc"])[0], to: (@convention(c) (Int) -> UnsafeMutableRawPointer?).self)
        let before = count()
        let pointer = malloc(100)
        #expect(count() == before + 1)
        free(pointer)
    }
}
