/// When a ``DatapathLoop`` moderates: adaptive receive moderation, as a NIC's adaptive
/// interrupt coalescing does it. Each wake-up reports how many descriptors were ready and
/// when it came; from these the rule keeps a smoothed arrival rate (ready descriptors per
/// nanosecond, both sums decaying by 1/8 per wake-up). It moderates once a window gathers,
/// on average, at least one arrival (rate × window ≥ 1), and stops once it would gather
/// fewer than half of one: the gap between the two thresholds keeps a load near the
/// threshold from switching it on and off.
///
/// While it moderates, a loop that runs out of work rests until a window has passed since it
/// last woke: a wake-up per datagram becomes one per batch, read with one `recvmmsg` and sent
/// with one `sendmmsg`. It costs each datagram at most one window of delay, and only under
/// load.
public struct ReceiveModeration: Sendable {
    /// The pause, nanoseconds (0: never pause).
    public let windowNanoseconds: UInt64
    /// Whether the loop moderates after the current wake-up.
    public private(set) var moderating = false
    /// Decaying sums of ready descriptors (in 1/1024ths) and of nanoseconds between wake-ups.
    private var arrivals: UInt64
    private var span: UInt64
    private var lastWake: UInt64?

    /// The longest gap between wake-ups that counts (a longer idle time counts as this).
    static let longestGap: UInt64 = 10_000_000

    public init(windowMicroseconds: Int) {
        windowNanoseconds = UInt64(max(0, windowMicroseconds)) * 1_000
        // Start as if idle: one arrival per longest gap.
        arrivals = 8 << 10
        span = 8 * Self.longestGap
    }

    /// Records a wake-up at `now` (monotonic nanoseconds) that found `ready` descriptors, and
    /// returns whether the loop moderates (rests, once out of work, until a window after its
    /// last wake-up).
    public mutating func wake(ready: Int, at now: UInt64) -> Bool {
        guard windowNanoseconds > 0, ready > 0 else { return false }
        let gap = lastWake.map { min(now &- $0, Self.longestGap) } ?? Self.longestGap
        lastWake = now
        arrivals = arrivals - arrivals / 8 + (UInt64(ready) << 10)
        span = span - span / 8 + max(gap, 1)
        // rate × window = arrivals × window / span, compared with 1 (on) and 1/2 (off).
        let gathered = (arrivals * windowNanoseconds) >> 10
        moderating = moderating ? gathered * 2 >= span : gathered >= span
        return moderating
    }
}
