import CDatapath
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Something the loop tells when its descriptor is readable.
public protocol ReadableHandler: AnyObject {
    /// The descriptor has data (epoll is level-triggered: what is left raises the event again).
    func readable()
}

/// An event loop on one thread for raw UDP descriptors: `epoll` readiness, timers, tasks
/// sent from other threads, and hooks run at the end of every iteration (where batched
/// writes are flushed, so the datagrams of one wake-up leave in one `sendmmsg`), with
/// optional receive moderation under load (``batchWindowMicroseconds``).
///
/// Everything registered with a loop — descriptors, timers, hooks, and the state their
/// closures touch — belongs to the loop's thread. Other threads reach it only through
/// ``execute(_:)`` and ``submit(_:)``.
public final class DatapathLoop: @unchecked Sendable {
    public let name: String
    private let epollFD: Int32
    private let wakeFD: Int32
    /// Handlers by descriptor number (descriptors are small integers).
    private var handlers: [(any ReadableHandler)?] = []
    private var timers: [Timer] = []
    /// The earliest timer deadline (`.max` without timers), so an iteration looks at the
    /// timers only when one is due.
    private var nextDeadline = UInt64.max
    private var nextTimerID = 0
    private var hooks: [() -> Void] = []
    private let state = Mutex<LoopState>(LoopState())
    private let threadID = Atomic<UInt>(0)

    private struct Timer {
        let id: Int
        let deadline: UInt64
        let body: () -> Void
    }

    private struct LoopState {
        var running = false
        var finished = false
        var stopRequested = false
        /// Tasks sent by ``execute(_:)``, run in order on the loop's thread.
        var inbox: [@Sendable () -> Void] = []
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Under load, the shortest time between two wake-ups of the loop (0: no moderation).
    public let batchWindowMicroseconds: Int

    /// - Parameters:
    ///   - batchWindowMicroseconds: receive moderation, as a NIC's interrupt coalescing: once
    ///     a window of this many microseconds gathers, on average, one arrival or more
    ///     (``ReceiveModeration``), the loop, when it finds nothing ready after its work, rests
    ///     until a window has passed since it last woke (the work done in between counts in the
    ///     window) instead of waking for each arrival, so a single wake-up serves more datagrams
    ///     with one `recvmmsg` and one `sendmmsg`. With work ready it goes on at once: there a
    ///     rest would only add a sleep, which costs more than a small batch. It adds at most
    ///     this much delay, and only under load.
    public init(name: String, batchWindowMicroseconds: Int = 0) throws(SocketError) {
        self.name = name
        self.batchWindowMicroseconds = max(0, min(batchWindowMicroseconds, 10_000))
        let ep = tandem_epoll_create()
        guard ep >= 0 else { throw SocketError("epoll_create1") }
        let wake = tandem_eventfd()
        guard wake >= 0 else {
            let e = SocketError("eventfd")
            close(ep)
            throw e
        }
        guard tandem_epoll_add_readable(ep, wake) == 0 else {
            let e = SocketError("epoll_ctl")
            close(ep)
            close(wake)
            throw e
        }
        epollFD = ep
        wakeFD = wake
    }

    /// Starts the loop's thread.
    public func start() {
        let first = state.withLock { s -> Bool in
            if s.running || s.finished { return false }
            s.running = true
            return true
        }
        guard first else { return }
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Whether the caller runs on this loop's thread.
    public var inLoop: Bool { threadID.load(ordering: .relaxed) == UInt(bitPattern: Int(bitPattern: pthread_self())) }

    // MARK: from any thread

    /// Runs `task` on the loop's thread, after the current iteration's events. Returns false
    /// (and drops the task) once the loop has stopped.
    @discardableResult
    public func execute(_ task: @escaping @Sendable () -> Void) -> Bool {
        let queued = state.withLock { s -> Bool? in
            if s.finished { return nil }
            s.inbox.append(task)
            return s.inbox.count == 1
        }
        guard let wasEmpty = queued else { return false }
        if wasEmpty && !inLoop { _ = tandem_eventfd_signal(wakeFD) }
        return true
    }

    /// Runs `body` on the loop's thread and returns its result; throws ``LoopStopped`` when
    /// the loop has stopped before running it.
    public func submit<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            let queued = execute {
                do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
            }
            if !queued { c.resume(throwing: LoopStopped()) }
        }
    }

