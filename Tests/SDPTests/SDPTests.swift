import Foundation
import SDP
import Testing

/// A fixture captured from a real stack (see Fixtures/README.md).
func fixture(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
    return try String(contentsOf: url, encoding: .utf8)
}

@Suite("SDP")
struct SDPTests {
    @Test func chromiumOfferParses() throws {
        let offer = try SessionDescription(parsing: try fixture("chromium-offer.sdp"))
        #expect(offer.groups.first?.semantics == "BUNDLE")
        let audio = try #require(offer.media.first { $0.media == "audio" })
        #expect(audio.proto == "UDP/TLS/RTP/SAVPF")
        #expect(audio.isRTCPMultiplexed)
        #expect(audio.setup == .actpass)
        #expect(offer.iceCredentials(of: audio) != nil)
        #expect(offer.fingerprints(of: audio).first?.hashFunction == "sha-256")
        #expect(offer.fingerprints(of: audio).first?.bytes.count == 32)
        let opus = try #require(audio.rtpMaps.first { $0.matches("opus", clockRate: 48000) })
        #expect(opus.channels == 2)
        #expect(audio.formatParameters(of: opus.payloadType)?.parameters["useinbandfec"] == "1")
        #expect(audio.rtpMap(of: 0)?.encodingName == "PCMU")
        #expect(audio.rtpMaps.contains { $0.matches("telephone-event", clockRate: 8000) })
        #expect(audio.rtpMaps.contains { $0.matches("telephone-event", clockRate: 48000) })
        #expect(!audio.extensionMaps.isEmpty)
        #expect(offer.direction(of: audio) == .sendrecv)
        #expect(!audio.ssrcs.isEmpty || audio.mediaStreamID != nil)
    }

    /// Firefox puts the fingerprint and direction at session level, writes candidates in upper
    /// case without extensions, adds RTCP (component 2) and ::1 candidates and end-of-candidates.
    @Test func firefoxOfferParses() throws {
        let offer = try SessionDescription(parsing: try fixture("firefox-offer.sdp"))
        #expect(offer.origin.username.hasPrefix("mozilla"))
        let audio = try #require(offer.media.first { $0.media == "audio" })
        #expect(audio.proto == "UDP/TLS/RTP/SAVPF" && audio.isRTCPMultiplexed && audio.setup == .actpass)
        #expect(audio.mid == "0" && offer.groups.first?.mids == ["0"])
        #expect(offer.iceCredentials(of: audio) != nil)
        #expect(offer.fingerprints(of: audio).first?.bytes.count == 32)  // from the session level
        #expect(offer.direction(of: audio) == .sendrecv)
        let opus = try #require(audio.rtpMaps.first { $0.matches("opus", clockRate: 48000) })
        #expect(opus.payloadType == 109 && opus.channels == 2)
        #expect(audio.formatParameters(of: 109)?.parameters["useinbandfec"] == "1")
        #expect(audio.rtpMap(of: 101)?.matches("telephone-event", clockRate: 8000) == true)
        #expect(audio.candidates.count == 8)
        #expect(audio.candidates.contains { $0.component == 2 && $0.address == "127.0.0.1" })
        #expect(audio.candidates.contains { $0.address == "::1" })
        #expect(audio.candidates.contains { $0.transport.lowercased() == "tcp" })
        #expect(audio.extensionMaps.count == 4)
    }

    /// Every fixture serializes back to the same lines, and parses again to the same value.
    @Test(arguments: ["chromium-offer.sdp", "chromium-video-offer.sdp", "aiortc-offer.sdp", "firefox-offer.sdp"])
    func fixturesRoundTrip(name: String) throws {
        let text = try fixture(name)
        let parsed = try SessionDescription(parsing: text)
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
        let again = parsed.serialized.split(separator: "\r\n").map(String.init)
        #expect(Set(lines) == Set(again))
        #expect(lines.count == again.count)
        #expect(try SessionDescription(parsing: parsed.serialized) == parsed)
    }

