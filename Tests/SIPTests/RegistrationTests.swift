import Testing
@testable import SIP

@Suite("Registration")
struct RegistrationTests {
    static let configuration = RegistrationConfiguration(
        addressOfRecord: "sip:3001@pbx.example.com", registrar: "sip:pbx.example.com", contact: "sip:3001@192.0.2.4:5060",
        via: "UDP 192.0.2.4:5060", expires: 600, instanceID: "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>", registrationID: 1,
        username: "3001", password: "secret")

    static func sent(_ events: [RegistrationClient.Event]) -> SIPMessage? {
        for case .send(let m) in events { return m }
        return nil
    }

    /// REGISTER → 401 → REGISTER with Authorization (CSeq + 1, same Call-ID, new branch) → 200
    /// with the granted expiry on our contact → refresh a minute before it ends, answering the
    /// same challenge again.
    @Test func registersThroughADigestChallenge() throws {
        var generator = SplitMix(seed: 5)
        var client = RegistrationClient(Self.configuration, callID: "reg-3001", fromTag: "ft1")
        let first = try #require(Self.sent(client.register(using: &generator)))
        try first.validate()
        #expect(first.startLine == .request(method: .register, requestURI: "sip:pbx.example.com"))
        #expect(first.expires == 600 && first.cseq == CSeq(sequence: 1, method: .register))
        #expect(first.contacts.first?.parameters["reg-id"] == "1" && first.headers.first("Supported") == "outbound, path")
        #expect(first.vias.first?.rport == "" && first.headers.first("Authorization") == nil)
        #expect(client.state == .registering)

        var challenge = first.response(statusCode: 401, reasonPhrase: "Unauthorized", toTag: "r1")
        challenge.headers.append("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"")
        let second = try #require(Self.sent(client.receive(challenge, using: &generator)))
        #expect(second.cseq?.sequence == 2 && second.callID == "reg-3001")
        #expect(second.vias.first?.branch != first.vias.first?.branch)
        let authorization = try #require(second.headers.first("Authorization"))
        #expect(authorization.hasPrefix("Digest username=\"3001\", realm=\"pbx\", nonce=\"n1\", uri=\"sip:pbx.example.com\""))
        #expect(authorization.contains("nc=00000001"))

        var ok = second.response(statusCode: 200, reasonPhrase: "OK", toTag: "r2")
        ok.headers.append("Contact", "<sip:other@192.0.2.9>;expires=3600, <sip:3001@192.0.2.4:5060;transport=udp>;expires=480")
        ok.headers.append("Expires", "900")
        #expect(client.receive(ok, using: &generator) == [.registered(expires: 480, refreshAfter: 420)])
        #expect(client.state == .registered(expires: 480))
        // A late response to an earlier CSeq changes nothing.
        #expect(client.receive(challenge, using: &generator).isEmpty)

        // The refresh (CSeq 3) answers the same challenge again, with the next nonce count.
        let refresh = try #require(Self.sent(client.register(using: &generator)))
        #expect(refresh.cseq?.sequence == 3 && refresh.headers.first("Authorization")?.contains("nonce=\"n1\"") == true)
        #expect(refresh.headers.first("Authorization")?.contains("nc=00000002") == true)
        // A registrar that wants a new nonce challenges again, without stale: that is not a
        // refusal of the credentials, since they answered an old challenge.
        var fresh = refresh.response(statusCode: 401, reasonPhrase: "Unauthorized", toTag: "r3")
        fresh.headers.append("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"n2\", algorithm=MD5, qop=\"auth\"")
        let answered = try #require(Self.sent(client.receive(fresh, using: &generator)))
        #expect(answered.cseq?.sequence == 4 && answered.headers.first("Authorization")?.contains("nonce=\"n2\"") == true)
        // Challenged once more: now the credentials were refused.
        var again = answered.response(statusCode: 401, reasonPhrase: "Unauthorized", toTag: "r4")
        again.headers.append("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"n3\", algorithm=MD5, qop=\"auth\"")
        let refused = client.receive(again, using: &generator)
        #expect(refused == [.failed(reason: "Wrong credentials", statusCode: 401, retryAfter: nil)])
        // After a failure the next registration starts without credentials.
        let restart = try #require(Self.sent(client.register(using: &generator)))
        #expect(restart.headers.first("Authorization") == nil)
        let bare = restart.response(statusCode: 200, reasonPhrase: "OK")
        #expect(client.receive(bare, using: &generator) == [.registered(expires: 600, refreshAfter: 540)])
    }

    /// A second challenge after answering means wrong credentials, unless the nonce was stale.
    @Test func wrongPasswordAndStaleNonces() throws {
        var generator = SplitMix(seed: 6)
        var client = RegistrationClient(Self.configuration, callID: "reg-3001", fromTag: "ft1")
        var request = try #require(Self.sent(client.register(using: &generator)))
        func challenge(_ nonce: String, stale: Bool = false) -> SIPMessage {
            var r = request.response(statusCode: 401, reasonPhrase: "Unauthorized", toTag: "r")
            r.headers.append("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"\(nonce)\", qop=\"auth\"\(stale ? ", stale=true" : "")")
            return r
        }
        request = try #require(Self.sent(client.receive(challenge("n1"), using: &generator)))
        request = try #require(Self.sent(client.receive(challenge("n2", stale: true), using: &generator)))
        #expect(request.headers.first("Authorization")?.contains("nonce=\"n2\"") == true)
        let refused = client.receive(challenge("n3"), using: &generator)
        #expect(refused == [.failed(reason: "Wrong credentials", statusCode: 401, retryAfter: nil)])
        #expect(client.state == .failed("Wrong credentials"))
    }

    /// 423 raises the expiry to Min-Expires; 503 reports Retry-After; unregister sends
    /// Expires: 0 and ends unregistered; a timeout is a failure without a status.
    @Test func intervalTooBriefFailuresAndUnregister() throws {
        var generator = SplitMix(seed: 7)
        var client = RegistrationClient(Self.configuration, callID: "reg-3001", fromTag: "ft1")
        let first = try #require(Self.sent(client.register(using: &generator)))
        var brief = first.response(statusCode: 423, reasonPhrase: "Interval Too Brief")
        brief.headers.append("Min-Expires", "1800")
        let again = try #require(Self.sent(client.receive(brief, using: &generator)))
        #expect(again.expires == 1800)
        var busy = again.response(statusCode: 503, reasonPhrase: "Service Unavailable")
        busy.headers.append("Retry-After", "120;duration=3600")
        #expect(client.receive(busy, using: &generator) == [.failed(reason: "Service Unavailable", statusCode: 503, retryAfter: 120)])

        let bye = try #require(Self.sent(client.unregister(using: &generator)))
        #expect(bye.expires == 0 && client.state == .unregistering)
        #expect(client.receive(bye.response(statusCode: 200, reasonPhrase: "OK"), using: &generator) == [.unregistered])
        #expect(client.state == .unregistered)
        _ = client.register(using: &generator)
        #expect(client.timedOut() == [.failed(reason: "Timeout", statusCode: nil, retryAfter: nil)])
        #expect(RegistrationConfiguration(addressOfRecord: "sip:a@b", registrar: "sip:b", contact: "sip:a@c", via: "UDP c", expires: 60,
                                          username: "a", password: "p").expires == RegistrationConfiguration.minimumExpires)
        #expect(RegistrationClient.refreshAfter(300) == 240 && RegistrationClient.refreshAfter(100) == 75)
    }
}
