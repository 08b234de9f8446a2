import Crypto
import Foundation
import NIOCore
import STUN
import XCTest
@testable import TURN

/// Protocol state without sockets: lifetimes, permissions, channels, nonces, credentials, policy.
final class StateTests: XCTestCase {
    let peer = TransportAddress(ip: IPAddress("198.51.100.7")!, port: 5000)

    func testLifetimePolicy() {
        let p = LifetimePolicy()
        XCTAssertEqual(p.allocationLifetime(requested: nil), 600)
        XCTAssertEqual(p.allocationLifetime(requested: 30), 600)
        XCTAssertEqual(p.allocationLifetime(requested: 1800), 1800)
        XCTAssertEqual(p.allocationLifetime(requested: 100_000), 3600)
        XCTAssertEqual(p.permission, 300)
        XCTAssertEqual(p.channel, 600)
    }

    func testAllocationExpiryAndRefresh() {
        var s = AllocationState(policy: LifetimePolicy(), lifetimeSeconds: 600, now: 0)
        XCTAssertFalse(s.isExpired(at: 599_999))
        XCTAssertTrue(s.isExpired(at: 600_000))
        s.refresh(lifetimeSeconds: 600, now: 500_000)
        XCTAssertFalse(s.isExpired(at: 1_000_000))
        XCTAssertTrue(s.isExpired(at: 1_100_000))
    }

    func testPermissionExpiresAfter300Seconds() {
        var s = AllocationState(policy: LifetimePolicy(), lifetimeSeconds: 600, now: 0)
        XCTAssertFalse(s.hasPermission(for: peer.ip, now: 0))
        XCTAssertTrue(s.installPermission(for: peer.ip, now: 0))
        XCTAssertTrue(s.hasPermission(for: peer.ip, now: 299_999))
        XCTAssertFalse(s.hasPermission(for: IPAddress("198.51.100.8")!, now: 1))
        XCTAssertFalse(s.hasPermission(for: peer.ip, now: 300_000))
        // Refreshing before expiry is not new, and extends it.
        XCTAssertTrue(s.installPermission(for: IPAddress("198.51.100.9")!, now: 0))
        XCTAssertFalse(s.installPermission(for: IPAddress("198.51.100.9")!, now: 200_000))
        XCTAssertTrue(s.hasPermission(for: IPAddress("198.51.100.9")!, now: 450_000))
        XCTAssertEqual(s.sweep(now: 300_000).permissions, 1)
        XCTAssertNil(s.permissions[peer.ip])
        XCTAssertEqual(s.permissions.count, 1)
    }

    func testChannelBindingRules() {
        var s = AllocationState(policy: LifetimePolicy(), lifetimeSeconds: 600, now: 0)
        let other = TransportAddress(ip: IPAddress("198.51.100.7")!, port: 5001)
        XCTAssertEqual(s.bindChannel(0x4000, to: peer, now: 0), .bound)
        XCTAssertTrue(s.hasPermission(for: peer.ip, now: 1), "ChannelBind installs a permission")
        XCTAssertEqual(s.channel(0x4000, now: 1)?.peer, peer)
        XCTAssertEqual(s.channelNumber(for: peer, now: 1), 0x4000)
        XCTAssertEqual(s.bindChannel(0x4000, to: other, now: 1), .numberInUse)
        XCTAssertEqual(s.bindChannel(0x4001, to: peer, now: 1), .peerInUse)
        XCTAssertEqual(s.bindChannel(0x4000, to: peer, now: 100_000), .refreshed)
        // Expires 600 s after the refresh; the permission (300 s) was refreshed with it.
        XCTAssertNotNil(s.channel(0x4000, now: 699_999))
        XCTAssertNil(s.channel(0x4000, now: 700_000))
        XCTAssertNil(s.channelNumber(for: peer, now: 700_000))
        XCTAssertEqual(s.sweep(now: 700_000).channels, 1)
        XCTAssertEqual(s.sweep(now: 700_001).channels, 0, "counted once")
        // Quarantined for 5 minutes against other peers, but the same pair may re-bind.
        XCTAssertEqual(s.bindChannel(0x4000, to: other, now: 800_000), .numberInUse)
        XCTAssertEqual(s.bindChannel(0x4000, to: other, now: 1_000_000), .bound)
        XCTAssertEqual(s.channelNumber(for: other, now: 1_000_001), 0x4000)
        XCTAssertNil(s.channelNumber(for: peer, now: 1_000_001))
    }

