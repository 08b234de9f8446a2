import G711
import Opus

/// How much in-band FEC to plan for from the loss a receiver reports: an exponential
/// average of the reported fractions, rounded up to whole percent (at most 25 %), so one lost
/// packet switches FEC on and it fades out again over a few clean reports.
public enum FECPlanner {
    public static func next(estimate: Double, reported: Double) -> Double {
        reported > estimate ? reported : 0.7 * estimate + 0.3 * reported
    }

    public static func percent(_ estimate: Double) -> Int32 {
        estimate < 0.005 ? 0 : Int32(min(25, (estimate * 100).rounded(.up)))
    }
}

/// How a call's audio crosses between the browser side and the G.711 (SIP) side.
public enum BridgeMode: Sendable, Equatable {
    /// Opus on the browser side, transcoded to and from G.711.
    case transcode
    /// The same G.711 law on both sides: only headers are rewritten (SRTP ↔ RTP happens in the legs).
    case passThrough
}

/// The payload types and clocks of one side of a bridge.
public struct BridgeSide: Sendable, Equatable {
    public var audioPayloadType: UInt8
    public var telephoneEventPayloadType: UInt8?
    public var clockRate: UInt32
    /// The telephone-event clock, usually the audio one (Firefox pairs 8 kHz events with 48 kHz Opus).
    public var telephoneEventClockRate: UInt32
    public var ssrc: UInt32

    public init(audioPayloadType: UInt8, telephoneEventPayloadType: UInt8?, clockRate: UInt32, telephoneEventClockRate: UInt32? = nil, ssrc: UInt32) {
        self.audioPayloadType = audioPayloadType
        self.telephoneEventPayloadType = telephoneEventPayloadType
        self.clockRate = clockRate
        self.telephoneEventClockRate = telephoneEventClockRate ?? clockRate
        self.ssrc = ssrc
    }
}

/// The audio bridge of one call (rtpengine's per-payload-type handler chosen at negotiation,
/// not per packet): RTP packets from the browser become G.711 RTP packets for the SIP side and
/// back, with SSRC, sequence numbers and timestamps rewritten for each leg, RFC 4733
/// telephone-events carried across with their clock rescaled, and reception statistics of
/// both incoming streams. Pure: packets in, packets out; the legs do the I/O.
public final class AudioBridge {
    public let mode: BridgeMode
    public let browser: BridgeSide
    public let sip: BridgeSide
    public let law: G711.Law
    private let toG711: OpusToG711?
    private let toOpus: G711ToOpus?
    private var sipSequence = UInt16.random(in: 0...UInt16.max)
    private var browserSequence = UInt16.random(in: 0...UInt16.max)
    /// Statistics of what the browser sends and what the SIP side sends.
    public private(set) var fromBrowserStatistics: ReceptionStatistics
    public private(set) var fromSIPStatistics: ReceptionStatistics
    /// Packets of payload types neither side negotiated.
    public private(set) var unknownPayloadTypes = 0
    /// Packets and octets sent toward each side, for sender reports.
    public private(set) var sentToBrowser: (packets: UInt32, octets: UInt32, lastTimestamp: UInt32) = (0, 0, 0)
    public private(set) var sentToSIP: (packets: UInt32, octets: UInt32, lastTimestamp: UInt32) = (0, 0, 0)

    /// - Parameters:
    ///   - browser: the browser side (Opus at 48 kHz, or PCMU/PCMA at 8 kHz for pass-through).
    ///   - sip: the G.711 side.
    public init(mode: BridgeMode, browser: BridgeSide, sip: BridgeSide, law: G711.Law, opus: OpusEncoder.Configuration = .init()) throws(OpusError) {
        self.mode = mode
        self.browser = browser
        self.sip = sip
        self.law = law
        if mode == .transcode {
            toG711 = try OpusToG711(law: law)
            toOpus = try G711ToOpus(law: law, configuration: opus)
        } else {
            toG711 = nil
            toOpus = nil
        }
        fromBrowserStatistics = ReceptionStatistics(clockRate: browser.clockRate)
        fromSIPStatistics = ReceptionStatistics(clockRate: sip.clockRate)
    }

    /// The Opus encoder, for the load governor to lower its complexity.
    public var encoder: OpusEncoder? { toOpus?.encoder }

    /// A plain RTP packet from the browser; returns RTP packets for the SIP side.
    public func fromBrowser(_ packet: UnsafeRawBufferPointer, now: Int64) -> [[UInt8]] {
        guard let header = try? RTPHeader(parsing: packet) else { return [] }
        let payload = header.payload(in: packet)
        fromBrowserStatistics.record(sequence: header.sequenceNumber, timestamp: header.timestamp, payloadBytes: payload.count, arrivalMilliseconds: now)
        if header.payloadType == browser.telephoneEventPayloadType {
            guard let e = Self.translateEvent(header, payload, from: browser, to: sip) else { return [] }
            return [sipPacket(payloadType: e.payloadType, timestamp: e.timestamp, marker: header.marker, payload: e.payload)]
        }
        guard header.payloadType == browser.audioPayloadType else {
            unknownPayloadTypes += 1
            return []
        }
        switch mode {
        case .passThrough:
            return [sipPacket(payloadType: sip.audioPayloadType, timestamp: header.timestamp, marker: header.marker, payload: Array(payload))]
        case .transcode:
            guard let toG711 else { return [] }
            return toG711.receive(payload: Array(payload), sequence: header.sequenceNumber, timestamp: header.timestamp, now: now).map {
                sipPacket(payloadType: sip.audioPayloadType, timestamp: $0.timestamp, marker: $0.marker, payload: $0.payload)
            }
        }
    }

