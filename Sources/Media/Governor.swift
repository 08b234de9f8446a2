/// Keeps a media thread within real time by trading encoder quality for CPU (rtpengine
/// falls off a cliff past capacity; Tandem bends instead): once a second the thread's busy
/// share is measured; above `high` the Opus complexity of its calls steps down the
/// ``ladder``, two rungs at once above `critical`; when the thread is already behind
/// through its own work (``behind(busyShare:)``: its 20 ms tick fired late after a busy
/// interval) it steps down at once. It climbs back a rung
/// when the load predicted at that rung stays under `high` with a margin. Packets are
/// dropped only when the cheapest rung is not enough.
///
/// The ladder holds only the complexities that each cost less than the one above them.
/// Measured on this machine with Debian's libopus 1.3.1 (20 ms from 8 kHz, 24 kbit/s,
/// µs per frame): 0: 27, 1: 29, 2: 41, 3: 47, 4: 73, 5: 61, 6: 84, 7: 85, 8: 112, 9: 108,
/// 10: 112 — so 4 costs more than 5, 6 and 8 no less than 7 and 9, and stepping 5 → 4 would
/// add load instead of shedding it.
public struct ComplexityGovernor: Sendable, Equatable {
    /// Complexities from the most to the least expensive, each cheaper than the one before.
    public static let ladder: [Int32] = [10, 9, 7, 5, 3, 2, 1, 0]
    /// Relative encoder cost of each complexity (µs per frame as measured above).
    static let cost: [Int32: Double] = [0: 27, 1: 29, 2: 41, 3: 47, 4: 73, 5: 61, 6: 84, 7: 85, 8: 112, 9: 108, 10: 112]
    /// The share of a transcoding thread's time that the encoder takes (DESIGN.md: about 80 %; 70 % measured with SRTP and I/O).
    static let encoderShare = 0.7

    public let configured: Int32
    public private(set) var current: Int32
    public var high: Double
    public var critical: Double
    /// How far under `high` the predicted load must stay before climbing.
    public var margin: Double

    public init(configured: Int32, high: Double = 0.85, critical: Double = 0.95, margin: Double = 0.07) {
        self.configured = configured
        self.current = configured
        self.high = high
        self.critical = critical
        self.margin = margin
    }

    /// The thread was busy `utilization` (0…1) of the last interval; returns the new
    /// complexity when it changes.
    public mutating func update(utilization: Double) -> Int32? {
        if utilization > high { return stepDown(rungs: utilization > critical ? 2 : 1) }
        guard current < configured else { return nil }
        // One rung back up, never above the configured value, if the load there would still fit.
        let next = Self.ladder.last { $0 > current && $0 <= configured } ?? configured
        guard predictedUtilization(utilization, at: next) < high - margin else { return nil }
        current = next
        return next
    }

    /// The thread's tick fired late, after it was busy `busyShare` (0…1) of the time since
    /// the tick before. Busy past `high`, its own work made it late (packets wait): step down
    /// now, without waiting for the next measurement. Less busy, something else held the
    /// core (on a VM, the host did not run the vCPU for milliseconds): shedding encoder work
    /// would not help, so nothing changes.
    public mutating func behind(busyShare: Double) -> Int32? { busyShare > high ? stepDown(rungs: 1) : nil }

    /// The load expected at complexity `next` when it is `utilization` at the current one.
    public func predictedUtilization(_ utilization: Double, at next: Int32) -> Double {
        guard let now = Self.cost[current], let then = Self.cost[next], now > 0 else { return utilization }
        return utilization * (1 - Self.encoderShare + Self.encoderShare * then / now)
    }

    private mutating func stepDown(rungs: Int) -> Int32? {
        let cheaper = Self.ladder.filter { $0 < current }
        guard !cheaper.isEmpty else { return nil }
        current = cheaper[min(cheaper.count - 1, rungs - 1)]
        return current
    }
}
