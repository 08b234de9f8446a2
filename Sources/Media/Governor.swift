/// Keeps a media thread within real time by trading encoder quality for CPU (rtpengine
/// falls off a cliff past capacity; Tandem bends instead): once a second the thread's busy
/// share is measured; above `high` the Opus complexity of its calls steps down by one (the
/// encoder is about 80 % of a transcoded call's cost, and complexity 0 costs less than half
/// of 5), below `low` it steps back up toward the configured value. Packets are dropped only
/// when complexity 0 is not enough.
public struct ComplexityGovernor: Sendable, Equatable {
    public let configured: Int32
    public private(set) var current: Int32
    public var high: Double
    public var low: Double

    public init(configured: Int32, high: Double = 0.85, low: Double = 0.6) {
        self.configured = configured
        self.current = configured
        self.high = high
        self.low = low
    }

    /// The thread was busy `utilization` (0…1) of the last interval; returns the new
    /// complexity when it changes.
    public mutating func update(utilization: Double) -> Int32? {
        if utilization > high, current > 0 {
            current -= 1
            return current
        }
        if utilization < low, current < configured {
            current += 1
            return current
        }
        return nil
    }
}
