import Foundation
import G711
import Media
import Opus
import Testing

private func indices(_ items: [JitterBuffer<Int>.Item]) -> [String] {
    items.map {
        switch $0 {
        case .packet(let i, _, _): "\(i)"
        case .lost(let i): "lost \(i)"
        }
    }
}

@Suite("Jitter buffer")
struct JitterBufferTests {
    @Test func inOrderPacketsPassAtOnce() {
        var jb = JitterBuffer<Int>()
        for s in 0..<5 { #expect(indices(jb.insert(sequence: UInt16(s), timestamp: 0, payload: s, now: 0)) == ["\(s)"]) }
        #expect(jb.heldCount == 0)
    }

    @Test func reorderedPacketsComeOutInOrder() {
        var jb = JitterBuffer<Int>()
        _ = jb.insert(sequence: 10, timestamp: 0, payload: 0, now: 0)
        #expect(indices(jb.insert(sequence: 12, timestamp: 0, payload: 0, now: 1)).isEmpty)
        #expect(indices(jb.insert(sequence: 11, timestamp: 0, payload: 0, now: 2)) == ["11", "12"])
        #expect(jb.lost == 0)
    }

    @Test func aGapIsReleasedAsLossAfterTheHoldTime() {
        var jb = JitterBuffer<Int>(holdMilliseconds: 40)
        _ = jb.insert(sequence: 1, timestamp: 0, payload: 0, now: 0)
        #expect(indices(jb.insert(sequence: 3, timestamp: 0, payload: 0, now: 20)).isEmpty)
        #expect(jb.poll(now: 59).isEmpty)
        #expect(indices(jb.poll(now: 60)) == ["lost 2", "3"])
        // The missing one arriving now is late.
        #expect(jb.insert(sequence: 2, timestamp: 0, payload: 0, now: 61).isEmpty)
        #expect(jb.late == 1 && jb.lost == 1)
    }

    @Test func duplicatesAndWrapAround() {
        var jb = JitterBuffer<Int>()
        _ = jb.insert(sequence: 65534, timestamp: 0, payload: 0, now: 0)
        #expect(indices(jb.insert(sequence: 65535, timestamp: 0, payload: 0, now: 0)) == ["65535"])
        #expect(indices(jb.insert(sequence: 0, timestamp: 0, payload: 0, now: 0)) == ["65536"])
        _ = jb.insert(sequence: 2, timestamp: 0, payload: 0, now: 0)
        #expect(jb.insert(sequence: 2, timestamp: 0, payload: 0, now: 0).isEmpty)
        #expect(jb.duplicates == 1)
    }

    @Test func capacityBoundsWhatIsHeld() {
        var jb = JitterBuffer<Int>(holdMilliseconds: 10_000, capacity: 4)
        _ = jb.insert(sequence: 0, timestamp: 0, payload: 0, now: 0)
        var released: [String] = []
        for s in 2...6 { released += indices(jb.insert(sequence: UInt16(s), timestamp: 0, payload: 0, now: 0)) }
        #expect(released == ["lost 1", "2", "3", "4", "5", "6"])
        #expect(jb.heldCount == 0)
    }

    @Test func aLargeJumpResynchronizes() {
        var jb = JitterBuffer<Int>()
        _ = jb.insert(sequence: 0, timestamp: 0, payload: 0, now: 0)
        #expect(indices(jb.insert(sequence: 30000, timestamp: 0, payload: 0, now: 0)) == ["30000"])
        #expect(jb.lost == 0)
    }
}

private func tone(_ f: Double, samples: Int, rate: Double = 8000, offset: Int = 0) -> [Int16] {
    (0..<samples).map { Int16(10000 * sin(2 * Double.pi * f * Double($0 + offset) / rate)) }
}

/// The strongest frequency in `x` (8 kHz), by a direct DFT over 10 Hz bins.
private func peakFrequency(_ x: [Int16]) -> Double {
    var best = (0.0, 0.0)
    for f in stride(from: 100.0, through: 3900.0, by: 10.0) {
        var re = 0.0, im = 0.0
        for (i, s) in x.enumerated() {
            let a = 2 * Double.pi * f * Double(i) / 8000
            re += Double(s) * cos(a)
            im -= Double(s) * sin(a)
        }
        let p = re * re + im * im
        if p > best.1 { best = (f, p) }
    }
    return best.0
}

@Suite("Transcoding")
struct TranscodingTests {
    /// G.711 in → Opus → back through the browser-side transcoder → G.711: the tone survives
    /// and timestamps map 8 kHz ↔ 48 kHz.
    @Test func toneSurvivesBothDirections() throws {
        let toOpus = try G711ToOpus(law: .muLaw)
        let toG711 = try OpusToG711(law: .muLaw)
        var returned: [Int16] = []
        var seq: UInt16 = 0
        for frame in 0..<50 {
            // 30 ms G.711 packets: re-framed to 20 ms Opus frames.
            let payload = G711.Law.muLaw.encode(tone(1000, samples: 240, offset: frame * 240))
            payload.withUnsafeBytes { payload in
                toOpus.receive(payload: payload, timestamp: UInt32(frame * 240), marker: frame == 0) { opus, opusTimestamp, _ in
                    #expect(opusTimestamp % 960 == 0)
                    toG711.receive(payload: opus, sequence: seq, timestamp: opusTimestamp, now: Int64(seq) * 20) { g, timestamp, _ in
                        #expect(g.count == 160)
                        #expect(timestamp == opusTimestamp / 6)
                        returned += G711.Law.muLaw.decode(Array(g))
                    }
                    seq &+= 1
                }
            }
        }
        #expect(returned.count == 50 * 240 / 160 * 160)
        #expect(abs(peakFrequency(Array(returned[2000..<4000])) - 1000) <= 10)
    }

