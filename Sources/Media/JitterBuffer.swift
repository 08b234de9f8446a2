/// Extends 16-bit RTP sequence numbers to a monotonic 64-bit index (RFC 3550 Appendix A.1).
public struct SequenceExtender: Sendable {
    private var highest: Int64?

    public init() {}

    /// The extended index of `sequence`, the one closest to the highest seen so far.
    public mutating func extend(_ sequence: UInt16) -> Int64 {
        guard let h = highest else {
            highest = Int64(sequence)
            return Int64(sequence)
        }
        let delta = Int64(Int16(bitPattern: sequence &- UInt16(truncatingIfNeeded: h)))
        let index = h + delta
        if index > h { highest = index }
        return index
    }

    public var highestIndex: Int64? { highest }
}

/// A low-delay reordering buffer for one RTP stream: packets in order go out at once (the
/// receiving leg's own jitter buffer absorbs jitter, so transcoding adds no pacing delay);
/// a packet after a gap is held up to `holdMilliseconds` for the missing ones, after which the
/// gap is released as loss for concealment or FEC recovery; late and duplicate packets are
/// dropped and counted. Bounded: at most `capacity` packets are held.
public struct JitterBuffer<Payload: Sendable>: Sendable {
    public enum Item: Sendable {
        /// The next packet in order.
        case packet(index: Int64, timestamp: UInt32, payload: Payload)
        /// A packet that never came (its extended index).
        case lost(index: Int64)
    }

    public var holdMilliseconds: Int64
    public let capacity: Int
    private var extender = SequenceExtender()
    /// The index the next released item will have.
    private var next: Int64?
    private var held: [(index: Int64, timestamp: UInt32, payload: Payload, arrival: Int64)] = []
    public private(set) var late = 0
    public private(set) var duplicates = 0
    public private(set) var lost = 0

    public init(holdMilliseconds: Int64 = 40, capacity: Int = 16) {
        self.holdMilliseconds = holdMilliseconds
        self.capacity = capacity
    }

    /// Adds a packet at time `now` (ms); returns what may be released now, in order.
    public mutating func insert(sequence: UInt16, timestamp: UInt32, payload: Payload, now: Int64) -> [Item] {
        let index = extender.extend(sequence)
        guard let expected = next else {
            next = index + 1
            return [.packet(index: index, timestamp: timestamp, payload: payload)]
        }
        if index < expected { late += 1; return [] }
        if held.contains(where: { $0.index == index }) { duplicates += 1; return [] }
        if index - expected > 1000 {
            // A jump far ahead (the sender restarted its sequence): resynchronize rather than report a thousand losses.
            held.removeAll()
            next = index + 1
            return [.packet(index: index, timestamp: timestamp, payload: payload)]
        }
        let position = held.firstIndex { $0.index > index } ?? held.count
        held.insert((index, timestamp, payload, now), at: position)
        var out = drainInOrder()
        if held.count > capacity || (held.first.map { now - $0.arrival >= holdMilliseconds } ?? false) { out += releaseGap() }
        return out
    }

    /// Releases what has waited long enough (call on a timer, e.g. every 10 ms).
    public mutating func poll(now: Int64) -> [Item] {
        guard let first = held.first, now - first.arrival >= holdMilliseconds else { return [] }
        return releaseGap()
    }

    /// Packets held now.
    public var heldCount: Int { held.count }

    private mutating func drainInOrder() -> [Item] {
        var out: [Item] = []
        while let first = held.first, first.index == next {
            held.removeFirst()
            out.append(.packet(index: first.index, timestamp: first.timestamp, payload: first.payload))
            next = first.index + 1
        }
        return out
    }

    /// Declares the gap before the first held packet lost and releases what follows in order.
    private mutating func releaseGap() -> [Item] {
        guard let first = held.first, let expected = next else { return [] }
        var out: [Item] = []
        for missing in expected..<first.index {
            out.append(.lost(index: missing))
            lost += 1
        }
        next = first.index
        return out + drainInOrder()
    }
}
