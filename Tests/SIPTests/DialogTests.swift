import Testing
@testable import SIP

@Suite("Dialogs, SIP URIs, session timers")
struct DialogTests {
    static func invite() -> SIPMessage {
        var m = SIPMessage(startLine: .request(method: .invite, requestURI: "sip:1001@tandem.test"))
        m.headers.append("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKa;rport")
        m.headers.append("From", "<sip:3001@tandem.test>;tag=ours")
        m.headers.append("To", "<sip:1001@tandem.test>")
        m.headers.append("Call-ID", "c1")
        m.headers.append("CSeq", "2 INVITE")
        m.headers.append("Contact", "<sip:3001@127.0.0.1:5062>")
        return m
    }

    @Test func uris() throws {
        let uri = try #require(SIPURI("sip:3001@[2001:db8::1]:5062;transport=tcp;lr?Subject=x"))
        #expect(uri.user == "3001" && uri.bareHost == "2001:db8::1" && uri.port == 5062 && uri.parameter("transport") == "tcp" && uri.isLooseRouter)
        #expect(uri.headers == "Subject=x" && uri.description == "sip:3001@[2001:db8::1]:5062;transport=tcp;lr?Subject=x")
        #expect(SIPURI("sips:pbx.example.com")?.secure == true)
        #expect(SIPURI("tel:+4989") == nil && SIPURI("sip:") == nil && SIPURI("sip:a@b c") == nil)
    }

    /// RFC 3261 §12.1.2: the UAC's route set is the 2xx's Record-Route reversed; requests go
    /// to the remote target with Route headers (loose routing), CSeq counting on.
    @Test func uacDialogRoutesLoosely() throws {
        let invite = Self.invite()
        var ok = invite.response(statusCode: 200, reasonPhrase: "OK", toTag: "theirs")
        ok.headers.append("Record-Route", "<sip:10.0.0.2;lr>, <sip:10.0.0.1;lr>")
        ok.headers.append("Contact", "<sip:1001@10.0.0.9:5080>")
        var dialog = try #require(SIPDialog(uac: invite, response: ok, localContact: "sip:3001@127.0.0.1:5062"))
        #expect(dialog.id == SIPDialogID(callID: "c1", localTag: "ours", remoteTag: "theirs") && dialog.state == .confirmed)
        #expect(dialog.routeSet == ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"])
        #expect(dialog.nextHop?.host == "10.0.0.1")
        let ack = dialog.request(.ack, via: "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKb", cseq: 2)
        #expect(ack.requestURI == "sip:1001@10.0.0.9:5080" && ack.cseq == CSeq(sequence: 2, method: .ack))
        let bye = dialog.request(.bye, via: "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKc")
        #expect(bye.cseq == CSeq(sequence: 3, method: .bye) && bye.headers.values("Route") == ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"])
        #expect(bye.headers.first("To")?.contains("tag=theirs") == true && bye.headers.first("Contact") == nil)
        try bye.validate()
        let reinvite = dialog.request(.invite, via: "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKd")
        #expect(reinvite.headers.first("Contact") == "<sip:3001@127.0.0.1:5062>")
    }

    /// §13.2.2.4: the 2xx's dialog takes over from the early one without reusing its CSeqs.
    @Test func confirmedDialogContinuesTheEarlySequence() throws {
        let invite = Self.invite()
        var ringing = invite.response(statusCode: 180, reasonPhrase: "Ringing", toTag: "t")
        ringing.headers.append("Contact", "<sip:1001@10.0.0.9>")
        var early = try #require(SIPDialog(uac: invite, response: ringing, localContact: "sip:3001@127.0.0.1"))
        _ = early.request(.prack, via: "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKp1")
        _ = early.request(.prack, via: "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKp2")
        var ok = invite.response(statusCode: 200, reasonPhrase: "OK", toTag: "t")
        ok.headers.append("Contact", "<sip:1001@10.0.0.9>")
        var confirmed = try #require(SIPDialog(uac: invite, response: ok, localContact: "sip:3001@127.0.0.1"))
        confirmed.continueSequence(after: early)
        #expect(confirmed.request(.info, via: "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKi").cseq?.sequence == 5)
        // Another fork's early dialog does not count.
        var other = try #require(SIPDialog(uac: invite, response: invite.response(statusCode: 180, reasonPhrase: "Ringing", toTag: "u"), localContact: "x"))
        _ = other.request(.prack, via: "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKp3")
        var fresh = try #require(SIPDialog(uac: invite, response: ok, localContact: "sip:3001@127.0.0.1"))
        fresh.continueSequence(after: other)
        #expect(fresh.request(.info, via: "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKj").cseq?.sequence == 3)
    }

