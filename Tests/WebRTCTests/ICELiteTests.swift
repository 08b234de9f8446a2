import STUN
import Testing
import WebRTC

private let local = ICECredentials(usernameFragment: "lite", password: "0123456789abcdefghijklmn")
private let remote = ICECredentials(usernameFragment: "full", password: "nmlkjihgfedcba9876543210")
private let browser = TransportAddress(ip: .v4(0x7F00_0001), port: 50000)

/// A browser's connectivity check (RFC 8445 §7.2.2).
private func check(username: String = "lite:full", password: String = local.password, priority: UInt32? = 1_853_824_767,
                   useCandidate: Bool = false, controlled: Bool = false, fingerprint: Bool = true, extra: [STUNAttribute] = []) -> [UInt8] {
    var m = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request))
    m.attributes = [.text(.username, username)]
    if let priority { m.attributes.append(.uint32(.priority, priority)) }
    m.attributes.append(controlled ? .uint64(.iceControlled, 7) : .uint64(.iceControlling, 7))
    if useCandidate { m.attributes.append(.flag(.useCandidate)) }
    m.attributes += extra
    return m.encode(integrity: .sha1(key: Array(password.utf8)), fingerprint: fingerprint)
}

private func send(_ agent: inout ICELiteAgent, _ bytes: [UInt8], from: TransportAddress = browser, now: Int64 = 0) -> ICELiteAgent.Outcome {
    bytes.withUnsafeBytes { agent.receive($0, from: from, now: now) }
}

@Suite("ICE-lite")
struct ICELiteTests {
    @Test func validCheckIsAnsweredWithTheMappedAddress() throws {
        var agent = ICELiteAgent(local: local, remote: remote)
        guard case .respond(let bytes, let selected) = send(&agent, check()) else { Issue.record("not answered"); return }
        #expect(selected == nil)
        #expect(agent.state == .checking)
        let response = try STUNMessage.decode(bytes)
        #expect(response.type == STUNMessageType(method: .binding, messageClass: .successResponse))
        #expect(try response.xorAddress(.xorMappedAddress) == browser)
        #expect(response.verifyIntegrity(key: Array(local.password.utf8)))
        #expect(response.hadFingerprint)
        #expect(!agent.maySend)
    }

    @Test func nominationSelectsThePairAndLaterChecksKeepConsent() {
        var agent = ICELiteAgent(local: local, remote: remote)
        guard case .respond(_, let selected) = send(&agent, check(useCandidate: true), now: 1000) else { Issue.record("not answered"); return }
        #expect(selected == browser)
        #expect(agent.state == .connected && agent.maySend)
        _ = send(&agent, check(), now: 20_000)
        let early = agent.checkConsent(now: 45_000)
        #expect(!early)
        let expired = agent.checkConsent(now: 50_001)
        #expect(expired)
        #expect(agent.state == .consentExpired && !agent.maySend)
        if case .ignore = send(&agent, check(useCandidate: true), now: 50_002) {} else { Issue.record("expired leg answered") }
    }

    /// A nomination from a new address (the browser moved networks) moves the selected pair.
    @Test func renominationMovesThePair() {
        var agent = ICELiteAgent(local: local, remote: remote)
        _ = send(&agent, check(useCandidate: true))
        let moved = TransportAddress(ip: .v4(0x7F00_0002), port: 50001)
        guard case .respond(_, let selected) = send(&agent, check(useCandidate: true), from: moved) else { Issue.record("not answered"); return }
        #expect(selected == moved && agent.selected == moved)
        #expect(agent.validatedAddresses == [browser, moved])
    }

    @Test(arguments: [
        (check(password: "wrong-password-wrong-pass"), 401),
        (check(username: "other:full"), 401),
        (check(username: "lite:other"), 401),
        (check(priority: nil), 400),
        (check(controlled: true), 487),
        (check(extra: [STUNAttribute(type: STUNAttributeType(rawValue: 0x0031), value: [0, 0, 0, 0])]), 420),
    ])
    func invalidChecksAreRejected(bytes: [UInt8], code: Int) throws {
        var agent = ICELiteAgent(local: local, remote: remote)
        guard case .reject(let response, let got) = send(&agent, bytes) else { Issue.record("not rejected"); return }
        #expect(got == code)
        #expect(try STUNMessage.decode(response).errorCode?.code == code)
        #expect(agent.state == .new && agent.selected == nil)
    }

    @Test func checksWithoutFingerprintOrGarbageAreIgnored() {
        var agent = ICELiteAgent(local: local, remote: remote)
        if case .ignore = send(&agent, check(fingerprint: false)) {} else { Issue.record("answered without FINGERPRINT") }
        if case .ignore = send(&agent, [0, 1, 0, 0]) {} else { Issue.record("answered garbage") }
    }

    /// ICE restart (RFC 8445 §9): new credentials are required; the selected pair stays until renominated.
    @Test func restartChangesCredentials() {
        var agent = ICELiteAgent(local: local, remote: remote)
        _ = send(&agent, check(useCandidate: true))
        let newLocal = ICECredentials(usernameFragment: "lite2", password: "zyxwvutsrqponmlkjihgfedc")
        agent.restart(local: newLocal, remote: ICECredentials(usernameFragment: "full2", password: "p"))
        if case .reject(_, 401) = send(&agent, check(useCandidate: true)) {} else { Issue.record("old credentials accepted") }
        #expect(agent.selected == browser && agent.maySend)
        if case .respond = send(&agent, check(username: "lite2:full2", password: newLocal.password, useCandidate: true)) {} else { Issue.record("new credentials refused") }
    }

    @Test func randomCredentialsFollowTheGrammar() {
        let c = ICECredentials.random()
        #expect(c.usernameFragment.count >= 4 && c.password.count >= 22)
        #expect(c != ICECredentials.random())
    }
}
