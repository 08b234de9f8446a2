import Foundation
import STUN
import XCTest
@testable import TURN

/// A TURN client session over UDP that answers 401/438 challenges like a real client.
struct TestSession {
    let client: UDPTestClient
    var username: String
    var password: String
    var realm = ""
    var nonce = ""

    init(port: Int, secret: String, user: String = "alice", ttl: Int = 600) throws {
        client = try UDPTestClient(serverPort: port)
        let credential = RESTCredential.issue(secret: secret, user: user, ttl: ttl)
        username = credential.username
        password = credential.password
    }

    var key: [UInt8] { STUNMessage.longTermKey(username: username, realm: realm, password: password) }

    /// Sends an authenticated request, learning realm and nonce from a 401 or 438 first.
    mutating func request(_ method: STUNMethod, _ attributes: [STUNAttribute] = [], transactionID: TransactionID = .random()) throws -> STUNMessage {
        for _ in 0..<3 {
            var m = STUNMessage(type: STUNMessageType(method: method, messageClass: .request), transactionID: transactionID)
            m.attributes = attributes
            if !nonce.isEmpty {
                m.attributes += [.text(.username, username), .text(.realm, realm), .text(.nonce, nonce)]
            }
            let r = try client.request(m, integrity: nonce.isEmpty ? .none : .sha1(key: key))
            if r.type.messageClass == .errorResponse, let code = try r.errorCode?.code, code == 401 || code == 438, let n = try r.nonce, let rl = try r.realm {
                if code == 401 && !nonce.isEmpty && n == nonce { return r }
                nonce = n
                realm = rl
                continue
            }
            return r
        }
        throw STUNError.truncated
    }
}

func errorCode(_ m: STUNMessage) -> Int? { (try? m.errorCode)?.code }

