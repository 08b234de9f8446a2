import Testing
@testable import SIP

/// Runs a transaction's actions against a fake clock: timers are kept by name, `advance`
/// fires those that fall due in deadline order, and what was sent, delivered and reported
/// is recorded.
struct Harness {
    var now: Int64 = 0
    var timers: [SIPTransactionTimer: Int64] = [:]
    var sent: [(at: Int64, message: SIPMessage)] = []
    var delivered: [SIPMessage] = []
    var timedOut = false
    var terminated = false

    mutating func apply(_ actions: [SIPTransactionAction]) {
        for action in actions {
            switch action {
            case .send(let m): sent.append((now, m))
            case .deliver(let m): delivered.append(m)
            case .start(let t, let ms): timers[t] = now + ms
            case .cancel(let t): timers[t] = nil
            case .timedOut: timedOut = true
            case .terminated: terminated = true; timers.removeAll()
            }
        }
    }

    /// Moves the clock to `time`, firing due timers through `fire`.
    mutating func advance(to time: Int64, _ fire: (SIPTransactionTimer) -> [SIPTransactionAction]) {
        while let (timer, deadline) = timers.min(by: { $0.value < $1.value }), deadline <= time {
            now = deadline
            timers[timer] = nil
            apply(fire(timer))
        }
        now = time
    }

    var sendTimes: [Int64] { sent.map(\.at) }
}

func request(_ method: SIPMethod, branch: String = "z9hG4bKtx1") -> SIPMessage {
    var m = SIPMessage(startLine: .request(method: method, requestURI: "sip:bob@biloxi.example.com"))
    m.headers.append("Via", "SIP/2.0/UDP 192.0.2.4:5060;branch=\(branch)")
    m.headers.append("Max-Forwards", "70")
    m.headers.append("From", "<sip:alice@atlanta.example.com>;tag=f1")
    m.headers.append("To", "<sip:bob@biloxi.example.com>")
    m.headers.append("Call-ID", "tx-call")
    m.headers.append("CSeq", "1 \(method.name)")
    m.headers.append("Route", "<sip:proxy.example.com;lr>")
    return m
}

@Suite("SIP transactions")
struct TransactionTests {
    /// INVITE over UDP: retransmitted at 0.5, 1.5, 3.5 … s (Timer A doubling) until Timer B
    /// (32 s) reports a timeout.
    @Test func inviteClientRetransmitsThenTimesOut() {
        var tx = InviteClientTransaction(request: request(.invite), reliable: false)
        var h = Harness()
        h.apply(tx.start())
        h.advance(to: 40_000) { tx.fire($0) }
        #expect(h.sendTimes == [0, 500, 1500, 3500, 7500, 15_500, 31_500])
        #expect(h.timedOut && h.terminated && tx.state == .terminated)
    }

    /// A provisional stops the retransmissions; a 486 is delivered once, ACKed (RFC 3261
    /// §17.1.1.3) and ACKed again for each retransmission until Timer D.
    @Test func inviteClientAcksANonSuccessFinal() throws {
        let invite = request(.invite)
        var tx = InviteClientTransaction(request: invite, reliable: false)
        var h = Harness()
        h.apply(tx.start())
        h.advance(to: 600) { tx.fire($0) }
        h.apply(tx.receive(invite.response(statusCode: 180, reasonPhrase: "Ringing", toTag: "t9")))
        #expect(tx.state == .proceeding && h.timers[.a] == nil && h.timers[.b] == nil)
        h.advance(to: 20_000) { tx.fire($0) }
        #expect(h.sent.count == 2)  // the INVITE and one retransmission, nothing after the 180
        let busy = invite.response(statusCode: 486, reasonPhrase: "Busy Here", toTag: "t9")
        h.apply(tx.receive(busy))
        h.apply(tx.receive(busy))
        #expect(h.delivered.map(\.statusCode) == [180, 486])
        let acks = h.sent.dropFirst(2).map(\.message)
        #expect(acks.count == 2)
        let ack = try #require(acks.first)
        #expect(ack.startLine == .request(method: .ack, requestURI: "sip:bob@biloxi.example.com"))
        #expect(ack.cseq == CSeq(sequence: 1, method: .ack) && ack.to?.tag == "t9" && ack.from?.tag == "f1")
        #expect(ack.vias.map(\.branch) == ["z9hG4bKtx1"] && ack.headers.values("Route") == ["<sip:proxy.example.com;lr>"])
        h.advance(to: 20_000 + 32_000) { tx.fire($0) }
        #expect(h.terminated && !h.timedOut)
    }