    /// A lost Opus packet is rebuilt (FEC) or concealed, so the G.711 stream has no hole.
    @Test func lossKeepsTheStreamContinuous() throws {
        let encoder = try OpusEncoder(.init(bitrate: 24000, inbandFEC: true, expectedLossPercent: 20))
        let toG711 = try OpusToG711(law: .aLaw, holdMilliseconds: 40)
        var timestamps: [UInt32] = []
        let collect: FrameSink = { payload, timestamp, _ in
            #expect(payload.count == 160)
            timestamps.append(timestamp)
        }
        for i in 0..<30 where i != 10 && i != 20 && i != 21 {
            let packet = try encoder.encode(tone(700, samples: 160, offset: i * 160))
            packet.withUnsafeBytes { toG711.receive(payload: $0, sequence: UInt16(i), timestamp: UInt32(i * 960), now: Int64(i * 20), emit: collect) }
            toG711.poll(now: Int64(i * 20), emit: collect)
        }
        toG711.poll(now: 10_000, emit: collect)
        #expect(timestamps.count == 30)
        #expect(zip(timestamps, timestamps.dropFirst()).allSatisfy { $1 == $0 &+ 160 })
        #expect(toG711.recoveredFrames + toG711.concealedFrames == 3)
    }

    /// The encoder toward the browser plans FEC for the loss the browser reports, and
    /// stops spending on it when reports come back clean.
    @Test func fecFollowsTheBrowsersReports() throws {
        let bridge = try AudioBridge(mode: .transcode, browser: BridgeSide(audioPayloadType: 111, telephoneEventPayloadType: nil, clockRate: 48000, ssrc: 1),
                                     sip: BridgeSide(audioPayloadType: 0, telephoneEventPayloadType: nil, clockRate: 8000, ssrc: 2), law: .muLaw,
                                     opus: .init(expectedLossPercent: 0))
        let encoder = try #require(bridge.encoder)
        #expect(encoder.expectedLossPercent == 0)
        bridge.browserReportedLoss(fractionLost: 26)  // 10.2 %
        #expect(encoder.expectedLossPercent == 11)
        bridge.browserReportedLoss(fractionLost: 0)
        #expect(encoder.expectedLossPercent == 8)  // 0.7 × 10.2 % = 7.1 %, rounded up
        for _ in 0..<20 { bridge.browserReportedLoss(fractionLost: 0) }
        #expect(encoder.expectedLossPercent == 0)
        bridge.browserReportedLoss(fractionLost: 255)
        #expect(encoder.expectedLossPercent == 25)  // capped
        // A pass-through bridge has no encoder: reports change nothing.
        let plain = try AudioBridge(mode: .passThrough, browser: BridgeSide(audioPayloadType: 0, telephoneEventPayloadType: nil, clockRate: 8000, ssrc: 1),
                                    sip: BridgeSide(audioPayloadType: 0, telephoneEventPayloadType: nil, clockRate: 8000, ssrc: 2), law: .muLaw)
        plain.browserReportedLoss(fractionLost: 128)
        #expect(plain.encoder == nil && plain.lossEstimate == 0)
    }

