import Foundation
import Testing
import WebRTC

/// Runs two endpoints against each other by passing their datagrams, optionally dropping some.
private func handshake(_ a: DTLSTransport, _ b: DTLSTransport, drop: (Int) -> Bool = { _ in false }) {
    a.start()
    b.start()
    var n = 0
    for _ in 0..<200 {
        var moved = false
        for (from, to) in [(a, b), (b, a)] {
            for d in from.takeOutgoing() {
                n += 1
                moved = true
                if !drop(n) { to.receive(d) }
            }
        }
        if case .connected = a.state, case .connected = b.state { return }
        if !moved {
            // Nothing in flight: wait for the earlier retransmission timer, then fire both.
            let wait = [a.timeoutMilliseconds, b.timeoutMilliseconds].compactMap { $0 }.min() ?? 0
            Thread.sleep(forTimeInterval: Double(wait + 2) / 1000)
            a.handleTimeout()
            b.handleTimeout()
        }
    }
}

@Suite("DTLS-SRTP")
struct DTLSTests {
    @Test func handshakeExportsMatchingSRTPKeys() throws {
        let serverIdentity = try DTLSIdentity()
        let clientIdentity = try DTLSIdentity()
        #expect(serverIdentity.fingerprintSHA256.count == 32 && serverIdentity.fingerprintSHA256 != clientIdentity.fingerprintSHA256)
        let server = try DTLSTransport(identity: serverIdentity, role: .server, expectedFingerprints: [clientIdentity.fingerprintSHA256])
        let client = try DTLSTransport(identity: clientIdentity, role: .client, expectedFingerprints: [serverIdentity.fingerprintSHA256])
        handshake(client, server)
        guard case .connected(let s) = server.state, case .connected(let c) = client.state else {
            Issue.record("server \(server.state), client \(client.state)")
            return
        }
        #expect(s.profile == .aeadAES128GCM)  // first in the offered list
        #expect(s.local == c.remote && s.remote == c.local && s.local != s.remote)
        // The keys work: what the client protects the server unprotects.
        let tx = try SRTPContext(profile: c.profile, keyAndSalt: c.local, direction: .outbound)
        let rx = try SRTPContext(profile: s.profile, keyAndSalt: s.remote, direction: .inbound)
        let rtp: [UInt8] = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9] + [UInt8](repeating: 0xFF, count: 160)
        #expect(try rx.unprotectRTP(try tx.protectRTP(rtp)) == rtp)
    }

    @Test func aWrongFingerprintFailsTheHandshake() throws {
        let serverIdentity = try DTLSIdentity()
        let clientIdentity = try DTLSIdentity()
        let server = try DTLSTransport(identity: serverIdentity, role: .server, expectedFingerprints: [[UInt8](repeating: 1, count: 32)])
        let client = try DTLSTransport(identity: clientIdentity, role: .client, expectedFingerprints: [serverIdentity.fingerprintSHA256])
        handshake(client, server)
        #expect(server.state == .failed(DTLSError("peer certificate does not match the SDP fingerprint")))
    }

    /// Lost flights are sent again when the timer fires (RFC 6347 §4.2.4).
    @Test func lostDatagramsAreRetransmitted() throws {
        let si = try DTLSIdentity(), ci = try DTLSIdentity()
        let server = try DTLSTransport(identity: si, role: .server, expectedFingerprints: [ci.fingerprintSHA256])
        let client = try DTLSTransport(identity: ci, role: .client, expectedFingerprints: [si.fingerprintSHA256])
        client.start()
        #expect(client.timeoutMilliseconds != nil)
        #expect(client.timeoutMilliseconds! <= 100)
        handshake(client, server, drop: { $0 == 1 || $0 == 3 })
        guard case .connected = server.state, case .connected = client.state else {
            Issue.record("server \(server.state), client \(client.state)")
            return
        }
        #expect(server.timeoutMilliseconds == nil)
    }

    @Test func profilesFollowTheServersList() throws {
        let si = try DTLSIdentity(profiles: [.aes128CMHMACSHA1_80])
        let ci = try DTLSIdentity()
        let server = try DTLSTransport(identity: si, role: .server, expectedFingerprints: [ci.fingerprintSHA256])
        let client = try DTLSTransport(identity: ci, role: .client, expectedFingerprints: [si.fingerprintSHA256])
        handshake(client, server)
        guard case .connected(let keys) = client.state else {
            Issue.record("client \(client.state)")
            return
        }
        #expect(keys.profile == .aes128CMHMACSHA1_80)
    }

    @Test func garbageDoesNotConnect() throws {
        let si = try DTLSIdentity()
        let server = try DTLSTransport(identity: si, role: .server, expectedFingerprints: [])
        for length in [1, 13, 25, 200] {
            server.receive([22, 0xFE, 0xFD] + [UInt8](repeating: 0x41, count: length))
        }
        if case .connected = server.state { Issue.record("connected on garbage") }
    }
}