    /// RFC 6026: after a 2xx the transaction stays (Accepted) so retransmitted 2xx still reach
    /// the TU, and ends on Timer M; over TCP there is no Timer A and Timer D is 0.
    @Test func inviteClientAcceptedAndReliable() {
        let invite = request(.invite)
        var tx = InviteClientTransaction(request: invite, reliable: true)
        var h = Harness()
        h.apply(tx.start())
        #expect(h.timers.keys.sorted { $0.rawValue < $1.rawValue } == [.b])
        let ok = invite.response(statusCode: 200, reasonPhrase: "OK", toTag: "t1")
        h.apply(tx.receive(ok))
        h.apply(tx.receive(ok))
        #expect(tx.state == .accepted && h.delivered.count == 2 && h.sent.count == 1)
        h.advance(to: 32_000) { tx.fire($0) }
        #expect(h.terminated && !h.timedOut)

        var failed = InviteClientTransaction(request: invite, reliable: true)
        var g = Harness()
        g.apply(failed.start())
        g.apply(failed.receive(invite.response(statusCode: 503, reasonPhrase: "Service Unavailable")))
        #expect(g.timers[.d] == 0)
        g.advance(to: 0) { failed.fire($0) }
        #expect(g.terminated)
    }

    /// REGISTER over UDP: Timer E doubles to T2 (4 s) then stays; after a 100 it resends every
    /// T2; Timer F (32 s) gives up.
    @Test func nonInviteClientTimers() {
        var tx = NonInviteClientTransaction(request: request(.register), reliable: false)
        var h = Harness()
        h.apply(tx.start())
        h.advance(to: 40_000) { tx.fire($0) }
        #expect(h.sendTimes == [0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500])
        #expect(h.timedOut && h.terminated)

        let register = request(.register)
        var slow = NonInviteClientTransaction(request: register, reliable: false)
        var g = Harness()
        g.apply(slow.start())
        g.advance(to: 100) { slow.fire($0) }
        g.apply(slow.receive(register.response(statusCode: 100, reasonPhrase: "Trying")))
        g.advance(to: 9_000) { slow.fire($0) }
        #expect(g.sendTimes == [0, 500, 4500, 8500])
        g.apply(slow.receive(register.response(statusCode: 200, reasonPhrase: "OK")))
        g.apply(slow.receive(register.response(statusCode: 200, reasonPhrase: "OK")))
        #expect(g.delivered.map(\.statusCode) == [100, 200] && slow.state == .completed)
        g.advance(to: 9_000 + 5_000) { slow.fire($0) }
        #expect(g.terminated && !g.timedOut && g.sent.count == 4)
    }

    /// INVITE server over UDP: 100 Trying at once, the last response to each retransmitted
    /// INVITE, a 486 retransmitted on Timer G (doubling to T2) until the ACK, then Timer I.
    @Test func inviteServerRetransmitsItsFinalUntilTheAck() throws {
        let invite = request(.invite)
        var tx = InviteServerTransaction(request: invite, reliable: false)
        var h = Harness()
        h.apply(tx.start())
        #expect(h.sent.first?.message.statusCode == 100 && h.delivered.first == invite)
        h.apply(tx.receive(invite))
        #expect(h.sent.map { $0.message.statusCode } == [100, 100])
        h.apply(tx.respond(invite.response(statusCode: 486, reasonPhrase: "Busy Here", toTag: "s1")))
        h.advance(to: 8_000) { tx.fire($0) }
        #expect(h.sendTimes == [0, 0, 0, 500, 1500, 3500, 7500])
        h.apply(tx.receive(invite))  // the INVITE again: the final again
        #expect(h.sent.last?.message.statusCode == 486)
        var ack = request(.ack)
        ack.headers.set("CSeq", "1 ACK")
        h.apply(tx.receive(ack))
        #expect(tx.state == .confirmed && h.timers[.g] == nil && h.timers[.h] == nil && h.timers[.i] == 8_000 + 5_000)
        h.apply(tx.receive(ack))
        h.advance(to: 14_000) { tx.fire($0) }
        #expect(h.terminated && !h.timedOut && h.sent.count == 8)
    }