    @Test func candidatesParseAndSerialize() throws {
        let text = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 rport 46154 generation 0 ufrag EsAw network-cost 999"
        let c = try ICECandidate(parsing: text)
        #expect(c.foundation == "842163049" && c.component == 1 && c.transport == "udp" && c.priority == 1_677_729_535)
        #expect(c.address == "203.0.113.7" && c.port == 46154 && c.kind == .srflx && c.relatedAddress == "10.0.0.5" && c.relatedPort == 46154)
        #expect(c.extensions.map(\.name) == ["generation", "ufrag", "network-cost"])
        #expect("candidate:" + c.value == text)
        #expect(throws: SDPError.self) { try ICECandidate(parsing: "1 1 udp 1 1.2.3.4 5 typ bogus") }
        #expect(throws: SDPError.self) { try ICECandidate(parsing: "1 1 udp 1 1.2.3.4 99999 typ host") }
        #expect(throws: SDPError.self) { try ICECandidate(parsing: "1 1 udp 1 1.2.3.4 5 typ host generation") }
    }

    @Test func typedAttributes() {
        #expect(Fingerprint(parsing: "sha-256 AB:cd:01")?.bytes == [0xAB, 0xCD, 0x01])
        #expect(Fingerprint(parsing: "sha-256 ABC:01") == nil)
        #expect(Fingerprint(hashFunction: "SHA-256", bytes: [1, 0xAB]).value == "sha-256 01:AB")
        #expect(RTPMap(parsing: "111 opus/48000/2") == RTPMap(payloadType: 111, encodingName: "opus", clockRate: 48000, channels: 2))
        #expect(RTPMap(parsing: "200 x/1") == nil)
        #expect(FormatParameters(parsing: "111 minptime=10;useinbandfec=1")?.parameters == ["minptime": "10", "useinbandfec": "1"])
        #expect(RTCPFeedback(parsing: "* nack pli")?.value == "* nack pli")
        #expect(SSRCAttribute(parsing: "12345 cname:abc")?.value == "abc")
        #expect(Direction.sendonly.answer() == .recvonly)
        #expect(Direction.inactive.answer() == .inactive)
        #expect(Direction.sendrecv.answer(wanting: .sendonly) == .sendonly)
        #expect(Direction.recvonly.answer(wanting: .recvonly) == .inactive)
    }

    @Test(arguments: [
        ("", SDPError.missingLine(type: "v")),
        ("v=1\r\n", .malformedLine(line: 1, reason: "unsupported version 1")),
        ("o=- 1 1 IN IP4 0.0.0.0\r\n", .missingLine(type: "v")),
        ("v=0\r\ns=-\r\nt=0 0\r\n", .missingLine(type: "o")),
        ("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\nt=0 0\r\n", .malformedLine(line: 2, reason: "o= needs six fields")),
        ("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n", .malformedLine(line: 5, reason: "bad port")),
        ("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\nu=http://x\r\n", .unexpectedLine(line: 6, type: "u")),
        ("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nx\r\n", .malformedLine(line: 5, reason: "not <type>=<value>")),
        ("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nA=b\r\n", .malformedLine(line: 5, reason: "not <type>=<value>")),
        ("v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\n", .missingLine(type: "t")),
    ])
    func malformedDescriptionsAreTypedErrors(text: String, error: SDPError) {
        #expect(throws: error) { try SessionDescription(parsing: text) }
    }

    @Test func limitsAreEnforced() {
        var limits = SessionDescription.Limits()
        limits.maximumMediaSections = 2
        let three = "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\n" + String(repeating: "m=audio 9 RTP/AVP 0\r\n", count: 3)
        #expect(throws: SDPError.tooManyMediaSections(limit: 2)) { try SessionDescription(parsing: three, limits: limits) }
        #expect(throws: SDPError.tooLarge(limit: 65_536)) { try SessionDescription(parsing: String(repeating: "a", count: 70_000)) }
        let long = "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=" + String(repeating: "x", count: 5000) + "\r\nt=0 0\r\n"
        #expect(throws: SDPError.lineTooLong(line: 3)) { try SessionDescription(parsing: long) }
        let lines = "v=0\r\n" + String(repeating: "a=x\r\n", count: 5000)
        #expect(throws: SDPError.tooManyLines(limit: 4096)) { try SessionDescription(parsing: lines) }
    }

