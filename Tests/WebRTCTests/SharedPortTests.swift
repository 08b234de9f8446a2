import Datapath
import Foundation
import STUN
import Synchronization
import Testing
@testable import WebRTC

/// What a leg handed its owner, collected across threads.
private final class Collected: Sendable {
    let packets = Mutex<[[UInt8]]>([])
    func append(_ p: [UInt8]) { packets.withLock { $0.append(p) } }
    var all: [[UInt8]] { packets.withLock { $0 } }
}

/// A browser's check of the leg whose credentials are `leg` (RFC 8445 §7.2.2).
private func check(leg: ICECredentials, browser: ICECredentials, password: String? = nil) -> [UInt8] {
    var m = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request))
    m.attributes = [.text(.username, "\(leg.usernameFragment):\(browser.usernameFragment)"), .uint32(.priority, 1_853_824_767),
                    .uint64(.iceControlling, 7), .flag(.useCandidate)]
    return m.encode(integrity: .sha1(key: Array((password ?? leg.password).utf8)), fingerprint: true)
}

private func rtp(sequence: UInt16, ssrc: UInt32, fill: UInt8) -> [UInt8] {
    [0x80, 0, UInt8(sequence >> 8), UInt8(sequence & 0xFF), 0, 0, 0, 160, UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF), UInt8(ssrc & 0xFF)]
        + [UInt8](repeating: fill, count: 160)
}

/// One simulated browser in front of a leg on the shared port.
private final class Browser {
    let socket: UDPSocket
    let ice = ICECredentials.random()
    let legICE = ICECredentials.random()
    let dtls: DTLSTransport
    var outbound: SRTPContext?
    var inbound: SRTPContext?
    let collected = Collected()

    init(identity: DTLSIdentity, serverFingerprint: [UInt8]) throws {
        socket = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: 0))
        dtls = try DTLSTransport(identity: identity, role: .client, expectedFingerprints: [serverFingerprint])
    }

    /// ICE check, then the DTLS handshake as client, then SRTP keys.
    func connect(to port: DatagramAddress) throws {
        _ = socket.send(check(leg: legICE, browser: ice), to: port)
        let response = try #require(socket.receive(waitingMilliseconds: 2000))
        let message = try STUNMessage.decode(response.bytes)
        #expect(message.type == STUNMessageType(method: .binding, messageClass: .successResponse))
        dtls.start()
        for _ in 0..<100 {
            for d in dtls.takeOutgoing() { _ = socket.send(d, to: port) }
            if case .connected = dtls.state { break }
            if let got = socket.receive(waitingMilliseconds: 50) {
                got.bytes.withUnsafeBytes { _ = dtls.receive($0) }
            } else if dtls.timeoutMilliseconds == 0 {
                dtls.handleTimeout()
            }
        }
        for d in dtls.takeOutgoing() { _ = socket.send(d, to: port) }
        guard case .connected(let keys) = dtls.state else { throw DTLSError("browser did not connect: \(dtls.state)") }
        outbound = try SRTPContext(profile: keys.profile, keyAndSalt: keys.local, direction: .outbound)
        inbound = try SRTPContext(profile: keys.profile, keyAndSalt: keys.remote, direction: .inbound)
    }

    func sendRTP(_ packet: [UInt8], to port: DatagramAddress) throws {
        _ = socket.send(try #require(outbound).protectRTP(packet), to: port)
    }

    /// The next RTP packet the leg sent, decrypted.
    func receiveRTP() throws -> [UInt8]? {
        guard let got = socket.receive(waitingMilliseconds: 2000) else { return nil }
        return try #require(inbound).unprotectRTP(got.bytes)
    }
}

