import Synchronization

/// Named readiness checks behind `GET /readyz` ("database", "turn", …): the node is ready
/// when every registered check passes. Checks run concurrently, each bounded by a timeout,
/// so one hung dependency cannot hang the probe.
public final class Readiness: Sendable {
    /// The outcome of one check.
    public enum Status: Sendable, Equatable {
        case ready
        case notReady(reason: String)
    }

    /// A check: a name and an async probe.
    public typealias Check = @Sendable () async -> Status

    /// All checks' outcomes, ordered by name.
    public struct Report: Sendable, Equatable {
        public var results: [(name: String, status: Status)]

        public var isReady: Bool { results.allSatisfy { $0.status == .ready } }
        public var failing: [String] { results.filter { $0.status != .ready }.map(\.name) }

        public static func == (lhs: Report, rhs: Report) -> Bool {
            lhs.results.map(\.name) == rhs.results.map(\.name) && lhs.results.map(\.status) == rhs.results.map(\.status)
        }
    }

    private let checks = Mutex<[String: Check]>([:])
    /// The longest a single check may take before it counts as not ready.
    public let timeout: Duration

    public init(timeout: Duration = .seconds(2)) {
        self.timeout = timeout
    }

    /// Adds or replaces the check called `name`.
    public func register(_ name: String, check: @escaping Check) {
        checks.withLock { $0[name] = check }
    }

    /// Adds or replaces a check from a Boolean probe; `reason` explains a false.
    public func register(_ name: String, reason: String, probe: @escaping @Sendable () async -> Bool) {
        register(name) { await probe() ? .ready : .notReady(reason: reason) }
    }

    /// Removes the check called `name`.
    public func unregister(_ name: String) {
        _ = checks.withLock { $0.removeValue(forKey: name) }
    }

    /// The registered check names, sorted.
    public var names: [String] { checks.withLock { $0.keys.sorted() } }

    /// Runs every check concurrently and reports them all.
    public func evaluate() async -> Report {
        let snapshot = checks.withLock { $0 }
        let timeout = self.timeout
        let results = await withTaskGroup(of: (String, Status).self) { group in
            for (name, check) in snapshot {
                group.addTask { (name, await Self.run(check, timeout: timeout)) }
            }
            var results: [(name: String, status: Status)] = []
            for await (name, status) in group { results.append((name, status)) }
            return results
        }
        return Report(results: results.sorted { $0.name < $1.name })
    }

    /// The check's status, or "timed out" after `timeout`. A check that ignores
    /// cancellation keeps running in the background but no longer holds up the answer.
    private static func run(_ check: @escaping Check, timeout: Duration) async -> Status {
        let outcome = FirstOutcome()
        var tasks: [Task<Void, Never>] = []
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Status, Never>) in
            outcome.set(continuation)
            tasks.append(Task { outcome.finish(await check()) })
            tasks.append(
                Task {
                    try? await Task.sleep(for: timeout)
                    outcome.finish(.notReady(reason: "timed out after \(timeout)"))
                })
        }
        for task in tasks { task.cancel() }
        return status
    }
}

/// Resumes a continuation with the first status offered; later ones are ignored.
private final class FirstOutcome: Sendable {
    private let continuation = Mutex<CheckedContinuation<Readiness.Status, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<Readiness.Status, Never>) {
        self.continuation.withLock { $0 = continuation }
    }

    func finish(_ status: Readiness.Status) {
        let pending = continuation.withLock { stored in
            defer { stored = nil }
            return stored
        }
        pending?.resume(returning: status)
    }
}
