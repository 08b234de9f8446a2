import Logging
import NIOCore
import NIOPosix
import Testing
@testable import SIP
@testable import SIPUA

/// Two UA cores on loopback: A (extension 3001) calls B (extension 1001) directly, with short
/// timers. Reliable provisionals and PRACK, the 2xx/ACK exchange, INFO, BYE, 422 and 404.
@Suite("SIP calls on loopback")
struct CallTests {
    final class Side: @unchecked Sendable {
        let endpoint: SIPEndpoint
        let manager: SIPCallManager
        var events: [String] = []
        var lastCall: SIPCall?

        init(user: String, timers: SIPTimerValues, peer: @escaping @Sendable () -> SIPDestination?) async throws {
            endpoint = try await EndpointTests.endpoint([.udp], timers: timers)
            manager = SIPCallManager(endpoint: endpoint, domain: "tandem.test", logger: Logger(label: "test"),
                                     credentials: { $0 == user ? (user, "pw") : nil }, route: { _ in peer() })
            try await endpoint.loop.submit { self.manager.install() }.get()
        }

        func record(_ call: SIPCall) {
            lastCall = call
            call.onEvent = { [unowned self] event in
                switch event {
                case .progress(let code, _): events.append("progress \(code)")
                case .answered(let body): events.append("answered \(String(decoding: body, as: UTF8.self))")
                case .updated: events.append("updated")
                case .info(let m): events.append("info \(String(decoding: m.body, as: UTF8.self))")
                case .ended(let reason, let code): events.append("ended \(reason) \(code ?? 0)")
                }
            }
        }

        func on<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T { try await endpoint.loop.submit(body).get() }

        func waitFor(_ event: String, timeout: Duration = .seconds(3)) async throws {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if try await on({ self.events.contains { $0.hasPrefix(event) } }) { return }
                try await Task.sleep(for: .milliseconds(10))
            }
            Issue.record("no \"\(event)\" in \(try await on { self.events })")
        }
    }

    static func pair(timers: SIPTimerValues = EndpointTests.fast) async throws -> (Side, Side) {
        let holder = Box<SIPDestination?>(nil)
        let a = try await Side(user: "3001", timers: timers, peer: { holder.value })
        let b = try await Side(user: "1001", timers: timers, peer: { nil })
        holder.value = try EndpointTests.destination(b.endpoint, .udp)
        return (a, b)
    }

    @Test func reliableRingingAnswerInfoAndBye() async throws {
        // T1 = 100 ms: the PRACK has 100 ms to stop the 180's retransmission, even on a busy host.
        let (a, b) = try await Self.pair(timers: SIPTimerValues(t1: 100, t2: 800, t4: 500))
        try await b.on {
            b.manager.onIncomingCall = { call in
                b.record(call)
                call.ring()
                // Answer after 300 ms: without the PRACK the 180 would go again at 100 and 300 ms.
                b.endpoint.loop.scheduleTask(in: .milliseconds(300)) { call.accept(body: Array("v=0 answer".utf8)) }
            }
        }
        try await a.on {
            let call = a.manager.call(from: "3001", to: "sip:1001@127.0.0.1", body: Array("v=0 offer".utf8), headers: [("Require", "100rel")])
            a.record(call!)
        }
        try await a.waitFor("answered v=0 answer")
        try await b.waitFor("answered v=0 offer")
        #expect(try await a.on { a.events.filter { $0 == "progress 180" }.count } == 1)
        // The confirmed dialog counts CSeq on from the early dialog's PRACK.
        #expect(try await a.on { a.lastCall?.dialog?.localSequence } == 2)
        #expect(try await a.on { a.lastCall?.state } == .confirmed)
        try await a.on { a.lastCall?.sendInfo(body: Array("Signal=5".utf8), contentType: "application/dtmf-relay") }
        try await b.waitFor("info Signal=5")
        // A re-INVITE with a new offer (say, hold): B sees it and answers with its description;
        // A gets that answer.
        try await a.on { a.lastCall?.update(body: Array("v=0 hold".utf8)) }
        try await b.waitFor("updated")
        try await a.waitFor("updated")
        #expect(try await b.on { b.lastCall.map { String(decoding: $0.remoteBody ?? [], as: UTF8.self) } } == "v=0 hold")
        #expect(try await a.on { a.lastCall?.state } == .confirmed)
        try await b.on { b.lastCall?.hangUp() }
        try await a.waitFor("ended remote hangup")
        try await b.waitFor("ended local hangup")
        await a.endpoint.stop()
        await b.endpoint.stop()
    }

    /// RFC 4028 §6: a Session-Expires under the callee's Min-SE gets 422; the caller asks again
    /// with the Min-SE, and the answer's timer is that one.
    @Test func sessionIntervalTooSmallIsRetried() async throws {
        let (a, b) = try await Self.pair()
        try await b.on { b.manager.onIncomingCall = { call in b.record(call); call.accept(body: Array("v=0 b".utf8)) } }
        try await a.on {
            a.manager.sessionInterval = 30
            a.record(a.manager.call(from: "3001", to: "sip:1001@127.0.0.1", body: Array("v=0 a".utf8))!)
        }
        try await a.waitFor("answered")
        #expect(try await a.on { a.lastCall?.sessionTimer?.interval } == SessionTimer.minimum)
        try await a.on { a.lastCall?.hangUp() }
        try await b.waitFor("ended remote hangup")
        await a.endpoint.stop()
        await b.endpoint.stop()
    }

    @Test func unknownExtensionIs404AndCancelBeforeAnswer() async throws {
        let (a, b) = try await Self.pair()
        try await a.on { a.record(a.manager.call(from: "3001", to: "sip:4242@127.0.0.1", body: [])!) }
        try await a.waitFor("ended 404 Not Found 404")
        // Hanging up while it rings sends CANCEL: the callee's call ends, the caller gets 487.
        try await b.on { b.manager.onIncomingCall = { call in b.record(call); call.ring() } }
        try await a.on { a.record(a.manager.call(from: "3001", to: "sip:1001@127.0.0.1", body: [])!) }
        try await a.waitFor("progress 180")
        try await a.on { a.lastCall?.hangUp() }
        try await b.waitFor("ended cancelled by the caller 487")
        try await a.waitFor("ended 487 Request Terminated 487")
        await a.endpoint.stop()
        await b.endpoint.stop()
    }

    /// RFC 4028 §10: the refresher (here the caller, refresher=uac) re-INVITEs at half the
    /// interval; with Min-SE lowered to 2 s that is after 1 s.
    @Test func sessionRefresh() async throws {
        let (a, b) = try await Self.pair()
        try await b.on {
            b.manager.minimumSessionInterval = 2
            b.manager.onIncomingCall = { call in b.record(call); call.accept(body: Array("v=0 b".utf8)) }
        }
        try await a.on {
            a.manager.minimumSessionInterval = 2
            a.manager.sessionInterval = 2
            a.record(a.manager.call(from: "3001", to: "sip:1001@127.0.0.1", body: Array("v=0 a".utf8))!)
        }
        try await a.waitFor("answered")
        #expect(try await a.on { a.lastCall?.sessionTimer } == SessionTimer(interval: 2, refresher: .uac))
        // The refresh re-INVITE carries the same offer: B sees it as an update.
        try await b.waitFor("updated", timeout: .seconds(3))
        #expect(try await a.on { a.lastCall?.state } == .confirmed)
        #expect(try await b.on { b.lastCall?.state } == .confirmed)
        try await a.on { a.lastCall?.hangUp() }
        try await b.waitFor("ended remote hangup")
        await a.endpoint.stop()
        await b.endpoint.stop()
    }
}