    /// Frames the browser-side jitter buffer releases after waiting for a gap (call every 10–20 ms).
    public func poll(now: Int64) -> [[UInt8]] {
        guard let toG711 else { return [] }
        return toG711.poll(now: now).map { sipPacket(payloadType: sip.audioPayloadType, timestamp: $0.timestamp, marker: $0.marker, payload: $0.payload) }
    }

    /// A plain RTP packet from the SIP side; returns RTP packets for the browser.
    public func fromSIP(_ packet: UnsafeRawBufferPointer, now: Int64) -> [[UInt8]] {
        guard let header = try? RTPHeader(parsing: packet) else { return [] }
        let payload = header.payload(in: packet)
        fromSIPStatistics.record(sequence: header.sequenceNumber, timestamp: header.timestamp, payloadBytes: payload.count, arrivalMilliseconds: now)
        if header.payloadType == sip.telephoneEventPayloadType {
            guard let e = Self.translateEvent(header, payload, from: sip, to: browser) else { return [] }
            return [browserPacket(payloadType: e.payloadType, timestamp: e.timestamp, marker: header.marker, payload: e.payload)]
        }
        guard header.payloadType == sip.audioPayloadType else {
            unknownPayloadTypes += 1
            return []
        }
        switch mode {
        case .passThrough:
            return [browserPacket(payloadType: browser.audioPayloadType, timestamp: header.timestamp, marker: header.marker, payload: Array(payload))]
        case .transcode:
            guard let toOpus else { return [] }
            return toOpus.receive(payload: Array(payload), timestamp: header.timestamp, marker: header.marker).map {
                browserPacket(payloadType: browser.audioPayloadType, timestamp: $0.timestamp, marker: $0.marker, payload: $0.payload)
            }
        }
    }

    /// An RFC 4733 event for the other side: its payload type there, and timestamp and
    /// duration in that side's clock (nil when that side has no telephone-event).
    private static func translateEvent(_ header: RTPHeader, _ payload: UnsafeRawBufferPointer, from: BridgeSide, to: BridgeSide) -> (payloadType: UInt8, timestamp: UInt32, payload: [UInt8])? {
        guard let payloadType = to.telephoneEventPayloadType, let event = TelephoneEvent(parsing: Array(payload)) else { return nil }
        let (fromRate, toRate) = (from.telephoneEventClockRate, to.telephoneEventClockRate)
        let timestamp = UInt32(truncatingIfNeeded: UInt64(header.timestamp) * UInt64(toRate) / UInt64(fromRate))
        return (payloadType, timestamp, event.rescaled(from: fromRate, to: toRate).payload)
    }

    private func sipPacket(payloadType: UInt8, timestamp: UInt32, marker: Bool, payload: [UInt8]) -> [UInt8] {
        sipSequence &+= 1
        sentToSIP = (sentToSIP.packets &+ 1, sentToSIP.octets &+ UInt32(payload.count), timestamp)
        return RTPHeader(marker: marker, payloadType: payloadType, sequenceNumber: sipSequence, timestamp: timestamp, ssrc: sip.ssrc).packet(payload: payload)
    }

    private func browserPacket(payloadType: UInt8, timestamp: UInt32, marker: Bool, payload: [UInt8]) -> [UInt8] {
        browserSequence &+= 1
        sentToBrowser = (sentToBrowser.packets &+ 1, sentToBrowser.octets &+ UInt32(payload.count), timestamp)
        return RTPHeader(marker: marker, payloadType: payloadType, sequenceNumber: browserSequence, timestamp: timestamp, ssrc: browser.ssrc).packet(payload: payload)
    }

    /// Drops the jitter-buffer statistics interval and returns the report block about the browser's stream.
    public func reportBlockForBrowser(ssrc: UInt32, now: Int64) -> ReportBlock {
        fromBrowserStatistics.reportBlock(ssrc: ssrc, nowMilliseconds: now)
    }

    /// The browser reported `fractionLost` (RFC 3550 §6.4.1, in 1/256) of the stream we send
    /// it: the Opus encoder's in-band FEC follows the loss the path has (as libwebrtc adapts
    /// it), instead of spending bits and about a fifth of the encoder's time on a clean path.
    public func browserReportedLoss(fractionLost: UInt8) {
        guard let encoder = toOpus?.encoder else { return }
        lossEstimate = FECPlanner.next(estimate: lossEstimate, reported: Double(fractionLost) / 256)
        let percent = FECPlanner.percent(lossEstimate)
        if percent != encoder.expectedLossPercent { encoder.expectedLossPercent = percent }
    }

    /// Smoothed loss the browser reports on our stream (0…1).
    public private(set) var lossEstimate = 0.0

    /// A sender report from the browser arrived.
    public func browserSenderReport(_ info: SenderInfo, now: Int64) {
        fromBrowserStatistics.senderReportReceived(info, arrivalMilliseconds: now)
    }

    /// Frames concealed or rebuilt from FEC on the browser → SIP path.
    public var concealment: (concealed: Int, recovered: Int) { (toG711?.concealedFrames ?? 0, toG711?.recoveredFrames ?? 0) }
}
