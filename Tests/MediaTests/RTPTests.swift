import Media
import Testing

@Suite("RTP")
struct RTPTests {
    @Test func fixedHeaderRoundTrips() throws {
        let header = RTPHeader(marker: true, payloadType: 111, sequenceNumber: 0xBEEF, timestamp: 0xDEAD_BEEF, ssrc: 0x1234_5678)
        let packet = header.packet(payload: [1, 2, 3])
        #expect(packet.prefix(12) == [0x80, 0xEF, 0xBE, 0xEF, 0xDE, 0xAD, 0xBE, 0xEF, 0x12, 0x34, 0x56, 0x78])
        let parsed = try packet.withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(parsed.marker && parsed.payloadType == 111 && parsed.sequenceNumber == 0xBEEF && parsed.timestamp == 0xDEAD_BEEF && parsed.ssrc == 0x1234_5678)
        #expect(parsed.headerLength == 12 && parsed.payloadLength == 3)
        #expect(packet.withUnsafeBytes { Array(parsed.payload(in: $0)) } == [1, 2, 3])
    }

    /// CSRCs, a one-byte-header extension (RFC 8285, as Chrome sends audio level) and padding.
    @Test func csrcExtensionAndPaddingAreSkipped() throws {
        var packet: [UInt8] = [0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]  // V=2 P=1 X=1 CC=1
        packet += [0xAA, 0xBB, 0xCC, 0xDD]  // CSRC
        packet += [0xBE, 0xDE, 0x00, 0x01, 0x10, 0xFF, 0x00, 0x00]  // extension, one word
        packet += [9, 9, 9, 9, 9]  // payload
        packet += [0, 0, 3]  // three bytes of padding
        let h = try packet.withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(h.csrcCount == 1 && h.hasExtension)
        #expect(h.headerLength == 24 && h.payloadLength == 5 && h.paddingLength == 3)
    }

    @Test func malformedPacketsAreTypedErrors() {
        #expect(throws: RTPError.tooShort) { try [UInt8](repeating: 0x80, count: 11).withUnsafeBytes { try RTPHeader(parsing: $0) } }
        #expect(throws: RTPError.badVersion) { try [UInt8](repeating: 0x40, count: 12).withUnsafeBytes { try RTPHeader(parsing: $0) } }
        // 15 CSRCs announced, none present.
        #expect(throws: RTPError.tooShort) { try ([0x8F] + [UInt8](repeating: 0, count: 20)).withUnsafeBytes { try RTPHeader(parsing: $0) } }
        // Padding longer than the payload.
        #expect(throws: RTPError.badPadding) { try ([0xA0] + [UInt8](repeating: 0, count: 11) + [1, 200]).withUnsafeBytes { try RTPHeader(parsing: $0) } }
        #expect(throws: RTPError.badPadding) { try ([0xA0] + [UInt8](repeating: 0, count: 11) + [1, 0]).withUnsafeBytes { try RTPHeader(parsing: $0) } }
    }

    @Test func rewriteInPlace() throws {
        var packet = RTPHeader(payloadType: 0, sequenceNumber: 1, timestamp: 2, ssrc: 3).packet(payload: [7])
        packet.withUnsafeMutableBytes { RTPHeader.rewrite($0, marker: true, payloadType: 8, sequenceNumber: 100, timestamp: 200, ssrc: 300) }
        let h = try packet.withUnsafeBytes { try RTPHeader(parsing: $0) }
        #expect(h.marker && h.payloadType == 8 && h.sequenceNumber == 100 && h.timestamp == 200 && h.ssrc == 300 && packet.last == 7)
    }

    /// RFC 5761 §4: RTCP types 200–207 land in 192–223 of the second byte; RTP audio does not.
    @Test func rtcpIsToldFromRTPByTheSecondByte() {
        #expect(([0x80, 200] as [UInt8]).withUnsafeBytes { isRTCP($0) })
        #expect(([0x81, 205] as [UInt8]).withUnsafeBytes { isRTCP($0) })
        #expect(!([0x80, 111] as [UInt8]).withUnsafeBytes { isRTCP($0) })
        #expect(!([0x80, 0x80 | 0] as [UInt8]).withUnsafeBytes { isRTCP($0) })
    }
}

