/// Where an extension registers: the primary or the secondary registrar/proxy.
public enum PlatformSide: String, Hashable, Sendable {
    case primary, secondary

    public var other: PlatformSide { self == .primary ? .secondary : .primary }
}

/// The order and pacing of registration attempts across a primary and a secondary platform,
/// staggered the way contact-center clients do so that hundreds of extensions on one node
/// do not all reconnect at the same moment:
///
/// 1. Losing the side in use moves at once to the other. Starting up tries the last good
///    side, then the other, at once.
/// 2. When that fails too, the extension waits a random 0…N/10 s (N: the extensions on this
///    node), then tries both sides, the last good one first.
/// 3. Each later round of both sides waits 15, 30, 60 and then 120 s, again and again.
///
/// A `Retry-After` from a side (503, RFC 3261 §21.5.4) stretches the wait to at least that
/// long when the next attempt is on that same side. Success ends the cycle and makes that side
/// the last good one. A value type: the caller keeps the timer.
public struct FailoverBackoff: Hashable, Sendable {
    /// One attempt: where, and how long after the failure before it.
    public struct Attempt: Hashable, Sendable {
        public var side: PlatformSide
        public var delayMilliseconds: Int64
    }

    /// Waits between rounds after the randomized one (ms); the last repeats.
    public static let roundWaits: [Int64] = [15_000, 30_000, 60_000, 120_000]

    public let extensionsOnNode: Int
    public private(set) var lastGood: PlatformSide
    /// Attempts of the current cycle that failed.
    public private(set) var failures = 0
    /// The attempts planned but not yet made, in order.
    private var queue: [Attempt] = []
    /// Rounds of both sides made after the immediate attempts.
    private var rounds = 0

    public init(extensionsOnNode: Int, lastGood: PlatformSide = .primary) {
        self.extensionsOnNode = max(1, extensionsOnNode)
        self.lastGood = lastGood
    }

    /// Starting up: the last good side at once.
    public mutating func start() -> Attempt {
        failures = 0
        rounds = 0
        queue = [Attempt(side: lastGood.other, delayMilliseconds: 0)]
        return Attempt(side: lastGood, delayMilliseconds: 0)
    }

    /// The registration on `side`, which was working, was lost: the other side at once.
    public mutating func lost(_ side: PlatformSide) -> Attempt {
        failures = 0
        rounds = 0
        queue = []
        lastGood = side
        return Attempt(side: side.other, delayMilliseconds: 0)
    }

    /// The attempt on `side` failed; the next one. `retryAfterSeconds` is that side's
    /// Retry-After, if it sent one.
    public mutating func failed(on side: PlatformSide, retryAfterSeconds: Int? = nil, using generator: inout some RandomNumberGenerator) -> Attempt {
        failures += 1
        if queue.isEmpty {
            let wait: Int64
            if rounds == 0 {
                let spread = Int64(extensionsOnNode) * 100  // N/10 s in ms
                wait = Int64.random(in: 0...spread, using: &generator)
            } else {
                wait = Self.roundWaits[min(rounds - 1, Self.roundWaits.count - 1)]
            }
            rounds += 1
            queue = [Attempt(side: lastGood, delayMilliseconds: wait), Attempt(side: lastGood.other, delayMilliseconds: 0)]
        }
        var next = queue.removeFirst()
        if let retryAfterSeconds, next.side == side {
            next.delayMilliseconds = max(next.delayMilliseconds, Int64(retryAfterSeconds) * 1000)
        }
        return next
    }

    /// The attempt on `side` succeeded: the cycle ends, and `side` is the one to try first next time.
    public mutating func succeeded(on side: PlatformSide) {
        lastGood = side
        failures = 0
        rounds = 0
        queue = []
    }
}