    /// §16.12.1.2: a strict router in the route set becomes the Request-URI, the target the last Route.
    @Test func strictRouting() throws {
        let invite = Self.invite()
        var ok = invite.response(statusCode: 200, reasonPhrase: "OK", toTag: "t")
        ok.headers.append("Record-Route", "<sip:10.0.0.1>")
        ok.headers.append("Contact", "<sip:1001@10.0.0.9>")
        var dialog = try #require(SIPDialog(uac: invite, response: ok, localContact: "sip:3001@127.0.0.1"))
        let bye = dialog.request(.bye, via: "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKe")
        #expect(bye.requestURI == "sip:10.0.0.1" && bye.headers.values("Route") == ["<sip:1001@10.0.0.9>"])
    }

    /// §12.1.1 and §12.2.2: the UAS keeps Record-Route in order, adds its tag, and refuses a
    /// request whose CSeq went backwards; a re-INVITE moves the remote target.
    @Test func uasDialogOrdersRequests() throws {
        var invite = Self.invite()
        invite.headers.append("Record-Route", "<sip:10.0.0.1;lr>")
        var dialog = try #require(SIPDialog(uas: invite, localTag: "mine", localContact: "sip:1001@127.0.0.1:5080"))
        #expect(dialog.id == SIPDialogID(callID: "c1", localTag: "mine", remoteTag: "ours") && dialog.state == .early)
        #expect(dialog.localParty.hasSuffix(";tag=mine") && dialog.routeSet == ["<sip:10.0.0.1;lr>"] && dialog.remoteTarget == "sip:3001@127.0.0.1:5062")
        var later = invite
        later.headers.set("CSeq", "5 INVITE")
        later.headers.set("Contact", "<sip:3001@192.0.2.7>")
        let accepted = dialog.receive(later)
        #expect(accepted && dialog.remoteTarget == "sip:3001@192.0.2.7")
        var earlier = invite
        earlier.headers.set("CSeq", "4 BYE")
        let outOfOrder = dialog.receive(earlier)
        #expect(!outOfOrder)
        let incoming = try #require(SIPDialogID(incoming: dialog.request(.bye, via: "SIP/2.0/UDP x;branch=z9hG4bKf")))
        #expect(incoming.callID == "c1")
    }

    @Test func sessionTimers() throws {
        let t = try #require(SessionTimer(parsing: "1800;refresher=uas"))
        #expect(t.interval == 1800 && t.refresher == .uas && t.refreshAfter == 900 && t.expiryWithoutRefresh == 1768)
        #expect(SessionTimer(parsing: "90")?.refresher == .uac && SessionTimer(parsing: "x") == nil)
        var invite = Self.invite()
        #expect(SessionTimer.forAnswer(to: invite) == nil)
        invite.headers.append("Supported", "timer, 100rel")
        #expect(SessionTimer.forAnswer(to: invite) == SessionTimer(interval: 1800, refresher: .uas))
        invite.headers.append("Session-Expires", "600")
        // The caller supports timers but named no refresher: it refreshes (RFC 4028 §9).
        #expect(SessionTimer.forAnswer(to: invite) == SessionTimer(interval: 600, refresher: .uac))
        let cancel = try #require(invite.cancelRequest())
        #expect(cancel.cseq == CSeq(sequence: 2, method: .cancel) && cancel.vias.first?.branch == "z9hG4bKa" && cancel.requestURI == invite.requestURI)
    }

    @Test func typedHeaders() throws {
        var m = Self.invite()
        m.headers.append("Record-Route", "<sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>")
        m.headers.append("Route", "<sip:p1.example;lr>")
        m.headers.append("Allow", "INVITE, ACK, bye")
        m.headers.append("k", "100rel, Timer")
        m.headers.append("Require", "timer")
        m.headers.append("RSeq", "988789")
        m.headers.append("RAck", "776656 1 INVITE")
        m.headers.append("x", "1800;refresher=uas")
        m.headers.append("Min-SE", "90;lr")
        m.headers.append("Min-Expires", "3600")
        m.headers.append("Proxy-Authenticate", "Digest realm=\"a\", nonce=\"n\"")
        let parsed = try SIPMessage(parsing: m.serialized())
        #expect(parsed.recordRoutes.map(\.uri) == ["sip:10.0.0.1;lr", "sip:10.0.0.2;lr"] && parsed.routes.first?.uri == "sip:p1.example;lr")
        #expect(parsed.allow == [.invite, .ack, .bye] && parsed.supported == ["100rel", "timer"] && parsed.require == ["timer"])
        #expect(parsed.rseq == 988789 && parsed.rack == RAck(responseNumber: 776656, cseq: CSeq(sequence: 1, method: .invite)))
        #expect(parsed.sessionExpires == SessionTimer(interval: 1800, refresher: .uas) && parsed.minSE == 90 && parsed.minExpires == 3600)
        #expect(parsed.contentLength == 0 && parsed.challenges.first?.realm == "a")
        #expect(RAck(parsing: "1 x INVITE") == nil && RAck(parsing: "1 2") == nil)
    }
}
