import Testing
@testable import SIP

@Suite("Digest authentication")
struct DigestTests {
    static let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    static let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    static let opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"

    static func challenge(_ algorithm: String, qop: String = "auth, auth-int") -> DigestChallenge? {
        DigestChallenge(parsing: "Digest realm=\"http-auth@example.org\", qop=\"\(qop)\", algorithm=\(algorithm), nonce=\"\(nonce)\", opaque=\"\(opaque)\"")
    }

    static func response(in authorization: String?) -> String? {
        guard let authorization else { return nil }
        let parts = authorization.split(separator: "response=\"", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        return String(parts[1].prefix { $0 != "\"" })
    }

    /// RFC 7616 §3.9.1: the MD5 and SHA-256 responses for Mufasa / "Circle of Life".
    @Test func rfc7616Examples() throws {
        var client = DigestClient(username: "Mufasa", password: "Circle of Life")
        let md5 = try #require(Self.challenge("MD5"))
        #expect(md5.qopOptions == ["auth", "auth-int"] && md5.opaque == Self.opaque && !md5.stale)
        let a = client.authorization(for: md5, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        #expect(Self.response(in: a) == "8ca523f5e9506fed4657c9700eebdbec")
        #expect(a?.contains("nc=00000001") == true && a?.contains("qop=auth,") == true && a?.contains("opaque=\"\(Self.opaque)\"") == true)
        var other = DigestClient(username: "Mufasa", password: "Circle of Life")
        let sha = try #require(Self.challenge("SHA-256"))
        let b = other.authorization(for: sha, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        #expect(Self.response(in: b) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    }

    /// SHA-512-256 (RFC 8760) and the -sess variants, against Python's hashlib; the nonce
    /// count goes up with each use of a nonce.
    @Test func sha512_256AndSessionsAndNonceCounts() throws {
        var client = DigestClient(username: "Mufasa", password: "Circle of Life")
        let challenge = try #require(Self.challenge("SHA-512-256"))
        let first = client.authorization(for: challenge, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        #expect(Self.response(in: first) == "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0")
        let session = try #require(Self.challenge("sha-256-SESS"))
        #expect(session.algorithm == .sha256Session)
        _ = client.authorization(for: session, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        let second = client.authorization(for: session, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        // Same nonce as the SHA-512-256 answer: this is its third use.
        #expect(second?.contains("nc=00000003") == true)
        client.reset()
        let fresh = client.authorization(for: session, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        _ = fresh
        let again = client.authorization(for: session, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        #expect(Self.response(in: again) == "6bb0010aa4bdf46422a798c509ea32e256f27bd37de5cc3bdf8ed51e1d77d650")
    }

    /// A SIP REGISTER challenge as Asterisk or Kamailio sends it, and the RFC 2069 form without qop.
    @Test func sipChallengesAndTheFormWithoutQop() throws {
        let response = try SIPMessage(parsing: wire([
            "SIP/2.0 401 Unauthorized", "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1", "From: <sip:3001@pbx.example.com>;tag=1",
            "To: <sip:3001@pbx.example.com>;tag=2", "Call-ID: r1", "CSeq: 1 REGISTER",
            "WWW-Authenticate: Digest realm=\"asterisk\",nonce=\"abc123\",algorithm=md5,qop=\"auth\",stale=TRUE",
            "Content-Length: 0",
        ]))
        let challenge = try #require(response.headers.first("WWW-Authenticate").flatMap(DigestChallenge.init(parsing:)))
        #expect(challenge.stale && challenge.algorithm == .md5 && challenge.realm == "asterisk")
        var client = DigestClient(username: "3001", password: "secret")
        let answer = client.authorization(for: challenge, method: .register, uri: "sip:pbx.example.com", cnonce: "cn0")
        let value = try #require(answer)
        #expect(Self.response(in: value) == "993508bb0a11cf741dd360ef173b4d2a")
        #expect(value.hasPrefix("Digest username=\"3001\", realm=\"asterisk\", nonce=\"abc123\", uri=\"sip:pbx.example.com\""))
        #expect(value.contains("algorithm=md5"))

        let old = try #require(DigestChallenge(parsing: "Digest realm=\"http-auth@example.org\", nonce=\"\(Self.nonce)\""))
        var mufasa = DigestClient(username: "Mufasa", password: "Circle of Life")
        let plain = mufasa.authorization(for: old, method: SIPMethod("GET"), uri: "/dir/index.html", cnonce: Self.cnonce)
        #expect(Self.response(in: plain) == "7b2cc3b30e75b4777ea31027084363fd")
        #expect(plain?.contains("nc=") == false && plain?.contains("cnonce") == false)
    }

    /// The topmost challenge with a known algorithm and qop=auth is answered; others are not.
    @Test func choosingAmongChallenges() throws {
        let unknown = try #require(Self.challenge("SHA3-512"))
        let intOnly = try #require(Self.challenge("MD5", qop: "auth-int"))
        let sha = try #require(Self.challenge("SHA-256"))
        let md5 = try #require(Self.challenge("MD5"))
        #expect(unknown.algorithm == nil)
        #expect(DigestClient.choose([unknown, intOnly, sha, md5]) == sha)
        #expect(DigestClient.choose([unknown, intOnly]) == nil)
        var client = DigestClient(username: "u", password: "p")
        let refused = client.authorization(for: intOnly, method: .register, uri: "sip:x", cnonce: "c")
        #expect(refused == nil)
        #expect(DigestChallenge(parsing: "Basic realm=\"x\"") == nil)
        #expect(DigestChallenge(parsing: "Digest realm=\"x\"") == nil)
        // Quotes and backslashes in a username are escaped (RFC 7616 §3.4 quoted-string).
        var odd = DigestClient(username: "a\"b\\c", password: "p")
        let escaped = odd.authorization(for: md5, method: .register, uri: "sip:x", cnonce: "c")
        #expect(escaped?.hasPrefix("Digest username=\"a\\\"b\\\\c\"") == true)
    }

    /// FIPS 180-4 SHA-512/256 examples: one block and several.
    @Test func sha512_256() {
        #expect(DigestAlgorithm.hex(SHA512_256.hash(Array("abc".utf8))) == "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23")
        #expect(DigestAlgorithm.hex(SHA512_256.hash([UInt8](repeating: 0x61, count: 200))) == "19b1e37317d7fd3d7651f397005e31f154ef4912d1345743d2d5889aaca28996")
    }
}
