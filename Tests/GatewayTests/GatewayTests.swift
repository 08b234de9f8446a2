import Datapath
import Foundation
import G711
import Media
import SDP
import Synchronization
import Testing

@testable import Gateway

@Suite struct SignallingTests {
    @Test func parsesEveryBrowserMessage() throws {
        #expect(try BrowserMessage.parse(#"{"type":"call","call":"c1","to":"1002","sdp":"v=0"}"#) == .call(call: "c1", to: "1002", sdp: "v=0"))
        #expect(try BrowserMessage.parse(#"{"type":"answer","call":"in-1","sdp":"v=0"}"#) == .answer(call: "in-1", sdp: "v=0"))
        #expect(try BrowserMessage.parse(#"{"type":"hangup","call":"c1"}"#) == .hangup(call: "c1", code: nil))
        #expect(try BrowserMessage.parse(#"{"type":"hangup","call":"c1","code":603}"#) == .hangup(call: "c1", code: 603))
        #expect(try BrowserMessage.parse(#"{"type":"dtmf","call":"c1","digits":"12a#"}"#) == .dtmf(call: "c1", digits: "12A#"))
        #expect(try BrowserMessage.parse(#"{"type":"hold","call":"c1","extra":[1,2]}"#) == .hold(call: "c1"))
        #expect(try BrowserMessage.parse(#"{"type":"ping","time":12.5}"#) == .ping(time: 12.5))
    }

