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

/// How a call's audio crosses between the browser side and the SIP side.
public enum BridgeMode: Sendable, Equatable {
    /// Opus on the browser side, transcoded to and from G.711.
    case transcode
    /// The same codec on both sides (G.711, or Opus at 48 kHz): only headers are rewritten
    /// (SRTP ↔ RTP happens in the legs).
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
///
/// Packets out are written into one buffer per direction that the bridge owns and handed to
/// a closure while they are valid, so a packet crossing the bridge allocates nothing (an
/// Opus packet is copied once, into the jitter buffer).
public final class AudioBridge {
    public let mode: BridgeMode
    public let browser: BridgeSide
    public let sip: BridgeSide
    /// The SIP side's G.711 law when transcoding (unused when passing through).
    public let law: G711.Law
    private let toG711: OpusToG711?
    private let toOpus: G711ToOpus?
    private var sipSequence = UInt16.random(in: 0...UInt16.max)
    private var browserSequence = UInt16.random(in: 0...UInt16.max)
    /// Where the packets for each side are built.
    private let sipBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: AudioBridge.bufferSize, alignment: 16)
    private let browserBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: AudioBridge.bufferSize, alignment: 16)
    /// Statistics of what the browser sends and what the SIP side sends.
    public private(set) var fromBrowserStatistics: ReceptionStatistics
    public private(set) var fromSIPStatistics: ReceptionStatistics
    /// Packets of payload types neither side negotiated.
    public private(set) var unknownPayloadTypes = 0
    /// Packets whose payload would not fit a datagram of ``bufferSize`` (dropped).
    public private(set) var oversized = 0
    /// Packets and octets sent toward each side, for sender reports.
    public private(set) var sentToBrowser: (packets: UInt32, octets: UInt32, lastTimestamp: UInt32) = (0, 0, 0)
    public private(set) var sentToSIP: (packets: UInt32, octets: UInt32, lastTimestamp: UInt32) = (0, 0, 0)

    /// Size of the buffer a packet out is built in; ``spareBytes`` of it stay free after the
    /// packet, for the SRTP tag the browser leg appends in place.
    public static let bufferSize = 2048
    public static let spareBytes = 64

    /// - Parameters:
    ///   - browser: the browser side (Opus at 48 kHz, or PCMU/PCMA at 8 kHz for pass-through).
    ///   - sip: the SIP side (G.711, or Opus for pass-through).
    ///   - law: the SIP side's law when transcoding.
    public init(mode: BridgeMode, browser: BridgeSide, sip: BridgeSide, law: G711.Law = .muLaw, opus: OpusEncoder.Configuration = .init()) throws(OpusError) {
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

    deinit {
        sipBuffer.deallocate()
        browserBuffer.deallocate()
    }

    /// The Opus encoder, for the load governor to lower its complexity.
    public var encoder: OpusEncoder? { toOpus?.encoder }

    /// A plain RTP packet from the browser; the RTP packets it makes for the SIP side go to
    /// `emit` (each valid during that call only).
    public func fromBrowser(_ packet: UnsafeRawBufferPointer, now: Int64, emit: (UnsafeRawBufferPointer) -> Void) {
        guard let header = try? RTPHeader(parsing: packet) else { return }
        let payload = header.payload(in: packet)
        fromBrowserStatistics.record(sequence: header.sequenceNumber, timestamp: header.timestamp, payloadBytes: payload.count, arrivalMilliseconds: now)
        if header.payloadType == browser.telephoneEventPayloadType {
            guard let e = Self.translateEvent(header, payload, from: browser, to: sip) else { return }
            e.payload.withUnsafeBytes { sipPacket(payloadType: e.payloadType, timestamp: e.timestamp, marker: header.marker, payload: $0, emit) }
            return
        }
        guard header.payloadType == browser.audioPayloadType else {
            unknownPayloadTypes += 1
            return
        }
        switch mode {
        case .passThrough:
            sipPacket(payloadType: sip.audioPayloadType, timestamp: header.timestamp, marker: header.marker, payload: payload, emit)
        case .transcode:
            toG711?.receive(payload: payload, sequence: header.sequenceNumber, timestamp: header.timestamp, now: now) { frame, timestamp, marker in
                sipPacket(payloadType: sip.audioPayloadType, timestamp: timestamp, marker: marker, payload: frame, emit)
            }
        }
    }

    /// Frames the browser-side jitter buffer releases after waiting for a gap (call every 10–20 ms).
    public func poll(now: Int64, emit: (UnsafeRawBufferPointer) -> Void) {
        toG711?.poll(now: now) { frame, timestamp, marker in
            sipPacket(payloadType: sip.audioPayloadType, timestamp: timestamp, marker: marker, payload: frame, emit)
        }
    }

    /// A plain RTP packet from the SIP side; the RTP packets it makes for the browser go to
    /// `emit` as a buffer and the packet's length, with ``spareBytes`` free after it (each
    /// valid, and the buffer writable, during that call only).
    public func fromSIP(_ packet: UnsafeRawBufferPointer, now: Int64, emit: (UnsafeMutableRawBufferPointer, Int) -> Void) {
        guard let header = try? RTPHeader(parsing: packet) else { return }
        let payload = header.payload(in: packet)
        fromSIPStatistics.record(sequence: header.sequenceNumber, timestamp: header.timestamp, payloadBytes: payload.count, arrivalMilliseconds: now)
        if header.payloadType == sip.telephoneEventPayloadType {
            guard let e = Self.translateEvent(header, payload, from: sip, to: browser) else { return }
            e.payload.withUnsafeBytes { browserPacket(payloadType: e.payloadType, timestamp: e.timestamp, marker: header.marker, payload: $0, emit) }
            return
        }
        guard header.payloadType == sip.audioPayloadType else {
            unknownPayloadTypes += 1
            return
        }
        switch mode {
        case .passThrough:
            browserPacket(payloadType: browser.audioPayloadType, timestamp: header.timestamp, marker: header.marker, payload: payload, emit)
        case .transcode:
            toOpus?.receive(payload: payload, timestamp: header.timestamp, marker: header.marker) { frame, timestamp, marker in
                browserPacket(payloadType: browser.audioPayloadType, timestamp: timestamp, marker: marker, payload: frame, emit)
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

    /// Writes the fixed header and `payload` into `buffer`; the packet's length, or nil when it does not fit.
    private func build(in buffer: UnsafeMutableRawBufferPointer, _ header: RTPHeader, payload: UnsafeRawBufferPointer) -> Int? {
        let length = RTPHeader.fixedLength + payload.count
        guard length + Self.spareBytes <= buffer.count else {
            oversized += 1
            return nil
        }
        header.writeFixedHeader(into: buffer)
        if !payload.isEmpty { UnsafeMutableRawBufferPointer(rebasing: buffer[RTPHeader.fixedLength..<length]).copyMemory(from: payload) }
        return length
    }

    private func sipPacket(payloadType: UInt8, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) -> Void) {
        guard let length = build(in: sipBuffer, RTPHeader(marker: marker, payloadType: payloadType, sequenceNumber: sipSequence &+ 1, timestamp: timestamp, ssrc: sip.ssrc), payload: payload) else { return }
        sipSequence &+= 1
        sentToSIP = (sentToSIP.packets &+ 1, sentToSIP.octets &+ UInt32(payload.count), timestamp)
        emit(UnsafeRawBufferPointer(rebasing: sipBuffer[0..<length]))
    }

    private func browserPacket(payloadType: UInt8, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer, _ emit: (UnsafeMutableRawBufferPointer, Int) -> Void) {
        guard let length = build(in: browserBuffer, RTPHeader(marker: marker, payloadType: payloadType, sequenceNumber: browserSequence &+ 1, timestamp: timestamp, ssrc: browser.ssrc), payload: payload) else { return }
        browserSequence &+= 1
        sentToBrowser = (sentToBrowser.packets &+ 1, sentToBrowser.octets &+ UInt32(payload.count), timestamp)
        emit(browserBuffer, length)
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