    /// No ACK: Timer H (32 s) ends the transaction with a timeout. A 2xx goes to Accepted,
    /// where INVITE retransmissions are absorbed and the TU's 2xx retransmissions go out until L.
    @Test func inviteServerWithoutAckAndAccepted() {
        let invite = request(.invite)
        var tx = InviteServerTransaction(request: invite, reliable: false)
        var h = Harness()
        h.apply(tx.start())
        h.apply(tx.respond(invite.response(statusCode: 480, reasonPhrase: "Temporarily Unavailable")))
        h.advance(to: 40_000) { tx.fire($0) }
        #expect(h.timedOut && h.terminated)
        #expect(h.sendTimes.filter { $0 > 0 } == [500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500])

        var ok = InviteServerTransaction(request: invite, reliable: false)
        var g = Harness()
        g.apply(ok.start())
        let success = invite.response(statusCode: 200, reasonPhrase: "OK", toTag: "s2")
        g.apply(ok.respond(success))
        g.apply(ok.receive(invite))
        g.apply(ok.respond(success))
        #expect(ok.state == .accepted && g.sent.map { $0.message.statusCode } == [100, 200, 200])
        g.advance(to: 32_000) { ok.fire($0) }
        #expect(g.terminated && !g.timedOut)
    }

    /// Non-INVITE server: the request goes up once; retransmissions get the last response;
    /// Timer J (64·T1 over UDP, 0 over TCP) ends it.
    @Test func nonInviteServer() {
        let options = request(.options)
        var tx = NonInviteServerTransaction(request: options, reliable: false)
        var h = Harness()
        h.apply(tx.start())
        h.apply(tx.receive(options))  // nothing to repeat yet
        #expect(h.sent.isEmpty && h.delivered.count == 1)
        h.apply(tx.respond(options.response(statusCode: 100, reasonPhrase: "Trying")))
        h.apply(tx.receive(options))
        h.apply(tx.respond(options.response(statusCode: 200, reasonPhrase: "OK", toTag: "o1")))
        h.apply(tx.receive(options))
        h.apply(tx.respond(options.response(statusCode: 500, reasonPhrase: "Too late")))
        #expect(h.sent.map { $0.message.statusCode } == [100, 100, 200, 200])
        h.advance(to: 32_000) { tx.fire($0) }
        #expect(h.terminated)

        var tcp = NonInviteServerTransaction(request: options, reliable: true)
        var g = Harness()
        g.apply(tcp.start())
        g.apply(tcp.respond(options.response(statusCode: 200, reasonPhrase: "OK")))
        #expect(g.timers[.j] == 0)
    }

    /// Transactions match on the top Via's branch and sent-by and the method; ACK matches
    /// its INVITE, CANCEL does not (RFC 3261 §17.2.3); an RFC 2543 branch has no key.
    @Test func matchingKeys() {
        let invite = request(.invite)
        var ack = request(.ack)
        ack.headers.set("CSeq", "1 ACK")
        var cancel = request(.cancel)
        cancel.headers.set("CSeq", "1 CANCEL")
        let response = invite.response(statusCode: 180, reasonPhrase: "Ringing")
        #expect(SIPTransactionKey(invite) == SIPTransactionKey(ack))
        #expect(SIPTransactionKey(invite) == SIPTransactionKey(response))
        #expect(SIPTransactionKey(invite) != SIPTransactionKey(cancel))
        #expect(SIPTransactionKey(invite) != SIPTransactionKey(request(.invite, branch: "z9hG4bKother")))
        #expect(SIPTransactionKey(request(.invite, branch: "old-style")) == nil)
    }
}
