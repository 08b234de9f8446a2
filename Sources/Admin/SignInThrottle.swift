import Foundation
import Synchronization

/// Lock-out after repeated failed sign-ins, per account and per source address, with a delay
/// that doubles with each further failure: the first ``freeFailures`` cost nothing, then 1 s,
/// 2 s, 4 s … up to ``maximumDelay``. While a key is locked, attempts are refused before the
/// password is looked at (so guessing cannot go faster by ignoring the answer). A success
/// clears both keys; a key forgets its failures ``forgetAfter`` seconds after the last one.
/// In memory, bounded to ``capacity`` keys (the oldest are dropped first).
public final class SignInThrottle: Sendable {
    public let freeFailures: Int
    public let maximumDelay: TimeInterval
    public let forgetAfter: TimeInterval
    public let capacity: Int

    struct Entry {
        var failures: Int
        var lastFailure: Date
        var lockedUntil: Date
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init(freeFailures: Int = 3, maximumDelay: TimeInterval = 900, forgetAfter: TimeInterval = 3600, capacity: Int = 10_000) {
        self.freeFailures = max(0, freeFailures)
        self.maximumDelay = maximumDelay
        self.forgetAfter = forgetAfter
        self.capacity = max(2, capacity)
    }

    static func keys(account: String, source: String) -> [String] {
        ["account:" + account.lowercased(), "source:" + source]
    }

    /// Seconds until an attempt for `account` from `source` may be made; nil when it may now.
    public func retryAfter(account: String, source: String, now: Date = Date()) -> TimeInterval? {
        let wait = entries.withLock { table in
            Self.keys(account: account, source: source).compactMap { table[$0]?.lockedUntil.timeIntervalSince(now) }.max() ?? 0
        }
        return wait > 0 ? wait : nil
    }

    /// Counts a failed attempt; returns the delay now imposed (0 while failures are free).
    @discardableResult
    public func recordFailure(account: String, source: String, now: Date = Date()) -> TimeInterval {
        entries.withLock { table in
            if table.count >= capacity { Self.evict(&table, now: now, forgetAfter: forgetAfter, keep: capacity / 2) }
            var delay: TimeInterval = 0
            for key in Self.keys(account: account, source: source) {
                var e = table[key] ?? Entry(failures: 0, lastFailure: now, lockedUntil: .distantPast)
                if now.timeIntervalSince(e.lastFailure) > forgetAfter { e.failures = 0 }
                e.failures += 1
                e.lastFailure = now
                let over = e.failures - freeFailures
                if over > 0 {
                    let d = min(maximumDelay, pow(2, Double(min(over - 1, 30))))
                    e.lockedUntil = now.addingTimeInterval(d)
                    delay = max(delay, d)
                }
                table[key] = e
            }
            return delay
        }
    }

    /// A successful sign-in: both keys start again from zero.
    public func recordSuccess(account: String, source: String) {
        entries.withLock { table in
            for key in Self.keys(account: account, source: source) { table[key] = nil }
        }
    }

    /// Failures counted for `key` (`account:NAME` or `source:IP`), for tests and the audit page.
    func failures(_ key: String) -> Int { entries.withLock { $0[key]?.failures ?? 0 } }

    private static func evict(_ table: inout [String: Entry], now: Date, forgetAfter: TimeInterval, keep: Int) {
        table = table.filter { now.timeIntervalSince($0.value.lastFailure) <= forgetAfter }
        guard table.count > keep else { return }
        let newest = table.sorted { $0.value.lastFailure > $1.value.lastFailure }.prefix(keep)
        table = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
    }
}