@Suite("RTCP")
struct RTCPTests {
    @Test func compoundPacketRoundTrips() throws {
        let block = ReportBlock(ssrc: 0x0102_0304, fractionLost: 25, cumulativeLost: -3, extendedHighestSequence: 0x0001_0010, jitter: 77, lastSenderReport: 0xAABB_CCDD, delaySinceLastSenderReport: 65536)
        let packets: [RTCPPacket] = [
            .senderReport(ssrc: 42, sender: SenderInfo(ntpTimestamp: 0x1122_3344_5566_7788, rtpTimestamp: 160, packetCount: 10, octetCount: 1600), reports: [block]),
            .sourceDescription([SDESChunk(ssrc: 42, items: [.cname("tandem@example")])]),
            .receiverReport(ssrc: 43, reports: []),
            .genericNACK(sender: 1, media: 2, entries: [NACKEntry(packetID: 100, lostBitmask: 0b101)]),
            .pictureLossIndication(sender: 1, media: 2),
            .fullIntraRequest(sender: 1, entries: [.init(ssrc: 2, sequenceNumber: 9)]),
            .goodbye(ssrcs: [42], reason: Array("bye".utf8)),
            .other(count: 3, type: 204, body: [0, 0, 0, 42, 0x41, 0x42, 0x43, 0x44]),
            // A body that is not word-aligned travels with RTCP padding (found by the fuzzer).
            .other(count: 17, type: 0, body: [0x6E]),
        ]
        let bytes = RTCPPacket.serializeCompound(packets)
        #expect(bytes.count % 4 == 0)
        let parsed = try bytes.withUnsafeBytes { try RTCPPacket.parseCompound($0) }
        #expect(parsed == packets)
        #expect(NACKEntry(packetID: 100, lostBitmask: 0b101).sequenceNumbers == [100, 101, 103])
    }

    /// The compound a receive-only browser sends: RR with one block, then SDES with its CNAME.
    @Test func receiverReportWithCNAME() throws {
        let bytes: [UInt8] = [
            0x81, 0xC9, 0x00, 0x07, 0x3C, 0x5E, 0x1A, 0x01, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x81, 0xCA, 0x00, 0x06, 0x3C, 0x5E, 0x1A, 0x01, 0x01, 0x10, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
            0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x00, 0x00,
        ]
        let parsed = try bytes.withUnsafeBytes { try RTCPPacket.parseCompound($0) }
        guard case .receiverReport(let ssrc, let reports) = parsed[0], case .sourceDescription(let chunks) = parsed[1] else {
            Issue.record("unexpected \(parsed)")
            return
        }
        #expect(ssrc == 0x3C5E_1A01 && reports.first?.ssrc == 0x1122_3344 && reports.first?.extendedHighestSequence == 0x1234 && reports.first?.jitter == 5)
        #expect(chunks.first?.items.first == SDESItem(type: 1, text: Array("abcdefghijklmnop".utf8)))
    }

    @Test func malformedCompoundsAreTypedErrors() {
        func parse(_ bytes: [UInt8]) throws(RTPError) -> [RTCPPacket] {
            let result = bytes.withUnsafeBytes { b in Result { () throws(RTPError) in try RTCPPacket.parseCompound(b) } }
            return try result.get()
        }
        #expect(throws: RTPError.badLength) { try parse([0x80, 0xC8, 0x00, 0x10, 0, 0, 0, 0]) }
        #expect(throws: RTPError.badVersion) { try parse([0x40, 0xC8, 0x00, 0x00]) }
        #expect(throws: RTPError.tooShort) { try parse([0x80, 0xC8, 0x00]) }
        // An RR that announces 5 blocks and carries none.
        #expect(throws: RTPError.badLength) { try parse([0x85, 0xC9, 0x00, 0x01, 0, 0, 0, 1]) }
        // An SDES item running past the packet.
        #expect(throws: RTPError.badLength) { try parse([0x81, 0xCA, 0x00, 0x02, 0, 0, 0, 1, 1, 40, 0x41, 0x42]) }
    }
}

@Suite struct QualityEstimateTests {
    @Test func cleanLoopbackCallScoresNearTheG711Ceiling() {
        let mos = QualityEstimate.mos(jitterMs: 1, lossFraction: 0, roundTripMs: 1)
        #expect(mos > 4.3 && mos <= 4.5)
    }

    @Test func lossAndDelayLowerTheScore() {
        let clean = QualityEstimate.mos(jitterMs: 5, lossFraction: 0, roundTripMs: 40)
        let lossy = QualityEstimate.mos(jitterMs: 5, lossFraction: 0.05, roundTripMs: 40)
        let slow = QualityEstimate.mos(jitterMs: 5, lossFraction: 0, roundTripMs: 600)
        #expect(lossy < clean - 0.5)
        #expect(slow < clean - 0.3)
        #expect(QualityEstimate.mos(jitterMs: 0, lossFraction: 1, roundTripMs: 0) < 1.5)  // nothing arrives: "bad"
    }
}