    @Test(arguments: [
        ("[1,2]", "bad-message"), ("not json", "bad-message"), (#"{"call":"x"}"#, "bad-message"),
        (#"{"type":"dial"}"#, "unknown-type"), (#"{"type":"call","sdp":"v=0"}"#, "bad-message"),
        (#"{"type":"call","call":"c1"}"#, "bad-message"), (#"{"type":"dtmf","call":"c1","digits":"12x"}"#, "bad-message"),
        (#"{"type":"hangup","call":"c1","code":200}"#, "bad-message"),
    ])
    func refusesMalformedFrames(text: String, code: String) {
        #expect(throws: SignallingError.self) { try BrowserMessage.parse(text) }
        do { _ = try BrowserMessage.parse(text) } catch { #expect(error.code == code) }
    }

    @Test func refusesOversizedFrame() {
        let big = #"{"type":"call","call":"c","sdp":""# + String(repeating: "a", count: BrowserMessage.maximumBytes) + #""}"#
        do { _ = try BrowserMessage.parse(big); Issue.record("parsed") } catch { #expect(error.code == "bad-message") }
    }

    @Test func encodesGatewayMessages() {
        #expect(GatewayMessage.welcome(session: "s1", extension: nil, guest: true, heartbeat: 20).json
            == #"{"extension":null,"guest":true,"heartbeat":20,"session":"s1","type":"welcome","version":1}"#)
        #expect(GatewayMessage.ended(call: "c1", code: nil, reason: "bye").json == #"{"call":"c1","code":null,"reason":"bye","type":"ended"}"#)
        #expect(GatewayMessage.ended(call: "c1", code: 486, reason: "Busy Here").json == #"{"call":"c1","code":486,"reason":"Busy Here","type":"ended"}"#)
        #expect(GatewayMessage.error(SignallingError("unknown-call", "no call x", call: "x")).json
            == #"{"call":"x","code":"unknown-call","message":"no call x","type":"error"}"#)
        #expect(GatewayMessage.progress(call: "c", code: 183, early: true).json == #"{"call":"c","code":183,"early":true,"type":"progress"}"#)
    }
}

@Suite struct BridgedCallStateTests {
    @Test func outgoingCallThroughEarlyMediaToBye() {
        var call = BridgedCallState(call: "c1", direction: .outgoing)
        #expect(call.handle(.sipProgress(code: 180, earlyMedia: false)) == [.toBrowser(.progress(call: "c1", code: 180, early: false))])
        #expect(call.phase == .calling)
        #expect(call.handle(.sipProgress(code: 183, earlyMedia: true)) == [.toBrowser(.progress(call: "c1", code: 183, early: true))])
        #expect(call.phase == .early)
        #expect(call.handle(.sipAnswered) == [.toBrowser(.answered(call: "c1"))])
        #expect(call.handle(.hold) == [.reinviteSIP(.sendonly), .toBrowser(.held(call: "c1", local: true, remote: false))])
        #expect(call.handle(.hold) == [])  // already held
        #expect(call.handle(.resume) == [.reinviteSIP(.sendrecv), .toBrowser(.held(call: "c1", local: false, remote: false))])
        #expect(call.handle(.sipEnded(code: nil, reason: "remote hangup")) == [.endMedia, .toBrowser(.ended(call: "c1", code: nil, reason: "remote hangup"))])
        #expect(call.isEnded)
        #expect(call.handle(.browserHangup(code: nil)) == [])  // nothing after the end
    }

    @Test func aRestartEndsCallsWithByeOrA503() {
        var confirmed = BridgedCallState(call: "c8", direction: .outgoing)
        _ = confirmed.handle(.sipAnswered)
        #expect(confirmed.handle(.serviceEnding(reason: "Tandem is restarting"))
            == [.hangUpSIP, .endMedia, .toBrowser(.ended(call: "c8", code: nil, reason: "Tandem is restarting"))])
        var ringing = BridgedCallState(call: "c9", direction: .incoming)
        #expect(ringing.handle(.serviceEnding(reason: "Tandem is restarting")).first == .rejectSIP(code: 503, reason: "Service Unavailable"))
        #expect(ringing.isEnded)
    }

    @Test func outgoingCallRefusedByPlatform() {
        var call = BridgedCallState(call: "c2", direction: .outgoing)
        #expect(call.handle(.sipEnded(code: 486, reason: "Busy Here")) == [.endMedia, .toBrowser(.ended(call: "c2", code: 486, reason: "Busy Here"))])
    }

    @Test func browserHangsUpBeforeAnswer() {
        var call = BridgedCallState(call: "c3", direction: .outgoing)
        let actions = call.handle(.browserHangup(code: nil))
        #expect(actions.first == .hangUpSIP)  // CANCEL or BYE, as the dialog stands
        #expect(actions.contains(.endMedia))
    }

    @Test func incomingCallAnsweredThenMediaExpires() {
        var call = BridgedCallState(call: "in-1", direction: .incoming)
        #expect(call.handle(.hold) == [])  // not before it is confirmed
        #expect(call.handle(.browserAnswered) == [])
        #expect(call.phase == .answering)
        #expect(call.handle(.mediaStarted) == [.acceptSIP, .toBrowser(.answered(call: "in-1"))])
        #expect(call.handle(.mediaEnded(reason: "consent_expired")) == [.hangUpSIP, .toBrowser(.ended(call: "in-1", code: nil, reason: "consent_expired"))])
    }

    @Test func incomingCallRejectedOrAbandoned() {
        var rejected = BridgedCallState(call: "in-2", direction: .incoming)
        #expect(rejected.handle(.browserHangup(code: 603)).first == .rejectSIP(code: 603, reason: "Decline"))
        var busy = BridgedCallState(call: "in-3", direction: .incoming)
        #expect(busy.handle(.browserHangup(code: nil)).first == .rejectSIP(code: 486, reason: "Busy Here"))
        var gone = BridgedCallState(call: "in-4", direction: .incoming)
        #expect(gone.handle(.browserGone).first == .rejectSIP(code: 480, reason: "Temporarily Unavailable"))
        var cancelled = BridgedCallState(call: "in-5", direction: .incoming)
        #expect(cancelled.handle(.sipEnded(code: nil, reason: "cancelled")) == [.endMedia, .toBrowser(.ended(call: "in-5", code: nil, reason: "cancelled"))])
        var failed = BridgedCallState(call: "in-6", direction: .incoming)
        _ = failed.handle(.browserAnswered)
        #expect(failed.handle(.mediaFailed(reason: "bad answer")).first == .rejectSIP(code: 488, reason: "Not Acceptable Here"))
    }
}

@Suite struct SIPOfferAnswerTests {
    static let sippOffer = """
    v=0\r
    o=user1 53655765 2353687637 IN IP4 127.0.0.1\r
    s=-\r
    c=IN IP4 127.0.0.1\r
    t=0 0\r
    m=audio 6000 RTP/AVP 8 0 96\r
    a=rtpmap:8 PCMA/8000\r
    a=rtpmap:0 PCMU/8000\r
    a=rtpmap:96 telephone-event/8000\r
    a=fmtp:96 0-15\r
    a=sendrecv\r

    """

    /// baresip's offer with `mediaenc srtp-mand`: RTP/SAVP and one SDES line.
    static let savpOffer = sippOffer.replacingOccurrences(of: "RTP/AVP", with: "RTP/SAVP")
        .replacingOccurrences(of: "a=sendrecv\r\n", with: "a=sendrecv\r\na=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n")

    @Test func srtpModesShapeTheOffer() throws {
        let key = [UInt8](repeating: 9, count: 30)
        let off = SIPOfferAnswer.offer(local: .init(address: "127.0.0.1", port: 30000), codecs: [.pcmu]).media[0]
        #expect(off.proto == "RTP/AVP" && off.cryptoAttributes.isEmpty)
        let preferred = SIPOfferAnswer.offer(local: .init(address: "127.0.0.1", port: 30000, srtpMode: .preferred, srtpKey: key), codecs: [.pcmu]).media[0]
        #expect(preferred.proto == "RTP/AVP" && preferred.cryptoAttributes == [SDESCrypto(tag: 1, keyAndSalt: key)])
        let required = SIPOfferAnswer.offer(local: .init(address: "127.0.0.1", port: 30000, srtpMode: .required, srtpKey: key), codecs: [.pcmu]).media[0]
        #expect(required.proto == "RTP/SAVP" && required.cryptoAttributes.count == 1)
        #expect(SIPOfferAnswer.Local(address: "127.0.0.1", port: 1).srtpKey != SIPOfferAnswer.Local(address: "127.0.0.1", port: 1).srtpKey, "a key per call")
    }

    @Test func srtpOffersAreAnsweredOrRefusedAsTheModeSays() throws {
        let key = [UInt8](repeating: 3, count: 30)
        func answer(_ offer: String, _ mode: SIPSRTPMode) throws(SIPOfferAnswerError) -> (SessionDescription, SIPAudio) {
            try SIPOfferAnswer.answer(text: offer, local: .init(address: "127.0.0.1", port: 30000, srtpMode: mode, srtpKey: key), preference: [.pcmu])
        }
        // Secure only: a plain offer is refused (the caller gets 488), an SDES one is answered under its tag.
        #expect(throws: SIPOfferAnswerError.srtpRequired) { try answer(Self.sippOffer, .required) }
        let (sdp, audio) = try answer(Self.savpOffer, .required)
        #expect(sdp.media[0].proto == "RTP/SAVP" && sdp.media[0].cryptoAttributes == [SDESCrypto(tag: 7, keyAndSalt: key)])
        #expect(audio.srtp == SIPSRTPKeys(outbound: key, inbound: try SDESCrypto(parsing: "7 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR").keyAndSalt))
        // Nonsecure only: RTP/SAVP cannot be answered with RTP.
        #expect(throws: SIPOfferAnswerError.srtpOff) { try answer(Self.savpOffer, .off) }
        // Preferred: SRTP when offered, plain otherwise.
        #expect(try answer(Self.savpOffer, .preferred).1.srtp != nil)
        let plain = try answer(Self.sippOffer, .preferred)
        #expect(plain.1.srtp == nil && plain.0.media[0].cryptoAttributes.isEmpty)
        // An SAVP offer with only an unusable line (another suite).
        let other = Self.savpOffer.replacingOccurrences(of: "HMAC_SHA1_80", with: "HMAC_SHA1_32")
        #expect(throws: SIPOfferAnswerError.noUsableCrypto) { try answer(other, .preferred) }
    }

    @Test func answersToOurSRTPOfferFallBackOnlyWhenPreferred() throws {
        let key = [UInt8](repeating: 5, count: 30)
        let withCrypto = Self.sippOffer.replacingOccurrences(of: "a=sendrecv\r\n", with: "a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n")
        let required = SIPOfferAnswer.Local(address: "127.0.0.1", port: 30000, srtpMode: .required, srtpKey: key)
        let preferred = SIPOfferAnswer.Local(address: "127.0.0.1", port: 30000, srtpMode: .preferred, srtpKey: key)
        #expect(try SIPOfferAnswer.apply(answer: withCrypto, offered: [.pcmu], local: required).srtp?.outbound == key)
        #expect(throws: SIPOfferAnswerError.srtpRequired) { try SIPOfferAnswer.apply(answer: Self.sippOffer, offered: [.pcmu], local: required) }
        #expect(try SIPOfferAnswer.apply(answer: Self.sippOffer, offered: [.pcmu], local: preferred).srtp == nil)
        #expect(try SIPOfferAnswer.apply(answer: withCrypto, offered: [.pcmu]).srtp == nil, "without SRTP offered, a=crypto is ignored")
    }

    @Test func answersWithThePreferredLawAndTheOfferedEventType() throws {
        let local = SIPOfferAnswer.Local(address: "127.0.0.1", port: 30000, sessionID: 7)
        let (answer, audio) = try SIPOfferAnswer.answer(text: Self.sippOffer, local: local, preference: [.pcmu, .pcma])
        #expect(audio.codec == .pcmu)
        #expect(audio.telephoneEventPayloadType == 96)
        #expect(audio.direction == .sendrecv)
        #expect(audio.remote?.description == "127.0.0.1:6000")
        let m = try #require(answer.media.first)
        #expect(m.formats == ["0", "96"])
        #expect(m.port == 30000)
        #expect(m.proto == "RTP/AVP")
        #expect(answer.connection?.address == "127.0.0.1")
    }

    @Test func answersHoldWithRecvonly() throws {
        let held = Self.sippOffer.replacingOccurrences(of: "a=sendrecv", with: "a=sendonly")
        let (answer, audio) = try SIPOfferAnswer.answer(text: held, local: .init(address: "127.0.0.1", port: 30002), preference: [.pcma])
        #expect(audio.direction == .recvonly)
        #expect(audio.codec == .pcma)
        #expect(answer.media.first?.direction == .recvonly)
        // RFC 2543 hold: c=0.0.0.0 gives no address to send to.
        let old = Self.sippOffer.replacingOccurrences(of: "c=IN IP4 127.0.0.1", with: "c=IN IP4 0.0.0.0")
        #expect(try SIPOfferAnswer.answer(text: old, local: .init(address: "127.0.0.1", port: 30002), preference: [.pcma]).audio.remote == nil)
    }

    @Test func offersAndAppliesAnswer() throws {
        let offer = SIPOfferAnswer.offer(local: .init(address: "10.0.0.5", port: 31000), codecs: [.pcma], direction: .sendonly)
        let text = offer.serialized
        #expect(text.contains("m=audio 31000 RTP/AVP 8 101\r\n"))
        #expect(text.contains("a=rtpmap:101 telephone-event/8000\r\n"))
        #expect(text.contains("a=sendonly\r\n"))
        let answer = Self.sippOffer.replacingOccurrences(of: "a=sendrecv", with: "a=recvonly")
        let audio = try SIPOfferAnswer.apply(answer: answer, offered: [.pcma], direction: .sendonly)
        #expect(audio.codec == .pcma)
        #expect(audio.direction == .sendonly)
    }

    /// Opus toward the platform (RFC 7587): offered first with its fmtp, taken under the
    /// offerer's payload type, and never when it is not enabled.
    @Test func opusIsOfferedAndTakenOnlyWhenEnabled() throws {
        let offer = SIPOfferAnswer.offer(local: .init(address: "10.0.0.5", port: 31000), codecs: [.opus, .pcmu, .pcma]).serialized
        #expect(offer.contains("m=audio 31000 RTP/AVP 111 0 8 101\r\n"))
        #expect(offer.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"))
        let opusOffer = Self.sippOffer.replacingOccurrences(of: "RTP/AVP 8 0 96", with: "RTP/AVP 109 0 96")
            .replacingOccurrences(of: "a=rtpmap:8 PCMA/8000", with: "a=rtpmap:109 opus/48000/2")
        let local = SIPOfferAnswer.Local(address: "127.0.0.1", port: 30000)
        let (answer, audio) = try SIPOfferAnswer.answer(text: opusOffer, local: local, preference: [.opus, .pcmu])
        #expect(audio.codec == .opus && audio.payloadType == 109)
        #expect(answer.media[0].formats == ["109", "96"] && answer.serialized.contains("a=rtpmap:109 opus/48000/2"))
        // G.711 preferred: the law, though the offer lists Opus first.
        #expect(try SIPOfferAnswer.answer(text: opusOffer, local: local, preference: [.pcmu, .opus]).audio.codec == .pcmu)
        // Opus not enabled: an Opus-only offer has nothing in common.
        let opusOnly = opusOffer.replacingOccurrences(of: "RTP/AVP 109 0 96", with: "RTP/AVP 109 96")
        #expect(throws: SIPOfferAnswerError.noCommonCodec) { try SIPOfferAnswer.answer(text: opusOnly, local: local, preference: [.pcmu, .pcma]) }
        // Opus at another clock is not Opus.
        #expect(throws: SIPOfferAnswerError.noCommonCodec) {
            try SIPOfferAnswer.answer(text: opusOnly.replacingOccurrences(of: "opus/48000/2", with: "opus/16000"), local: local, preference: [.opus])
        }
        // Our offer of Opus and PCMU answered with Opus under the answerer's number, or with PCMU.
        #expect(try SIPOfferAnswer.apply(answer: opusOffer, offered: [.opus, .pcmu]) == SIPAudio(codec: .opus, payloadType: 109, telephoneEventPayloadType: 96,
                                                                                                   remote: DatagramAddress(ipv4: 0x7F00_0001, port: 6000)))
        #expect(try SIPOfferAnswer.apply(answer: Self.sippOffer, offered: [.opus, .pcmu]).codec == .pcmu)
        #expect(throws: SIPOfferAnswerError.noCommonCodec) { try SIPOfferAnswer.apply(answer: opusOnly, offered: [.pcmu, .pcma]) }
    }

    /// The bridge a call gets: the same codec on both sides passes through, the browser's
    /// Opus toward G.711 is transcoded, and the browser's G.711 cannot reach Opus.
    @Test func bridgeFollowsTheSIPCodec() throws {
        let loop = try DatapathLoop(name: "bridge-test")
        let core = MediaLoopCore(loop: loop, metrics: MediaMetrics(), opus: MediaConfiguration().opus, governs: false, sharedPort: nil)
        let browser = BridgeSide(audioPayloadType: 111, telephoneEventPayloadType: 110, clockRate: 48000, ssrc: 1)
        let opus = BridgeSide(audioPayloadType: 109, telephoneEventPayloadType: 101, clockRate: 48000, telephoneEventClockRate: 8000, ssrc: 2)
        let g711 = BridgeSide(audioPayloadType: 8, telephoneEventPayloadType: 101, clockRate: 8000, ssrc: 2)
        let configuration = MediaConfiguration()
        let passed = try core.makeBridge(browserCodec: .opus, browser: browser, sip: opus, sipCodec: .opus)
        #expect(passed.mode == .passThrough && passed.encoder == nil)
        let transcoded = try core.makeBridge(browserCodec: .opus, browser: browser, sip: g711, sipCodec: .pcma)
        #expect(transcoded.mode == .transcode && transcoded.law == .aLaw && transcoded.encoder != nil)
        #expect(throws: MediaError.self) {
            try core.makeBridge(browserCodec: .pcmu, browser: g711, sip: opus, sipCodec: .opus)
        }
        // The engine's SIP side: a browser's G.711 keeps its own law whatever the SIP leg said first.
        let engine = try MediaEngine(configuration: configuration, logger: .init(label: "test"))
        #expect(engine.sipSide(for: .pcma, sip: SIPAudio(codec: .opus)).codec == .pcma)
        #expect(engine.sipSide(for: .opus, sip: SIPAudio(codec: .opus, payloadType: 109)).payloadType == 109)
        #expect(engine.sipSide(for: .opus, sip: nil).codec == .pcmu)
    }

    @Test func refusesUnusableDescriptions() {
        let local = SIPOfferAnswer.Local(address: "127.0.0.1", port: 30000)
        #expect(throws: SIPOfferAnswerError.noCommonCodec) {
            try SIPOfferAnswer.answer(text: Self.sippOffer.replacingOccurrences(of: "RTP/AVP 8 0 96", with: "RTP/AVP 9 96"), local: local, preference: [.pcmu])
        }
        #expect(throws: SIPOfferAnswerError.noAudio) {
            try SIPOfferAnswer.answer(text: Self.sippOffer.replacingOccurrences(of: "m=audio 6000", with: "m=audio 0"), local: local, preference: [.pcmu])
        }
        #expect(throws: SIPOfferAnswerError.badConnectionAddress("example.com")) {
            try SIPOfferAnswer.answer(text: Self.sippOffer.replacingOccurrences(of: "c=IN IP4 127.0.0.1", with: "c=IN IP4 example.com"), local: local, preference: [.pcmu])
        }
        #expect(throws: SIPOfferAnswerError.self) { try SIPOfferAnswer.answer(text: "garbage", local: local, preference: [.pcmu]) }
        // Our offer of PCMU answered with PCMA only.
        #expect(throws: SIPOfferAnswerError.noCommonCodec) {
            try SIPOfferAnswer.apply(answer: Self.sippOffer.replacingOccurrences(of: "RTP/AVP 8 0 96", with: "RTP/AVP 8"), offered: [.pcmu])
        }
    }

    @Test func relaysRTPBothWaysAndLatchesThePeerPort() throws {
        let loop = try DatapathLoop(name: "rtp-test")
        loop.start()
        defer { Task { await loop.stop() } }
        let any = DatagramAddress(ipv4: 0x7F00_0001, port: 0)
        let legSocket = try UDPSocket(binding: any)
        let peer = try UDPSocket(binding: any)
        let leg = LoopBound(SIPRTPLeg(socket: legSocket, audio: SIPAudio(law: .muLaw, remote: peer.localAddress)), loop: loop)
        let received = Mutex<[Int]>([])
        #expect(loop.execute {
            try? leg.value.attach(loop: loop, receiveBatch: ReceiveBatch(capacity: 4, maximumDatagramSize: 2048)) { packet in received.withLock { $0.append(packet.count) } }
        })
        func waitUntil(_ done: () -> Bool) {
            let deadline = ContinuousClock.now + .seconds(2)
            while !done() && ContinuousClock.now < deadline { usleep(5000) }
        }
        var bytes = [UInt8](repeating: 0, count: 172)
        bytes[0] = 0x80
        let rtp = bytes
        #expect(peer.send(rtp, to: legSocket.localAddress).isSent)
        #expect(peer.send([1, 2, 3], to: legSocket.localAddress).isSent)  // not RTP: refused
        waitUntil { received.withLock { $0.count >= 1 } }
        #expect(received.withLock { $0 } == [172])
        _ = loop.execute { rtp.withUnsafeBytes { leg.value.receive($0, send: { _ in }) } }
        let back = try #require(peer.receive(waitingMilliseconds: 2000))
        #expect(back.bytes.count == 172)
        // The peer's RTP now comes from another port of its address (a NAT): the leg latches
        // onto it and sends there; another address is refused.
        let moved = try UDPSocket(binding: any)
        let stranger = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0002, port: 0))
        #expect(stranger.send(Array(rtp.prefix(100)), to: legSocket.localAddress).isSent)
        #expect(moved.send(Array(rtp.prefix(160)), to: legSocket.localAddress).isSent)
        waitUntil { received.withLock { $0.count >= 2 } }
        #expect(received.withLock { $0 } == [172, 160])
        _ = loop.execute { rtp.withUnsafeBytes { leg.value.receive($0, send: { _ in }) } }
        #expect(try #require(moved.receive(waitingMilliseconds: 2000)).bytes.count == 172)
        let counters = Mutex<SIPRTPLeg.Counters?>(nil)
        _ = loop.execute { counters.withLock { $0 = leg.value.counters } }
        waitUntil { counters.withLock { $0 != nil } }
        let c = try #require(counters.withLock { $0 })
        #expect((c.sent, c.received, c.refused) == (2, 2, 2))
        _ = loop.execute { leg.value.close() }
    }

    @Test func telephoneEventsBecomeDigitsWhenDTMFGoesByInfo() throws {
        let socket = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: 0))
        let leg = SIPRTPLeg(socket: socket, audio: SIPAudio(law: .muLaw, remote: DatagramAddress(ipv4: 0x7F00_0001, port: 9)))
        var digits: [String] = []
        leg.onTelephoneEvent = { digits.append($0) }
        func event(_ code: UInt8, timestamp: UInt32, end: Bool) -> [UInt8] {
            var p = [UInt8](repeating: 0, count: 16)
            p[0] = 0x80
            p[1] = SIPOfferAnswer.telephoneEventPayloadType
            withUnsafeBytes(of: timestamp.bigEndian) { for i in 0..<4 { p[4 + i] = $0[i] } }
            p[12] = code
            p[13] = end ? 0x80 : 0
            return p
        }
        // Each event's packets (start, updates, three ends) share its timestamp: one digit each.
        for (code, ts) in [(UInt8(1), UInt32(160)), (11, 800), (12, 1600)] {
            for end in [false, false, true, true, true] { event(code, timestamp: ts, end: end).withUnsafeBytes { leg.receive($0, send: { _ in }) } }
        }
        event(16, timestamp: 2400, end: false).withUnsafeBytes { leg.receive($0, send: { _ in }) }  // flash: no digit
        #expect(digits == ["1", "#", "A"])
        #expect(leg.counters.sent == 0, "events are not sent as RTP")
        leg.close()
    }
}
