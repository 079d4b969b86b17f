import CCLCore
import CCLSystem
import Foundation
import Testing

@Suite struct SystemCallTests {
    @Test("sysCall names the call and keeps errno")
    func namesCallAndErrno() {
        let error = #expect(throws: SystemError.self) {
            _ = try sysCall("shm_unlink (test)") { shm_unlinkForTest("/ccl-test-does-not-exist-\(UInt64.random(in: 0...UInt64.max))") }
        }
        #expect(error?.call == "shm_unlink (test)")
        #expect(error?.errno == ENOENT)
        #expect(error?.description.contains("No such file") == true)
    }

    @Test("CCLError reads as one sentence with operation, rank, peer and cause")
    func errorDescription() {
        let error = CCLError(
            .timeout, operation: "barrier on group tp0", rank: 3, peer: "rank 5", "waited 30 s",
            cause: SystemError(call: "futex", errno: ETIMEDOUT))
        #expect(error.description.hasPrefix("barrier on group tp0 (rank 3, peer rank 5): waited 30 s [cause: futex failed"))
        #expect(CCLError.system(SystemError(call: "open", errno: ENOSPC), operation: "x").code == .resourceExhausted)
    }
}

@Suite struct SharedMemorySegmentTests {
    static func uniqueName() -> String { "/ccl-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))" }

    @Test("create is exclusive, attach checks size, the creator unlinks")
    func lifecycle() throws {
        let name = Self.uniqueName()
        var segment = try SharedMemorySegment.create(name: name, size: 8192)
        segment.base.storeBytes(of: 0xABCD, as: UInt64.self)
        let again = #expect(throws: CCLError.self) { _ = try SharedMemorySegment.create(name: name, size: 4096) }
        #expect(again?.description.contains("EEXIST") == true || again?.description.contains("File exists") == true)
        do {
            let view = try SharedMemorySegment.attach(name: name, minimumSize: 8192)
            #expect(view.base.load(as: UInt64.self) == 0xABCD)
        }
        let small = #expect(throws: CCLError.self) { _ = try SharedMemorySegment.attach(name: name, minimumSize: 8193) }
        #expect(small?.code == .malformed)
        segment.unlink()
        let gone = #expect(throws: CCLError.self) { _ = try SharedMemorySegment.attach(name: name, minimumSize: 1) }
        #expect(gone?.description.contains("no such segment") == true)
    }

    @Test("more than /dev/shm holds fails at creation with the sizes and the fix")
    func tooLarge() throws {
        let free = try #require(SharedMemorySegment.freeBytes())
        let error = #expect(throws: CCLError.self) { _ = try SharedMemorySegment.create(name: Self.uniqueName(), size: free + (1 << 30)) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.description.contains("shm-size") == true)
    }
}

@Suite struct FutexTests {
    @Test("wait times out when nobody wakes, returns at once when the word differs")
    func waitTimesOut() throws {
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 5
        let start = monotonicNanoseconds()
        #expect(Futex.wait(word, expected: 5, timeoutNanoseconds: 20_000_000) == .timedOut)
        #expect(monotonicNanoseconds() - start >= 19_000_000)
        #expect(Futex.wait(word, expected: 4, timeoutNanoseconds: 1_000_000_000) == .woken)
    }

    @Test("a wake through a second mapping of the same shared page reaches the waiter")
    func sharedMappingWake() throws {
        let name = "/ccl-test-futex-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var segment = try SharedMemorySegment.create(name: name, size: 4096)
        defer { segment.unlink() }
        let word = segment.base.assumingMemoryBound(to: UInt32.self)
        word.pointee = 0
        // Another virtual address of the same physical page, as another process would have it;
        // cross-process wake-ups are exercised by the queue's multi-process tests.
        let other = try SharedMemorySegment.attach(name: name, minimumSize: 4096)
        let address = UInt(bitPattern: other.base)
        let waker = Thread {
            Thread.sleep(forTimeInterval: 0.05)
            guard let otherWord = UnsafeMutablePointer<UInt32>(bitPattern: address) else { return }
            otherWord.pointee = 1
            Futex.wake(otherWord)
        }
        waker.start()
        let start = monotonicNanoseconds()
        while word.pointee == 0 {
            _ = Futex.wait(word, expected: 0, timeoutNanoseconds: 2_000_000_000)
        }
        #expect(monotonicNanoseconds() - start < 1_900_000_000)
        withExtendedLifetime(other) {}
    }
}

@Suite struct ProcessIdentityTests {
    @Test("this process is alive; an exited one is not")
    func liveness() throws {
        #expect(ProcessIdentity.current().isAlive)
        #expect(ProcessIdentity.current().startTime > 0)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        #expect(!ProcessIdentity(pid: child.processIdentifier, startTime: 0).isAlive)
        // Same pid, different start time: a recycled pid is not the original process.
        #expect(!ProcessIdentity(pid: getpid(), startTime: ProcessIdentity.current().startTime + 1).isAlive)
    }
}

private func shm_unlinkForTest(_ name: String) -> Int32 { shm_unlink(name) }