/// Waits up to 2 s for `condition`.
private func eventually(_ condition: () async throws -> Bool) async -> Bool {
    for _ in 0..<200 {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}

@Suite("Shared UDP port")
struct SharedPortTests {
    @Test func theLocalUfragIsReadFromUsername() {
        let legICE = ICECredentials(usernameFragment: "abcd", password: "0123456789abcdefghijklmn")
        let bytes = check(leg: legICE, browser: ICECredentials(usernameFragment: "wxyz", password: "x"))
        #expect(bytes.withUnsafeBytes { SharedUDPPort.localUsernameFragment($0) } == "abcd")
        // No USERNAME, a USERNAME without a colon, a length past the end, too short: nil.
        let plain = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request)).encode(fingerprint: true)
        #expect(plain.withUnsafeBytes { SharedUDPPort.localUsernameFragment($0) } == nil)
        var noColon = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request))
        noColon.attributes = [.text(.username, "abcd")]
        #expect(noColon.encode().withUnsafeBytes { SharedUDPPort.localUsernameFragment($0) } == nil)
        var cut = bytes
        cut[3] = 0xFF
        #expect(cut.withUnsafeBytes { SharedUDPPort.localUsernameFragment($0) } == nil)
        var overlong = bytes
        overlong[22] = 0x7F  // USERNAME's own length now runs past the message
        #expect(overlong.withUnsafeBytes { SharedUDPPort.localUsernameFragment($0) } == nil)
        #expect(Array(bytes.prefix(19)).withUnsafeBytes { SharedUDPPort.localUsernameFragment($0) } == nil)
    }

    @Test func legsOnOnePortEachGetTheirOwnMedia() async throws {
        let loop = try DatapathLoop(name: "shared-port-test")
        let port = try SharedUDPPort(loop: loop, address: DatagramAddress(ipv4: 0x7F00_0001, port: 0))
        let portAddress = port.socket.localAddress
        let shared = LoopBound(port, loop: loop)
        loop.start()
        let serverIdentity = try DTLSIdentity()
        let clientIdentity = try DTLSIdentity()
        let browsers = try (0..<2).map { _ in try Browser(identity: clientIdentity, serverFingerprint: serverIdentity.fingerprintSHA256) }
        var legs: [LoopBound<WebRTCLeg>] = []
        for b in browsers {
            let (legICE, browserICE, collected) = (b.legICE, b.ice, b.collected)
            let clientFingerprint = clientIdentity.fingerprintSHA256
            legs.append(try await loop.submit {
                let dtls = try DTLSTransport(identity: serverIdentity, role: .server, expectedFingerprints: [clientFingerprint])
                let leg = WebRTCLeg(loop: loop, transport: .shared(shared.value), ice: ICELiteAgent(local: legICE, remote: browserICE), dtls: dtls)
                leg.onRTP = { collected.append(Array($0)) }
                try leg.start()
                return LoopBound(leg, loop: loop)
            })
        }
        #expect(try await loop.submit { shared.value.legCount } == 2)
        for b in browsers { try b.connect(to: portAddress) }
        for leg in legs { #expect(await eventually { try await loop.submit { leg.value.maySend } }) }

        // Each browser's media reaches its own leg only, and each leg's media its own browser.
        for (i, b) in browsers.enumerated() { try b.sendRTP(rtp(sequence: 1, ssrc: 100 + UInt32(i), fill: UInt8(i + 1)), to: portAddress) }
        for (i, b) in browsers.enumerated() {
            #expect(await eventually { b.collected.all.count == 1 })
            #expect(b.collected.all == [rtp(sequence: 1, ssrc: 100 + UInt32(i), fill: UInt8(i + 1))])
        }
        for (i, leg) in legs.enumerated() {
            let packet = rtp(sequence: 7, ssrc: 900 + UInt32(i), fill: 0xA0 + UInt8(i))
            #expect(try await loop.submit { leg.value.sendRTP(packet) })
            #expect(try browsers[i].receiveRTP() == packet)
        }

        // A stranger's datagrams, and a check with a leg's ufrag but the wrong password, reach no leg.
        let stranger = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: 0))
        _ = stranger.send([0x80, 0, 0, 1] + [UInt8](repeating: 0, count: 40), to: portAddress)
        _ = stranger.send(check(leg: browsers[0].legICE, browser: browsers[0].ice, password: "wrong-password-0123456789"), to: portAddress)
        let refusal = try #require(stranger.receive(waitingMilliseconds: 2000))
        #expect(try STUNMessage.decode(refusal.bytes).type == STUNMessageType(method: .binding, messageClass: .errorResponse))
        _ = stranger.send([0x80, 0, 0, 2] + [UInt8](repeating: 0, count: 40), to: portAddress)
        #expect(await eventually { try await loop.submit { shared.value.unmatched } == 2 })
        #expect(browsers.allSatisfy { $0.collected.all.count == 1 })

        // A closed leg gives its ufrag and addresses back: its browser's packets are unmatched.
        let (first, second) = (legs[0], legs[1])
        try await loop.submit { first.value.close() }
        #expect(try await loop.submit { shared.value.legCount } == 1)
        try browsers[0].sendRTP(rtp(sequence: 2, ssrc: 100, fill: 1), to: portAddress)
        try browsers[1].sendRTP(rtp(sequence: 2, ssrc: 101, fill: 2), to: portAddress)
        #expect(await eventually { browsers[1].collected.all.count == 2 })
        #expect(await eventually { try await loop.submit { shared.value.unmatched } == 3 })
        #expect(browsers[0].collected.all.count == 1)
        try await loop.submit { second.value.close() }
        await loop.stop()
    }
}