    @Test func bareLineFeedsAndPortCountsAreAccepted() throws {
        let text = "v=0\no=- 1 2 IN IP6 ::1\ns=x\nt=0 0\nm=audio 49170/2 RTP/AVP 0 8\nc=IN IP6 ::1\na=sendonly\n"
        let d = try SessionDescription(parsing: text)
        #expect(d.origin.sessionVersion == 2 && d.origin.addressType == "IP6")
        #expect(d.media[0].port == 49170 && d.media[0].numberOfPorts == 2 && d.media[0].payloadTypes == [0, 8])
        #expect(d.media[0].connection?.address == "::1" && d.media[0].direction == .sendonly)
        #expect(d.serialized.contains("m=audio 49170/2 RTP/AVP 0 8\r\n"))
    }
}

@Suite("SDP fuzz regressions")
struct SDPFuzzRegressionTests {
    /// Inputs the SDP fuzzer found (Fixtures/fuzz): whatever parses serializes to text that
    /// parses to the same value.
    @Test(arguments: ["roundtrip-1.bin"])
    func parsedInputsRoundTrip(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz").appendingPathComponent(name)
        let bytes = try [UInt8](Data(contentsOf: url))
        guard let parsed = try? bytes.withUnsafeBufferPointer({ try SessionDescription(parsing: $0) }) else { return }
        let again = try SessionDescription(parsing: parsed.serialized)
        #expect(again.attributes == parsed.attributes)
        #expect(again.otherLines == parsed.otherLines)
        #expect(again.media.count == parsed.media.count)
        for (a, b) in zip(again.media, parsed.media) {
            #expect(a.attributes == b.attributes)
            #expect(a.otherLines == b.otherLines)
            #expect(a.formats == b.formats && a.port == b.port && a.proto == b.proto && a.connection == b.connection)
        }
        #expect(again == parsed)
    }
}

@Suite("SDES a=crypto (RFC 4568)")
struct SDESCryptoTests {
    /// RFC 4568 §9.1's example line.
    static let rfcExample = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"

    @Test func linesParseAndSerialize() throws {
        let key = (0..<30).map { UInt8($0 * 7 & 0xFF) }
        let line = SDESCrypto(tag: 1, keyAndSalt: key)
        let again = try SDESCrypto(parsing: line.value)
        #expect(again == line && again.isUsable)
        let lifetime = try SDESCrypto(parsing: "2 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31")
        #expect(lifetime.tag == 2 && lifetime.lifetime == "2^31" && lifetime.keyAndSalt.count == 30 && lifetime.isUsable)
        #expect(lifetime.value.hasSuffix("inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31"))
        let other = try SDESCrypto(parsing: "3 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")
        #expect(!other.isUsable, "another suite")
        let unencrypted = try SDESCrypto(parsing: "4 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP")
        #expect(!unencrypted.isUsable && unencrypted.sessionParameters == ["UNENCRYPTED_SRTP"])
    }

    @Test func malformedLinesAreTypedErrors() {
        func error(_ value: String) -> SDESCrypto.ParseError? {
            do { _ = try SDESCrypto(parsing: value); return nil } catch { return error }
        }
        #expect(error(Self.rfcExample) == .unsupportedKeyParameters, "an MKI")
        #expect(error("1 AES_CM_128_HMAC_SHA1_80") == .malformed)
        #expect(error("0 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR") == .badTag)
        #expect(error("1234567890 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR") == .badTag)
        #expect(error("1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/key") == .unsupportedKeyParameters)
        #expect(error("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVe*CFCanVmcjkpPywjNWhcYD0mXXtxaVBR") == .badKey)
        #expect(error("1 AES_CM_128_HMAC_SHA1_80 inline:PS1") == .badKey)
        #expect(error("1 AES_CM_128_HMAC_SHA1_80 inline:" + String(repeating: "A", count: 2000)) == .malformed)
    }
}
