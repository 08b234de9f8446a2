#if canImport(Glibc)
import Glibc
#endif

/// Reception statistics of one RTP source (RFC 3550 §6.4.1 and Appendix A.1, A.3, A.8):
/// packets, loss, interarrival jitter, and what goes into a report block.
public struct ReceptionStatistics: Sendable {
    public let clockRate: UInt32
    private var extender = SequenceExtender()
    private var baseIndex: Int64?
    public private(set) var packets: UInt64 = 0
    public private(set) var bytes: UInt64 = 0
    /// Interarrival jitter in timestamp units, ×16 as RFC 3550 A.8 keeps it.
    private var jitterScaled: Int64 = 0
    private var lastTransit: Int64?
    private var expectedPrior: Int64 = 0
    private var receivedPrior: UInt64 = 0
    /// The last SR from this source: its compact NTP time and when it arrived (ms).
    private var lastSR: (compact: UInt32, arrivalMilliseconds: Int64)?

    public init(clockRate: UInt32) { self.clockRate = clockRate }

    /// A packet arrived at `arrivalMilliseconds` (monotonic).
    public mutating func record(sequence: UInt16, timestamp: UInt32, payloadBytes: Int, arrivalMilliseconds: Int64) {
        let index = extender.extend(sequence)
        if baseIndex == nil { baseIndex = index }
        packets += 1
        bytes += UInt64(payloadBytes)
        let arrival = arrivalMilliseconds * Int64(clockRate) / 1000
        let transit = arrival - Int64(timestamp)
        if let last = lastTransit {
            let d = abs(transit - last)
            jitterScaled += d - ((jitterScaled + 8) >> 4)
        }
        lastTransit = transit
    }

    /// Interarrival jitter in timestamp units.
    public var jitter: UInt32 { UInt32(clamping: jitterScaled >> 4) }
    /// Interarrival jitter in milliseconds.
    public var jitterMilliseconds: Double { Double(jitter) * 1000 / Double(clockRate) }
    public var extendedHighestSequence: UInt32 { UInt32(truncatingIfNeeded: extender.highestIndex ?? 0) }
    /// Packets expected from the first to the highest sequence number.
    public var expected: Int64 { baseIndex.map { (extender.highestIndex ?? $0) - $0 + 1 } ?? 0 }
    /// Cumulative loss (negative with duplicates), RFC 3550 A.3.
    public var cumulativeLost: Int64 { expected - Int64(packets) }
    public var lossFraction: Double { expected > 0 ? max(0, Double(cumulativeLost) / Double(expected)) : 0 }

    /// A sender report from this source arrived.
    public mutating func senderReportReceived(_ info: SenderInfo, arrivalMilliseconds: Int64) {
        lastSR = (info.compactNTP, arrivalMilliseconds)
    }

    /// The report block for this source (RFC 3550 §6.4.1), starting a new interval.
    public mutating func reportBlock(ssrc: UInt32, nowMilliseconds: Int64) -> ReportBlock {
        let expectedInterval = expected - expectedPrior
        let receivedInterval = Int64(packets - receivedPrior)
        expectedPrior = expected
        receivedPrior = packets
        let lostInterval = expectedInterval - receivedInterval
        let fraction: UInt8 = expectedInterval == 0 || lostInterval <= 0 ? 0 : UInt8(min(255, (lostInterval << 8) / expectedInterval))
        let cumulative = Int32(clamping: max(-0x80_0000, min(0x7F_FFFF, cumulativeLost)))
        var lsr: UInt32 = 0, dlsr: UInt32 = 0
        if let sr = lastSR {
            lsr = sr.compact
            dlsr = UInt32(clamping: (nowMilliseconds - sr.arrivalMilliseconds) * 65536 / 1000)
        }
        return ReportBlock(ssrc: ssrc, fractionLost: fraction, cumulativeLost: cumulative, extendedHighestSequence: extendedHighestSequence,
                           jitter: jitter, lastSenderReport: lsr, delaySinceLastSenderReport: dlsr)
    }
}

/// NTP time (RFC 5905 format, seconds since 1900 in 32.32 fixed point) for sender reports.
public enum NTPTime {
    /// The wall clock now, as NTP time.
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return from(unixNanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    /// The middle 32 bits of an NTP time (RFC 3550 §6.4.1's "compact" form of LSR).
    public static func compact(_ ntp: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ntp >> 16) }

    /// From Unix time in nanoseconds.
    public static func from(unixNanoseconds: UInt64) -> UInt64 {
        let seconds = unixNanoseconds / 1_000_000_000 + 2_208_988_800
        let fraction = (unixNanoseconds % 1_000_000_000) << 32 / 1_000_000_000
        return seconds << 32 | fraction
    }

    /// Round-trip time from a report block about our stream (RFC 3550 §6.4.1): arrival time
    /// (compact NTP) − LSR − DLSR, in milliseconds; nil when the block echoes no SR.
    public static func roundTripMilliseconds(block: ReportBlock, arrivalCompactNTP: UInt32) -> Double? {
        guard block.lastSenderReport != 0 else { return nil }
        let rtt = arrivalCompactNTP &- block.lastSenderReport &- block.delaySinceLastSenderReport
        guard rtt < 0x8000_0000 else { return nil }
        return Double(rtt) * 1000 / 65536
    }
}

/// A listening-quality estimate of a stream from what RTP/RTCP statistics give: the
/// E-model of ITU-T G.107 reduced to delay and loss (the "simplified E-model" monitoring
/// tools use), with G.711's packet-loss robustness (Bpl = 25.1, G.113 Appendix I).
public enum QualityEstimate {
    /// R-factor: 93.2 less the delay impairment (one-way delay = RTT/2 + 2·jitter + 10 ms of
    /// codec) and the effective equipment impairment of the loss.
    public static func rFactor(jitterMs: Double, lossFraction: Double, roundTripMs: Double) -> Double {
        let delay = max(0, roundTripMs) / 2 + 2 * max(0, jitterMs) + 10
        let delayImpairment = delay < 160 ? delay / 40 : (delay - 120) / 10
        let lossPercent = min(100, max(0, lossFraction) * 100)
        let lossImpairment = 95 * lossPercent / (lossPercent + 25.1)
        return 93.2 - delayImpairment - lossImpairment
    }

    /// MOS from the R-factor (G.107 Annex B), 1 … 4.5.
    public static func mos(jitterMs: Double, lossFraction: Double, roundTripMs: Double) -> Double {
        let r = rFactor(jitterMs: jitterMs, lossFraction: lossFraction, roundTripMs: roundTripMs)
        if r <= 0 { return 1 }
        if r >= 100 { return 4.5 }
        return min(4.5, max(1, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)))
    }
}
