import Foundation
import SDP
import Testing
import WebRTC

/// A fixture captured from a real stack (Tests/SDPTests/Fixtures).
func fixture(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SDPTests/Fixtures").appendingPathComponent(name)
    return try String(contentsOf: url, encoding: .utf8)
}

private func local(port: UInt16 = 40000) -> LocalMediaParameters {
    LocalMediaParameters(ice: ICECredentials(usernameFragment: "tand", password: "0123456789012345678901"), fingerprintSHA256: Array(repeating: 0xAB, count: 32),
                         addresses: ["192.0.2.10"], port: port, ssrc: 1234)
}

@Suite("WebRTC offer/answer")
struct OfferAnswerTests {
    @Test func answersChromiumWithOpusAndRejectsOtherSections() throws {
        let offer = try SessionDescription(parsing: try fixture("chromium-video-offer.sdp"))
        let (answer, audio) = try WebRTCOfferAnswer.answer(offer, local: local())
        #expect(audio.codec == .opus)
        #expect(audio.telephoneEventPayloadType != nil)
        #expect(audio.dtlsRole == .server)
        #expect(audio.remoteFingerprints.first?.count == 32)
        #expect(answer.isICELite)
        #expect(answer.media.count == offer.media.count)
        let a = answer.media[0]
        #expect(a.port == 40000 && a.setup == .passive && a.isRTCPMultiplexed && a.mid == offer.media[0].mid)
        #expect(a.rtpMap(of: audio.payloadType)?.matches("opus", clockRate: 48000) == true)
        #expect(a.formatParameters(of: audio.payloadType)?.parameters["maxplaybackrate"] == "8000")
        #expect(a.candidates.first?.address == "192.0.2.10" && a.candidates.first?.kind == .host)
        #expect(a.fingerprints.first?.bytes == Array(repeating: 0xAB, count: 32))
        // Video (and anything else) is refused with port 0 and kept in place, out of the bundle.
        for m in answer.media.dropFirst() { #expect(m.port == 0) }
        #expect(answer.groups.first?.mids == [a.mid!])
        // The answer is itself valid SDP.
        #expect(try SessionDescription(parsing: answer.serialized) == answer)
    }

    @Test func passThroughIsChosenWhenPreferredOrOnlyOffered() throws {
        let offer = try SessionDescription(parsing: try fixture("chromium-offer.sdp"))
        var parameters = local()
        parameters.preferPassThrough = true
        let (_, audio) = try WebRTCOfferAnswer.answer(offer, local: parameters)
        #expect(audio.codec == .pcmu || audio.codec == .pcma)
        #expect(audio.telephoneEventPayloadType.map { pt in offer.media[0].rtpMap(of: pt)?.clockRate == 8000 } ?? true)

        var only = offer
        only.media[0].formats = ["0"]
        let (_, pcmu) = try WebRTCOfferAnswer.answer(only, local: local())
        #expect(pcmu.codec == .pcmu && pcmu.payloadType == 0)
    }

    /// Firefox (ESR 153): session-level fingerprint, Opus at 109, telephone-event/8000,
    /// RTCP candidates and ::1 besides 127.0.0.1.
    @Test func firefoxOfferIsAnswered() throws {
        let offer = try SessionDescription(parsing: try fixture("firefox-offer.sdp"))
        let (answer, audio) = try WebRTCOfferAnswer.answer(offer, local: local())
        #expect(audio.codec == .opus && audio.payloadType == 109)
        #expect(audio.telephoneEventPayloadType == 101 && audio.telephoneEventClockRate == 8000)  // its only telephone-event
        #expect(audio.dtlsRole == .server)
        #expect(audio.remoteFingerprints.first?.count == 32)
        #expect(audio.remoteCandidates.contains { $0.address == "127.0.0.1" })
        let a = answer.media[0]
        #expect(a.port == 40000 && a.setup == .passive && a.isRTCPMultiplexed && a.mid == "0")
        #expect(a.rtpMap(of: 109)?.matches("opus", clockRate: 48000) == true)
        #expect(a.rtpMap(of: 101)?.matches("telephone-event", clockRate: 8000) == true)
        #expect(try SessionDescription(parsing: answer.serialized) == answer)
    }

    @Test func aiortcOfferIsAnswered() throws {
        let offer = try SessionDescription(parsing: try fixture("aiortc-offer.sdp"))
        let (_, audio) = try WebRTCOfferAnswer.answer(offer, local: local())
        #expect(audio.codec == .opus)
    }

    @Test func offersWithoutWhatWebRTCNeedsAreRefused() throws {
        let offer = try SessionDescription(parsing: try fixture("chromium-offer.sdp"))
        var noMux = offer
        noMux.media[0].remove("rtcp-mux")
        #expect(throws: OfferAnswerError.rtcpMuxRequired) { try WebRTCOfferAnswer.answer(noMux, local: local()) }
        var noFingerprint = offer
        noFingerprint.media[0].remove("fingerprint")
        noFingerprint.remove("fingerprint")
        #expect(throws: OfferAnswerError.missingFingerprint) { try WebRTCOfferAnswer.answer(noFingerprint, local: local()) }
        var plain = offer
        plain.media[0].proto = "RTP/AVP"
        #expect(throws: OfferAnswerError.notSecure(proto: "RTP/AVP")) { try WebRTCOfferAnswer.answer(plain, local: local()) }
        var g722 = offer
        g722.media[0].formats = ["9"]
        #expect(throws: OfferAnswerError.noCommonCodec) { try WebRTCOfferAnswer.answer(g722, local: local()) }
    }

    /// Tandem as the offerer (a call from SIP to the browser): offer, answer, negotiation.
    @Test func offerAndApplyAnswer() throws {
        let offer = WebRTCOfferAnswer.offer(local: local())
        let parsed = try SessionDescription(parsing: offer.serialized)
        #expect(parsed.media[0].setup == .actpass)
        #expect(parsed.media[0].rtpMaps.map(\.encodingName) == ["opus", "PCMU", "PCMA", "telephone-event", "telephone-event"])
        // The browser answers like Tandem would (its own fingerprint, active).
        var answer = offer
        answer.media[0].set("setup", "active")
        answer.media[0].formats = ["111", "126"]
        let audio = try WebRTCOfferAnswer.apply(answer: answer, to: offer)
        #expect(audio.codec == .opus && audio.payloadType == 111 && audio.telephoneEventPayloadType == 126 && audio.dtlsRole == .server)
        answer.media[0].set("setup", "actpass")
        #expect(throws: OfferAnswerError.self) { try WebRTCOfferAnswer.apply(answer: answer, to: offer) }
    }
}