    @Test func telephoneEventsRescaleBetweenClocks() {
        let e = TelephoneEvent(parsing: [5, 0x8A, 0x07, 0x80])!
        #expect(e.event == 5 && e.end && e.volume == 10 && e.duration == 1920 && e.digit == "5")
        #expect(e.rescaled(from: 48000, to: 8000).duration == 320)
        #expect(e.rescaled(from: 8000, to: 48000).payload == [5, 0x8A, 0x2D, 0x00])
        #expect(TelephoneEvent(event: 1, end: false, volume: 0, duration: 20000).rescaled(from: 8000, to: 48000).duration == .max)
        #expect(TelephoneEvent.event(for: "#") == 11 && TelephoneEvent.event(for: "d") == 15)
        #expect(TelephoneEvent(parsing: [1, 2, 3]) == nil)
    }
}

@Suite("Statistics")
struct StatisticsTests {
    @Test func lossAndJitterFollowRFC3550() {
        var s = ReceptionStatistics(clockRate: 8000)
        for i in 0..<100 where i % 10 != 0 || i == 0 {
            // Every packet 20 ms apart, arrival jitter alternating ±2 ms.
            s.record(sequence: UInt16(i), timestamp: UInt32(i * 160), payloadBytes: 160, arrivalMilliseconds: Int64(i * 20 + (i % 2 == 0 ? 2 : -2)))
        }
        #expect(s.expected == 100 && s.cumulativeLost == 9)
        let block = s.reportBlock(ssrc: 1, nowMilliseconds: 0)
        #expect(block.fractionLost == UInt8(9 * 256 / 100))
        #expect(block.extendedHighestSequence == 99)
        // Transit alternates by 4 ms = 32 units; the estimator converges toward 32.
        #expect(s.jitter > 20 && s.jitter <= 32)
    }

    @Test func roundTripFromLSRAndDLSR() {
        let block = ReportBlock(ssrc: 1, fractionLost: 0, cumulativeLost: 0, extendedHighestSequence: 0, jitter: 0, lastSenderReport: 0x0001_0000, delaySinceLastSenderReport: 0x0000_8000)
        // Arrival at 1.75 s (compact NTP), the SR was sent at 1.0 s and held 0.5 s by the peer: 0.25 s.
        #expect(NTPTime.roundTripMilliseconds(block: block, arrivalCompactNTP: 0x0001_C000) == 250)
        #expect(NTPTime.from(unixNanoseconds: 0) >> 32 == 2_208_988_800)
    }
}

@Suite("Audio bridge")
struct AudioBridgeTests {
    static let browser = BridgeSide(audioPayloadType: 111, telephoneEventPayloadType: 126, clockRate: 48000, ssrc: 0xB0B0)
    static let sip = BridgeSide(audioPayloadType: 0, telephoneEventPayloadType: 101, clockRate: 8000, ssrc: 0x5151)

