import Foundation
import Testing
@testable import SIP

/// The fixtures captured from Kamailio, sipp and baresip (see Fixtures/README.md).
func sipFixtures() throws -> [(name: String, bytes: [UInt8])] {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sip") }.sorted().map {
        ($0, Array(try Data(contentsOf: directory.appendingPathComponent($0))))
    }
}

@Suite("SIP from real peers")
struct FixtureTests {
    /// Every captured message parses, passes what a UA checks, and re-serializes stably.
    @Test func everyCapturedMessageParses() throws {
        let fixtures = try sipFixtures()
        #expect(fixtures.count >= 12)
        for (name, bytes) in fixtures {
            let message = try SIPMessage(parsing: bytes)
            try message.validate()
            #expect(message.vias.count == 1, "\(name)")
            #expect(try SIPMessage(parsing: message.serialized()).serialized() == message.serialized(), "\(name)")
        }
    }

    /// Each response answers a captured request: same Call-ID, CSeq and top Via branch; a
    /// Kamailio 200 to REGISTER carries the rport and received it saw.
    @Test func responsesMatchTheirRequests() throws {
        let messages = try sipFixtures().map { try SIPMessage(parsing: $0.bytes) }
        let requests = messages.filter(\.isRequest)
        let responses = messages.filter { !$0.isRequest }
        #expect(!requests.isEmpty && !responses.isEmpty)
        for response in responses {
            let request = requests.first { SIPTransactionKey($0) == SIPTransactionKey(response) }
            #expect(request != nil, "no request for \(response.startLine)")
            #expect(request?.callID == response.callID && request?.cseq == response.cseq)
        }
        let registered = try #require(responses.first { $0.statusCode == 200 && $0.method == .register })
        let via = try #require(registered.vias.first)
        #expect(via.received == "127.0.0.1" && via.rport.flatMap { Int($0) } == via.port)
    }

    /// Kamailio's challenge parses, and Tandem's digest client computes exactly the response
    /// baresip sent for it (Kamailio accepted that one with 200 OK).
    @Test func digestAgreesWithBaresipAndKamailio() throws {
        let messages = try sipFixtures().map { try SIPMessage(parsing: $0.bytes) }
        let answered = try #require(messages.first { $0.isRequest && $0.headers.first("Authorization") != nil && $0.headers.first("User-Agent")?.hasPrefix("baresip") == true })
        let authorization = try #require(answered.headers.first("Authorization"))
        // The challenge baresip answered: Kamailio's 401 with the nonce it quotes.
        let challenges = messages.compactMap { $0.headers.first("WWW-Authenticate").flatMap(DigestChallenge.init(parsing:)) }
        let challenge = try #require(challenges.first { authorization.contains("nonce=\"\($0.nonce)\"") })
        #expect(challenge.qopOptions == ["auth"] && challenge.realm == "127.0.0.1" && challenge.algorithm == .md5)
        let (scheme, fields) = try #require(DigestChallenge.authParameters(authorization))
        #expect(scheme == "digest")
        func field(_ name: String) -> String? { fields[name] }
        let cnonce = try #require(field("cnonce"))
        let uri = try #require(field("uri"))
        var client = DigestClient(username: "1001", password: "pw1001")
        let ours = client.authorization(for: challenge, method: .register, uri: uri, cnonce: cnonce)
        #expect(ours?.contains("response=\"\(try #require(field("response")))\"") == true)
        let accepted = messages.contains { $0.statusCode == 200 && $0.callID == answered.callID && $0.cseq == answered.cseq }
        #expect(accepted)
    }
}