final class TURNServerTests: XCTestCase {
    func testUnauthenticatedAllocateIsChallengedAndCreatesNothing() async throws {
        let h = try await TURNServerHarness.start()
        defer { Task { await h.stop() } }
        let client = try UDPTestClient(serverPort: h.port)
        var m = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request))
        m.attributes = [.requestedTransport(17)]
        let r = try client.request(m)
        XCTAssertEqual(r.type.messageClass, .errorResponse)
        XCTAssertEqual(errorCode(r), 401)
        XCTAssertEqual(try r.realm, "tandem")
        XCTAssertNotNil(try r.nonce)
        XCTAssertFalse(r.hasIntegrity)
        XCTAssertEqual(h.server.liveCounts.allocations, 0)
        await h.stop()
    }

    /// What the administrator changes while the server runs: new allocations take the new
    /// relay and external addresses (the ones made before keep theirs), and a new secret is
    /// accepted at once while the previous one stays valid until it retires.
    func testRelayAddressesAndSecretsChangeLive() async throws {
        let h = try await TURNServerHarness.start()
        var before = try TestSession(port: h.port, secret: h.secret, user: "before")
        let first = try before.request(.allocate, [.requestedTransport(17)])
        XCTAssertEqual(try first.xorAddress(.xorRelayedAddress)?.ip, IPAddress("127.0.0.1"))

        h.server.updateRelayAddresses([IPAddress("127.0.0.2")!], externalAddresses: [IPAddress("127.0.0.2")!: IPAddress("203.0.113.9")!])
        h.server.secrets.set(current: "the-new-secret-0123456789", previous: h.secret, previousValidUntil: Int(Date().timeIntervalSince1970) + 60)
        var after = try TestSession(port: h.port, secret: "the-new-secret-0123456789", user: "after")
        let second = try after.request(.allocate, [.requestedTransport(17)])
        XCTAssertEqual(second.type.messageClass, .successResponse, "\(String(describing: try? second.errorCode))")
        XCTAssertEqual(try second.xorAddress(.xorRelayedAddress)?.ip, IPAddress("203.0.113.9"), "the external address of the new relay address")
        var old = try TestSession(port: h.port, secret: h.secret, user: "old")
        XCTAssertEqual(try old.request(.allocate, [.requestedTransport(17)]).type.messageClass, .successResponse, "the previous secret until it retires")
        let refreshed = try before.request(.refresh, [.uint32(.lifetime, 600)])
        XCTAssertEqual(refreshed.type.messageClass, .successResponse, "the allocation made before still lives")

        h.server.secrets.set(current: "the-new-secret-0123456789", previous: h.secret, previousValidUntil: Int(Date().timeIntervalSince1970) - 1)
        var retired = try TestSession(port: h.port, secret: h.secret, user: "retired")
        XCTAssertEqual(errorCode(try retired.request(.allocate, [.requestedTransport(17)])), 401)
        await h.stop()
    }

    func testBinding() async throws {
        let h = try await TURNServerHarness.start()
        let client = try UDPTestClient(serverPort: h.port)
        let r = try client.request(STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request)))
        XCTAssertEqual(r.type.messageClass, .successResponse)
        let mapped = try r.xorAddress(.xorMappedAddress)
        XCTAssertEqual(mapped?.ip, IPAddress("127.0.0.1"))
        XCTAssertTrue(r.hadFingerprint)
        await h.stop()
    }

    func testAllocatePermissionChannelAndDataBothWays() async throws {
        let h = try await TURNServerHarness.start()
        var s = try TestSession(port: h.port, secret: h.secret)
        let tid = TransactionID.random()
        let r = try s.request(.allocate, [.requestedTransport(17), .uint32(.lifetime, 1200)], transactionID: tid)
        XCTAssertEqual(r.type.messageClass, .successResponse, "\(String(describing: try? r.errorCode))")
        XCTAssertTrue(r.verifyIntegrity(key: s.key))
        let relayed = try XCTUnwrap(try r.xorAddress(.xorRelayedAddress))
        XCTAssertEqual(relayed.ip, IPAddress("127.0.0.1"))
        XCTAssertTrue((49152...65535).contains(Int(relayed.port)))
        XCTAssertEqual(try r.lifetime, 1200)
        XCTAssertEqual(h.server.liveCounts.allocations, 1)

        // A retransmission of the same Allocate gets the same answer; a new one gets 437.
        let again = try s.request(.allocate, [.requestedTransport(17), .uint32(.lifetime, 1200)], transactionID: tid)
        XCTAssertEqual(try again.xorAddress(.xorRelayedAddress), relayed)
        XCTAssertEqual(errorCode(try s.request(.allocate, [.requestedTransport(17)])), 437)

        // Without a permission, peer data is dropped.
        let peer = UDPPeer()
        peer.send([9, 9, 9], toPort: relayed.port)
        try await Task.sleep(for: .milliseconds(100))

        // CreatePermission, then Send indication → peer, and peer → Data indication.
        let p = try s.request(.createPermission, [.xorAddress(.xorPeerAddress, peer.address, transactionID: .random())])
        XCTAssertEqual(p.type.messageClass, .successResponse, "\(String(describing: try? p.errorCode))")
        var send = STUNMessage(type: STUNMessageType(method: .send, messageClass: .indication))
        send.attributes = [.xorAddress(.xorPeerAddress, peer.address, transactionID: send.transactionID), STUNAttribute(type: .data, value: [1, 2, 3])]
        s.client.send(send.encode())
        let atPeer = try XCTUnwrap(peer.receive())
        XCTAssertEqual(atPeer.bytes, [1, 2, 3])
        XCTAssertEqual(atPeer.from, relayed.port)
        peer.send([4, 5, 6, 7], toPort: relayed.port)
        let dataIndication = try STUNMessage.decode(try XCTUnwrap(s.client.receive()))
        XCTAssertEqual(dataIndication.type, STUNMessageType(method: .data, messageClass: .indication))
        XCTAssertEqual(dataIndication.attribute(.data).map(Array.init), [4, 5, 6, 7])
        XCTAssertEqual(try dataIndication.xorAddress(.xorPeerAddress), peer.address)

        // ChannelBind, then ChannelData both ways.
        let b = try s.request(.channelBind, [.channelNumber(0x4001), .xorAddress(.xorPeerAddress, peer.address, transactionID: .random())])
        XCTAssertEqual(b.type.messageClass, .successResponse, "\(String(describing: try? b.errorCode))")
        s.client.send(ChannelData.encode(channelNumber: 0x4001, data: [10, 11, 12, 13, 14], padded: false))
        XCTAssertEqual(peer.receive()?.bytes, [10, 11, 12, 13, 14])
        peer.send([20, 21], toPort: relayed.port)
        let cd = try XCTUnwrap(s.client.receive())
        XCTAssertEqual(cd, [0x40, 0x01, 0x00, 0x02, 20, 21])
        // Channel rules: the number can't go to another peer, nor the peer to another number.
        let other = UDPPeer()
        XCTAssertEqual(errorCode(try s.request(.channelBind, [.channelNumber(0x4001), .xorAddress(.xorPeerAddress, other.address, transactionID: .random())])), 400)
        XCTAssertEqual(errorCode(try s.request(.channelBind, [.channelNumber(0x4002), .xorAddress(.xorPeerAddress, peer.address, transactionID: .random())])), 400)
        XCTAssertEqual(errorCode(try s.request(.channelBind, [.channelNumber(0x3FFF), .xorAddress(.xorPeerAddress, other.address, transactionID: .random())])), 400)
        XCTAssertEqual(errorCode(try s.request(.channelBind, [.channelNumber(0x8000), .xorAddress(.xorPeerAddress, other.address, transactionID: .random())])), 400)
        // 0x7FFF is the top of RFC 5766's range; coturn's client draws it (it once failed uclient runs here).
        XCTAssertEqual(try s.request(.channelBind, [.channelNumber(0x7FFF), .xorAddress(.xorPeerAddress, other.address, transactionID: .random())]).type.messageClass, .successResponse)
        other.send([30], toPort: relayed.port)
        XCTAssertEqual(try XCTUnwrap(s.client.receive()), [0x7F, 0xFF, 0x00, 0x01, 30])
        // Re-binding the same pair refreshes.
        XCTAssertEqual(try s.request(.channelBind, [.channelNumber(0x4001), .xorAddress(.xorPeerAddress, peer.address, transactionID: .random())]).type.messageClass, .successResponse)
        XCTAssertEqual(h.server.liveCounts.channels, 2)
        XCTAssertEqual(h.server.liveCounts.permissions, 1, "both peers are on 127.0.0.1: permissions are per IP (RFC 8656 §9)")

        // Refresh, then Refresh 0 deletes.
        let refreshed = try s.request(.refresh, [.uint32(.lifetime, 99_999)])
        XCTAssertEqual(try refreshed.lifetime, 3600)
        let deleted = try s.request(.refresh, [.uint32(.lifetime, 0)])
        XCTAssertEqual(deleted.type.messageClass, .successResponse)
        XCTAssertEqual(try deleted.lifetime, 0)
        XCTAssertEqual(h.server.liveCounts.allocations, 0)
        XCTAssertEqual(h.server.liveCounts.channels, 0)
        XCTAssertEqual(h.server.liveCounts.permissions, 0)
        XCTAssertEqual(errorCode(try s.request(.refresh, [])), 437)
        await h.stop()
    }

    func testWrongAndExpiredCredentialsAreRefused() async throws {
        let h = try await TURNServerHarness.start()
        var wrong = try TestSession(port: h.port, secret: "not-the-secret")
        XCTAssertEqual(errorCode(try wrong.request(.allocate, [.requestedTransport(17)])), 401)
        var expired = try TestSession(port: h.port, secret: h.secret, ttl: -10)
        XCTAssertEqual(errorCode(try expired.request(.allocate, [.requestedTransport(17)])), 401)
        XCTAssertEqual(h.server.liveCounts.allocations, 0)
        // A nonce issued to another client is not accepted (438, with a fresh nonce).
        var good = try TestSession(port: h.port, secret: h.secret)
        var other = try TestSession(port: h.port, secret: h.secret)
        _ = try other.request(.allocate, [.requestedTransport(17)])
        good.nonce = other.nonce
        good.realm = other.realm
        var m = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request))
        m.attributes = [.requestedTransport(17), .text(.username, good.username), .text(.realm, good.realm), .text(.nonce, good.nonce)]
        XCTAssertEqual(errorCode(try good.client.request(m, integrity: .sha1(key: good.key))), 438)
        await h.stop()
    }

    func testStaleNonce() async throws {
        let h = try await TURNServerHarness.start { $0.nonceLifetime = 1 }
        var s = try TestSession(port: h.port, secret: h.secret)
        XCTAssertEqual(try s.request(.allocate, [.requestedTransport(17)]).type.messageClass, .successResponse)
        try await Task.sleep(for: .seconds(2.1))
        var m = STUNMessage(type: STUNMessageType(method: .refresh, messageClass: .request))
        m.attributes = [.text(.username, s.username), .text(.realm, s.realm), .text(.nonce, s.nonce)]
        let r = try s.client.request(m, integrity: .sha1(key: s.key))
        XCTAssertEqual(errorCode(r), 438)
        XCTAssertNotEqual(try r.nonce, s.nonce)
        // With the new nonce it succeeds.
        XCTAssertEqual(try s.request(.refresh, []).type.messageClass, .successResponse)
        await h.stop()
    }

    func testLoopbackPeerRefusedWithoutAllowList() async throws {
        let h = try await TURNServerHarness.start(allowLoopback: false)
        var s = try TestSession(port: h.port, secret: h.secret)
        XCTAssertEqual(try s.request(.allocate, [.requestedTransport(17)]).type.messageClass, .successResponse)
        let peer = TransportAddress(ip: IPAddress("127.0.0.1")!, port: 40000)
        XCTAssertEqual(errorCode(try s.request(.createPermission, [.xorAddress(.xorPeerAddress, peer, transactionID: .random())])), 403)
        XCTAssertEqual(errorCode(try s.request(.channelBind, [.channelNumber(0x4000), .xorAddress(.xorPeerAddress, peer, transactionID: .random())])), 403)
        let multicast = TransportAddress(ip: IPAddress("239.1.1.1")!, port: 5000)
        XCTAssertEqual(errorCode(try s.request(.createPermission, [.xorAddress(.xorPeerAddress, multicast, transactionID: .random())])), 403)
        await h.stop()
    }

    func testRequestErrors() async throws {
        let h = try await TURNServerHarness.start { $0.relayAddresses = [IPAddress("127.0.0.1")!] }
        var s = try TestSession(port: h.port, secret: h.secret)
        XCTAssertEqual(errorCode(try s.request(.allocate, [])), 400)
        XCTAssertEqual(errorCode(try s.request(.allocate, [.requestedTransport(6)])), 442)
        XCTAssertEqual(errorCode(try s.request(.allocate, [.requestedTransport(17), .addressFamily(.requestedAddressFamily, .ipv6)])), 440)
        let unknown = try s.request(.allocate, [.requestedTransport(17), STUNAttribute(type: STUNAttributeType(rawValue: 0x0031), value: [1])])
        XCTAssertEqual(errorCode(unknown), 420)
        XCTAssertEqual(try unknown.unknownAttributes, [STUNAttributeType(rawValue: 0x0031)])
        XCTAssertEqual(errorCode(try s.request(.createPermission, [])), 437)
        await h.stop()
    }

    func testQuotas() async throws {
        let h = try await TURNServerHarness.start { $0.userQuota = 2; $0.totalQuota = 3 }
        var sessions: [TestSession] = []
        for _ in 0..<2 {
            var s = try TestSession(port: h.port, secret: h.secret, user: "bob")
            XCTAssertEqual(try s.request(.allocate, [.requestedTransport(17)]).type.messageClass, .successResponse)
            sessions.append(s)
        }
        var third = try TestSession(port: h.port, secret: h.secret, user: "bob")
        XCTAssertEqual(errorCode(try third.request(.allocate, [.requestedTransport(17)])), 486)
        var carol = try TestSession(port: h.port, secret: h.secret, user: "carol")
        XCTAssertEqual(try carol.request(.allocate, [.requestedTransport(17)]).type.messageClass, .successResponse)
        var dave = try TestSession(port: h.port, secret: h.secret, user: "dave")
        XCTAssertEqual(errorCode(try dave.request(.allocate, [.requestedTransport(17)])), 486)
        // Releasing one frees the user's quota.
        XCTAssertEqual(try sessions[0].request(.refresh, [.uint32(.lifetime, 0)]).type.messageClass, .successResponse)
        XCTAssertEqual(try third.request(.allocate, [.requestedTransport(17)]).type.messageClass, .successResponse)
        await h.stop()
    }

    func testIPv6AndDualAllocation() async throws {
        let h = try await TURNServerHarness.start()
        var s = try TestSession(port: h.port, secret: h.secret)
        let r = try s.request(.allocate, [.requestedTransport(17), .addressFamily(.requestedAddressFamily, .ipv6)])
        XCTAssertEqual(r.type.messageClass, .successResponse)
        XCTAssertEqual(try r.xorAddress(.xorRelayedAddress)?.ip, IPAddress("::1"))
        // An IPv4 peer on an IPv6 allocation: 443.
        XCTAssertEqual(errorCode(try s.request(.createPermission, [.xorAddress(.xorPeerAddress, TransportAddress(ip: IPAddress("127.0.0.1")!, port: 9), transactionID: .random())])), 443)
        var d = try TestSession(port: h.port, secret: h.secret)
        let dual = try d.request(.allocate, [.requestedTransport(17), .addressFamily(.additionalAddressFamily, .ipv6)])
        XCTAssertEqual(dual.type.messageClass, .successResponse)
        XCTAssertEqual(try dual.xorAddresses(.xorRelayedAddress).map(\.ip.family), [.ipv4, .ipv6])
        await h.stop()
    }

    func testEvenPortReservation() async throws {
        let h = try await TURNServerHarness.start()
        var s = try TestSession(port: h.port, secret: h.secret)
        let r = try s.request(.allocate, [.requestedTransport(17), .evenPort(reserveNext: true)])
        XCTAssertEqual(r.type.messageClass, .successResponse)
        let port = try XCTUnwrap(try r.xorAddress(.xorRelayedAddress)).port
        XCTAssertEqual(port % 2, 0)
        let token = try XCTUnwrap(try r.reservationToken)
        var t = try TestSession(port: h.port, secret: h.secret)
        let r2 = try t.request(.allocate, [.requestedTransport(17), .uint64(.reservationToken, token)])
        XCTAssertEqual(r2.type.messageClass, .successResponse, "\(String(describing: try? r2.errorCode))")
        XCTAssertEqual(try r2.xorAddress(.xorRelayedAddress)?.port, port + 1)
        var u = try TestSession(port: h.port, secret: h.secret)
        XCTAssertEqual(errorCode(try u.request(.allocate, [.requestedTransport(17), .uint64(.reservationToken, token)])), 508)
        await h.stop()
    }

    func testRateLimitDropsExcessRequests() async throws {
        let h = try await TURNServerHarness.start { $0.maxRequestsPerSecond = 5 }
        let client = try UDPTestClient(serverPort: h.port)
        var answered = 0
        for _ in 0..<30 {
            client.send(STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request)).encode())
        }
        client.timeoutMilliseconds = 300
        while client.receive() != nil { answered += 1 }
        XCTAssertEqual(answered, 10)  // the burst is 2 × the rate
        await h.stop()
    }
}