    /// RFC 4733 events cross with timestamp and duration rescaled (48 kHz ↔ 8 kHz) and the other leg's SSRC and payload type.
    @Test func telephoneEventsCrossBothWays() throws {
        let bridge = try AudioBridge(mode: .transcode, browser: Self.browser, sip: Self.sip, law: .muLaw)
        let event = TelephoneEvent(event: 5, end: false, volume: 10, duration: 960)
        let fromBrowser = RTPHeader(marker: true, payloadType: 126, sequenceNumber: 7, timestamp: 96_000, ssrc: 0xAAAA).packet(payload: event.payload)
        let toSIP = fromBrowser.withUnsafeBytes { bridge.packets(fromBrowser: $0, now: 0) }
        #expect(toSIP.count == 1)
        let h = try toSIP[0].withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(h.payloadType == 101 && h.ssrc == 0x5151 && h.timestamp == 16_000 && h.marker)
        #expect(TelephoneEvent(parsing: Array(toSIP[0][12...]))?.duration == 160)

        let back = toSIP[0].withUnsafeBytes { bridge.packets(fromSIP: $0, now: 0) }
        let b = try back[0].withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(b.payloadType == 126 && b.ssrc == 0xB0B0 && b.timestamp == 96_000)
        #expect(TelephoneEvent(parsing: Array(back[0][12...])) == event)
    }

    /// Pass-through keeps the payload and timestamp, rewrites SSRC and sequence numbers, and
    /// drops payload types nobody negotiated.
    @Test func passThroughRewritesHeadersOnly() throws {
        let browser = BridgeSide(audioPayloadType: 0, telephoneEventPayloadType: 101, clockRate: 8000, ssrc: 0xB0B0)
        let bridge = try AudioBridge(mode: .passThrough, browser: browser, sip: Self.sip, law: .muLaw)
        let payload = [UInt8](repeating: 0x55, count: 160)
        var sequences: [UInt16] = []
        for i in 0..<3 {
            let p = RTPHeader(payloadType: 0, sequenceNumber: UInt16(100 + i), timestamp: UInt32(160 * i), ssrc: 0xAAAA).packet(payload: payload)
            let out = p.withUnsafeBytes { bridge.packets(fromBrowser: $0, now: Int64(20 * i)) }
            let h = try out[0].withUnsafeBytes { try RTPHeader(parsing: $0) }
            #expect(h.ssrc == 0x5151 && h.timestamp == UInt32(160 * i) && Array(out[0][12...]) == payload)
            sequences.append(h.sequenceNumber)
        }
        #expect(sequences[1] == sequences[0] &+ 1 && sequences[2] == sequences[1] &+ 1)
        let stray = RTPHeader(payloadType: 96, sequenceNumber: 1, timestamp: 0, ssrc: 1).packet(payload: [1])
        #expect(stray.withUnsafeBytes { bridge.packets(fromBrowser: $0, now: 0) }.isEmpty)
        #expect(bridge.unknownPayloadTypes == 1)
        #expect(bridge.fromBrowserStatistics.packets == 4)
    }
}

extension AudioBridgeTests {
    /// Opus on both sides (the platform took Opus): the browser's packets reach the SIP side
    /// byte for byte under the SIP leg's payload type, with 48 kHz timestamps kept, and back.
    @Test func opusPassesThroughUntranscoded() throws {
        let browser = BridgeSide(audioPayloadType: 111, telephoneEventPayloadType: 110, clockRate: 48000, ssrc: 0xB0B0)
        let sip = BridgeSide(audioPayloadType: 109, telephoneEventPayloadType: 101, clockRate: 48000, telephoneEventClockRate: 8000, ssrc: 0x5151)
        let bridge = try AudioBridge(mode: .passThrough, browser: browser, sip: sip)
        #expect(bridge.encoder == nil)
        let frame: [UInt8] = [0x78] + (0..<59).map { UInt8($0) }  // an Opus TOC byte and 59 bytes
        let p = RTPHeader(payloadType: 111, sequenceNumber: 7, timestamp: 960 * 3, ssrc: 0xAAAA).packet(payload: frame)
        let out = p.withUnsafeBytes { bridge.packets(fromBrowser: $0, now: 0) }
        let h = try out[0].withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(out.count == 1 && h.payloadType == 109 && h.ssrc == 0x5151 && h.timestamp == 960 * 3 && Array(out[0][12...]) == frame)
        let back = RTPHeader(payloadType: 109, sequenceNumber: 9, timestamp: 4800, ssrc: 0xCCCC).packet(payload: frame)
        let toBrowser = back.withUnsafeBytes { bridge.packets(fromSIP: $0, now: 0) }
        let b = try toBrowser[0].withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(b.payloadType == 111 && b.ssrc == 0xB0B0 && b.timestamp == 4800 && Array(toBrowser[0][12...]) == frame)
        #expect(bridge.fromSIPStatistics.packets == 1 && bridge.fromBrowserStatistics.packets == 1)
    }
}

@Suite("Complexity governor")
struct GovernorTests {
    @Test func stepsDownTheLadderUnderLoadAndBackUpWhenItEases() {
        var g = ComplexityGovernor(configured: 5)
        #expect(g.update(utilization: 0.5) == nil)
        #expect(g.update(utilization: 0.9) == 3)  // 4 costs more than 5 with libopus 1.3: skipped
        #expect(g.update(utilization: 0.9) == 2)
        #expect(g.update(utilization: 0.8) == nil)  // at 3 it would be ~0.88: hold
        #expect(g.update(utilization: 0.6) == 3)  // predicted ~0.66
        #expect(g.update(utilization: 0.72) == nil)  // at 5 it would be ~0.87: hold
        #expect(g.update(utilization: 0.6) == 5)
        #expect(g.update(utilization: 0.1) == nil)  // never above the configured value
        #expect(g.update(utilization: 0.99) == 2)  // past the critical mark: two rungs at once
        for _ in 0..<10 { _ = g.update(utilization: 1.0) }
        #expect(g.current == 0)
        #expect(g.update(utilization: 1.0) == nil)
        #expect(g.behind(busyShare: 1) == nil)
    }