    func testNonceBoundToClientAndExpiring() {
        let issuer = NonceIssuer(lifetime: 600)
        let client = TransportAddress(ip: IPAddress("192.0.2.1")!, port: 40000)
        let nonce = issuer.issue(for: client, transport: 17, now: 1_000)
        XCTAssertEqual(nonce.utf8.count, 24)
        XCTAssertNoThrow(try issuer.validate(nonce, from: client, transport: 17, now: 1_599).get())
        XCTAssertEqual(issuer.validate(nonce, from: client, transport: 17, now: 1_600).failure, .expired)
        XCTAssertEqual(issuer.validate(nonce, from: TransportAddress(ip: client.ip, port: 40001), transport: 17, now: 1_001).failure, .wrongClient)
        XCTAssertEqual(issuer.validate(nonce, from: client, transport: 6, now: 1_001).failure, .wrongClient)
        XCTAssertEqual(issuer.validate("garbage", from: client, transport: 17, now: 1_001).failure, .malformed)
        XCTAssertEqual(NonceIssuer(lifetime: 600).validate(nonce, from: client, transport: 17, now: 1_001).failure, .wrongClient, "another server key")
    }

    func testRESTCredentialMatchesCoturnConvention() {
        // coturn: password = base64(hmac-sha1(secret, "<expiry>:<user>")).
        let c = RESTCredential.issue(secret: "north", user: "alice", ttl: 600, now: Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertEqual(c.username, "1700000600:alice")
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data("1700000600:alice".utf8), using: SymmetricKey(data: Data("north".utf8)))
        XCTAssertEqual(c.password, Data(mac).base64EncodedString())
        XCTAssertEqual(RESTCredential.issue(secret: "s", user: nil, ttl: 10, now: Date(timeIntervalSince1970: 100)).username, "110")
        XCTAssertEqual(RESTCredential.expiry(ofUsername: "1700000600:alice"), 1_700_000_600)
        XCTAssertNil(RESTCredential.expiry(ofUsername: "alice"))
        XCTAssertNil(RESTCredential.expiry(ofUsername: ":alice"))
    }