    /// Stops the loop after its current iteration and waits for the thread to finish.
    /// Registered handlers and timers are dropped; their sockets close with them.
    public func stop() async {
        let started = state.withLock { s -> Bool in
            s.stopRequested = true
            return s.running
        }
        if !started {
            finish()
            return
        }
        _ = tandem_eventfd_signal(wakeFD)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.finished { return true }
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    // MARK: on the loop's thread

    /// Watches `fd` for readability; `handler` is kept until ``deregister(_:)``.
    public func register(_ fd: Int32, _ handler: any ReadableHandler) throws(SocketError) {
        guard tandem_epoll_add_readable(epollFD, fd) == 0 else { throw SocketError("epoll_ctl add") }
        let i = Int(fd)
        if i >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: i + 1 - handlers.count)) }
        handlers[i] = handler
    }

    /// Stops watching `fd` (call before closing it).
    public func deregister(_ fd: Int32) {
        _ = tandem_epoll_remove(epollFD, fd)
        let i = Int(fd)
        if i < handlers.count { handlers[i] = nil }
    }

    /// Runs `body` once, `milliseconds` from now.
    public func schedule(inMilliseconds milliseconds: Int, _ body: @escaping () -> Void) {
        schedule(atNanoseconds: Self.nowNanoseconds() + UInt64(max(0, milliseconds)) * 1_000_000, body)
    }

    /// Runs `body` once at `deadline` on the monotonic clock (``monotonicNanoseconds()``);
    /// the wait is in nanoseconds (`epoll_pwait2`), so timers keep sub-millisecond deadlines
    /// (within the thread's timer slack).
    public func schedule(atNanoseconds deadline: UInt64, _ body: @escaping () -> Void) {
        nextTimerID += 1
        timers.append(Timer(id: nextTimerID, deadline: deadline, body: body))
        nextDeadline = min(nextDeadline, deadline)
    }

    /// Runs `hook` at the end of every iteration, after all events, timers and tasks.
    public func addIterationEndHook(_ hook: @escaping () -> Void) {
        hooks.append(hook)
    }

    // MARK: the loop

    private func run() {
        threadID.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .relaxed)
        // The kernel's name of the thread (`top -H`, /proc/<pid>/task/*/comm), which
        // Foundation's `Thread.name` does not set.
        _ = tandem_set_thread_name(name)
        let ready = UnsafeMutablePointer<Int32>.allocate(capacity: 256)
        defer { ready.deallocate() }
        if batchWindowMicroseconds > 0 { tandem_set_timer_slack_ns(10_000) }
        var moderation = ReceiveModeration(windowMicroseconds: batchWindowMicroseconds)
        let window = moderation.windowNanoseconds
        /// Whether the rule moderates and the last iteration had work (what it found ready).
        var moderating = false
        /// When the last wait (a pause or a blocking wait) ended.
        var lastWake: UInt64 = 0
        while true {
            // One look at the shared state per iteration: stop, or tasks already waiting
            // (queued from this thread, e.g. by a hook, which signals no eventfd).
            let (stop, pendingTasks) = state.withLock { ($0.stopRequested, !$0.inbox.isEmpty) }
            if stop { break }
            var n: Int32 = -1
            if moderating {
                // Receive moderation: with work ready, go on at once (a pause would only cost a
                // sleep); with none, rest until one window after the last wake-up (a whole
                // window when the work took longer), so what arrives meanwhile gathers into one
                // batch instead of waking the loop datagram by datagram.
                n = tandem_epoll_wait(epollFD, ready, 256, 0)
                if n == 0 && !pendingTasks {
                    let now = Self.nowNanoseconds()
                    tandem_sleep_until_ns(lastWake &+ window > now ? lastWake &+ window : now &+ window)
                    n = -1
                }
            }
            let waited = n < 0
            if waited { n = wait(timeout: pendingTasks ? 0 : timeoutNanoseconds(), into: ready) }
            let woke = window > 0 ? Self.nowNanoseconds() : 0
            if waited { lastWake = woke }
            if n > 0 {
                for i in 0..<Int(n) {
                    let fd = ready[i]
                    if fd == wakeFD {
                        tandem_eventfd_drain(wakeFD)
                    } else if Int(fd) < handlers.count, let h = handlers[Int(fd)] {
                        h.readable()
                    }
                }
            }
            runTimers()
            runTasks()
            for hook in hooks { hook() }
            moderating = window > 0 && moderation.wake(ready: Int(n), at: woke)
        }
        finish()
    }

    /// Waits for readiness up to `timeout` nanoseconds (-1: no deadline): to the millisecond
    /// (`epoll_wait`, rounded up) unless the deadline is closer than 2 ms, which waits to the
    /// nanosecond (`epoll_pwait2`).
    private func wait(timeout: Int64, into ready: UnsafeMutablePointer<Int32>) -> Int32 {
        timeout < 0 || timeout >= 2_000_000
            ? tandem_epoll_wait(epollFD, ready, 256, timeout < 0 ? -1 : Int32((timeout + 999_999) / 1_000_000))
            : tandem_epoll_wait_ns(epollFD, ready, 256, timeout)
    }

    /// Runs the tasks queued so far (those they queue run in the next iteration).
    private func runTasks() {
        let tasks = state.withLock { s -> [@Sendable () -> Void] in
            let t = s.inbox
            s.inbox.removeAll(keepingCapacity: true)
            return t
        }
        for t in tasks { t() }
    }

    private func runTimers() {
        guard nextDeadline != .max else { return }
        let now = Self.nowNanoseconds()
        guard now >= nextDeadline else { return }
        var due: [Timer] = []
        timers.removeAll { t in
            if t.deadline <= now { due.append(t); return true }
            return false
        }
        for t in due.sorted(by: { $0.deadline < $1.deadline }) { t.body() }
        nextDeadline = timers.reduce(UInt64.max) { min($0, $1.deadline) }
    }

    private func timeoutNanoseconds() -> Int64 {
        guard nextDeadline != .max else { return -1 }
        let now = Self.nowNanoseconds()
        if nextDeadline <= now { return 0 }
        return Int64(min(60_000_000_000, nextDeadline - now))
    }

    private func finish() {
        handlers.removeAll()
        timers.removeAll()
        nextDeadline = .max
        hooks.removeAll()
        let ending = state.withLock { s -> (waiters: [CheckedContinuation<Void, Never>], tasks: [@Sendable () -> Void])? in
            if s.finished { return nil }
            s.finished = true
            s.running = false
            defer { s.waiters = []; s.inbox = [] }
            return (s.waiters, s.inbox)
        }
        guard let ending else { return }
        // Tasks still queued run now, on this thread, so awaiting callers are answered.
        for t in ending.tasks { t() }
        close(epollFD)
        close(wakeFD)
        for w in ending.waiters { w.resume() }
    }

    /// The monotonic clock in milliseconds (the time base of timers and media statistics).
    public static func monotonicMilliseconds() -> Int64 { Int64(nowNanoseconds() / 1_000_000) }

    /// The monotonic clock in nanoseconds.
    public static func monotonicNanoseconds() -> UInt64 { nowNanoseconds() }

    static func nowNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// The loop had stopped: the work was not run.
public struct LoopStopped: Error, Sendable {}

/// A value that belongs to one ``DatapathLoop``: it may travel between threads, but only
/// the loop's thread may use it.
public struct LoopBound<Value>: @unchecked Sendable {
    public let loop: DatapathLoop
    private let _value: Value

    public init(_ value: Value, loop: DatapathLoop) {
        self.loop = loop
        self._value = value
    }

    /// The value; traps off the loop's thread.
    public var value: Value {
        precondition(loop.inLoop, "LoopBound used off its loop")
        return _value
    }
}