    @Test func fallingBehindStepsDownAtOnce() {
        var g = ComplexityGovernor(configured: 10)
        #expect(g.behind(busyShare: 0.99) == 9)
        #expect(g.behind(busyShare: 0.9) == 7)
        // Late after a mostly idle interval: the core was held elsewhere, nothing to shed.
        #expect(g.behind(busyShare: 0.3) == nil)
        #expect(g.current == 7)
        #expect(g.predictedUtilization(0.5, at: 9) > 0.5)
        #expect(abs(g.predictedUtilization(0.5, at: 7) - 0.5) < 1e-9)
    }

    @Test func aConfiguredValueOffTheLadderIsReturnedTo() {
        var g = ComplexityGovernor(configured: 4)
        #expect(g.update(utilization: 0.9) == 3)
        #expect(g.update(utilization: 0.1) == 4)
        var top = ComplexityGovernor(configured: 10)
        #expect(top.update(utilization: 0.9) == 9)
        #expect(top.update(utilization: 0.97) == 5)
        #expect(top.update(utilization: 0.2) == 7)
    }

    @Test func theLadderOnlyGetsCheaper() {
        #expect(ComplexityGovernor.ladder == ComplexityGovernor.ladder.sorted(by: >))
        #expect(ComplexityGovernor.ladder.first == 10 && ComplexityGovernor.ladder.last == 0)
    }
}

extension AudioBridge {
    /// The packets the bridge emits for one packet from the browser, copied out.
    func packets(fromBrowser packet: UnsafeRawBufferPointer, now: Int64) -> [[UInt8]] {
        var out: [[UInt8]] = []
        fromBrowser(packet, now: now) { out.append(Array($0)) }
        return out
    }

    /// The packets the bridge emits for one packet from the SIP side, copied out.
    func packets(fromSIP packet: UnsafeRawBufferPointer, now: Int64) -> [[UInt8]] {
        var out: [[UInt8]] = []
        fromSIP(packet, now: now) { buffer, length in
            #expect(length + AudioBridge.spareBytes <= buffer.count)
            out.append(Array(buffer[0..<length]))
        }
        return out
    }
}