    func testAuthenticatorAcceptsCurrentAndPreviousSecret() {
        let secrets = SharedSecrets(current: "one")
        let auth = RESTAuthenticator(realm: "tandem", secrets: secrets)
        func request(secret: String, ttl: Int = 600) -> (STUNMessage, String) {
            let c = RESTCredential.issue(secret: secret, user: "u", ttl: ttl, now: Date(timeIntervalSince1970: 1_000))
            var m = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request))
            m.attributes = [.text(.username, c.username), .text(.realm, "tandem"), .text(.nonce, "n")]
            let key = STUNMessage.longTermKey(username: c.username, realm: "tandem", password: c.password)
            return (try! STUNMessage.decode(m.encode(integrity: .sha1(key: key))), c.username)
        }
        let (m1, u1) = request(secret: "one")
        XCTAssertNotNil(try? auth.authenticate(m1, username: u1, realm: "tandem", now: 1_001).get())
        XCTAssertEqual(auth.authenticate(m1, username: u1, realm: "other", now: 1_001).failure, .wrongRealm)
        XCTAssertEqual(auth.authenticate(m1, username: u1, realm: "tandem", now: 1_600).failure, .expiredUsername)
        secrets.rotate(to: "two", previousValidUntil: 1_300)
        XCTAssertNotNil(try? auth.authenticate(m1, username: u1, realm: "tandem", now: 1_200).get(), "previous secret honoured for one TTL")
        XCTAssertEqual(auth.authenticate(m1, username: u1, realm: "tandem", now: 1_300).failure, .badIntegrity)
        let (m2, u2) = request(secret: "two")
        XCTAssertNotNil(try? auth.authenticate(m2, username: u2, realm: "tandem", now: 1_301).get())
        var bare = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request))
        bare.attributes = [.text(.username, u2)]
        XCTAssertEqual(auth.authenticate(try! STUNMessage.decode(bare.encode()), username: u2, realm: "tandem", now: 1_301).failure, .missingIntegrity)
    }

    func testPeerPolicy() {
        let strict = PeerPolicy(ownListeners: [TransportAddress(ip: .v4(0), port: 3478)])
        for refused in ["127.0.0.1", "0.1.2.3", "169.254.1.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "ff02::1", "::ffff:127.0.0.1"] {
            XCTAssertFalse(strict.permits(TransportAddress(ip: IPAddress(refused)!, port: 5000)), refused)
        }
        XCTAssertTrue(strict.permits(TransportAddress(ip: IPAddress("198.51.100.1")!, port: 5000)))
        XCTAssertTrue(strict.permits(TransportAddress(ip: IPAddress("2001:db8::1")!, port: 5000)))
        XCTAssertFalse(strict.permits(TransportAddress(ip: IPAddress("198.51.100.1")!, port: 3478)), "own listening port")
        let open = PeerPolicy(allowed: [CIDR("127.0.0.0/8")!], denied: [CIDR("10.0.0.0/8")!])
        XCTAssertTrue(open.permits(TransportAddress(ip: IPAddress("127.0.0.1")!, port: 5000)))
        XCTAssertFalse(open.permits(TransportAddress(ip: IPAddress("10.1.2.3")!, port: 5000)))
        XCTAssertFalse(open.permits(TransportAddress(ip: IPAddress("::1")!, port: 5000)))
    }

    func testCIDR() {
        XCTAssertEqual(CIDR("10.0.0.0/8")?.prefixLength, 8)
        XCTAssertNil(CIDR("10.0.0.0/33"))
        XCTAssertNil(CIDR("nonsense"))
        XCTAssertTrue(CIDR("0.0.0.0/0")!.contains(IPAddress("1.2.3.4")!))
        XCTAssertTrue(CIDR("2001:db8::/32")!.contains(IPAddress("2001:db8:ffff::1")!))
        XCTAssertFalse(CIDR("2001:db8::/32")!.contains(IPAddress("2001:db9::1")!))
        XCTAssertFalse(CIDR("10.0.0.0/8")!.contains(IPAddress("::1")!))
        XCTAssertTrue(CIDR("fe80::/10")!.contains(IPAddress("febf::1")!))
        XCTAssertTrue(CIDR("::1")!.contains(IPAddress("::1")!))
    }

    func testRateLimiterAndTokenBucket() {
        var r = RateLimiter(perSecond: 10, capacity: 2)
        let a = IPAddress("192.0.2.1")!
        var allowed = 0
        for _ in 0..<50 where r.allow(a, now: 0) { allowed += 1 }
        XCTAssertEqual(allowed, 20)
        XCTAssertTrue(r.allow(a, now: 100), "refills at 10/s")
        XCTAssertTrue(r.allow(IPAddress("192.0.2.2")!, now: 0))
        XCTAssertFalse(r.allow(IPAddress("192.0.2.3")!, now: 0), "bounded number of tracked sources")
        r.sweep(now: 10_000)
        XCTAssertEqual(r.trackedSources, 0)
        var b = TokenBucket(rate: 8000, burst: 4000, now: 0)
        XCTAssertTrue(b.take(4000, now: 0))
        XCTAssertFalse(b.take(800, now: 0))
        XCTAssertTrue(b.take(800, now: 100))
    }
}

extension Result {
    var failure: Failure? { if case .failure(let f) = self { return f } else { return nil } }
}
