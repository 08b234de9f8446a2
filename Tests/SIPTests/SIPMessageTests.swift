import Testing
@testable import SIP

/// Messages as text with CRLF line ends.
func wire(_ lines: [String], body: String = "") -> [UInt8] {
    Array((lines.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
}

@Suite("SIP messages")
struct SIPMessageTests {
    static let sdp = "v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\nc=IN IP4 pc33.atlanta.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

    /// The INVITE of RFC 3261 §24.2 (F1), typed access to every header a UA reads.
    @Test func parsesTheRFC3261Invite() throws {
        let bytes = wire([
            "INVITE sip:bob@biloxi.com SIP/2.0",
            "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@biloxi.com>",
            "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710",
            "CSeq: 314159 INVITE",
            "Contact: <sip:alice@pc33.atlanta.com>",
            "Content-Type: application/sdp",
            "Content-Length: \(Self.sdp.utf8.count)",
        ], body: Self.sdp)
        let m = try SIPMessage(parsing: bytes)
        #expect(m.startLine == .request(method: .invite, requestURI: "sip:bob@biloxi.com"))
        #expect(m.vias == [Via(transport: "UDP", host: "pc33.atlanta.com", port: nil, parameters: [("branch", "z9hG4bKnashds8")])])
        #expect(m.maxForwards == 70)
        #expect(m.to == NameAddress(displayName: "Bob", uri: "sip:bob@biloxi.com"))
        #expect(m.from?.tag == "1928301774" && m.from?.displayName == "Alice")
        #expect(m.callID == "a84b4c76e66710")
        #expect(m.cseq == CSeq(sequence: 314159, method: .invite))
        #expect(m.contacts.map(\.uri) == ["sip:alice@pc33.atlanta.com"])
        #expect(m.contentType == "application/sdp")
        #expect(m.body == Array(Self.sdp.utf8))
        try m.validate()
    }

    /// Compact names, folding, lists in one field and over several, IPv6 sent-by, rport
    /// without a value, quoted display names with commas and escapes, unknown headers kept.
    @Test func headerFormsTheGrammarAllows() throws {
        let bytes = wire([
            "OPTIONS sip:carol@chicago.com SIP/2.0",
            "v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1 , SIP / 2.0 / tcp [2001:db8::9]:5061;branch=z9hG4bK2;rport",
            "Via: SIP/2.0/TLS b.example.com:5071;received=192.0.2.7;branch=z9hG4bK3",
            "f: \"\\\"Bob\\\" the \\\\ builder\" <sip:b@x.example>;tag=abc",
            "t: sip:carol@chicago.com",
            "i: 1j9FpLxk3uxtm8tn@biloxi.example.com",
            "CSeq: 7 OPTIONS",
            "m: <sip:a@b.example>;expires=60, \"Bob, Jr.\" <sip:bob@c.example>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"",
            "Subject: a long",
            "  folded\tsubject",
            "X-Custom-Thing: kept;as=is",
            "l: 0",
        ])
        let m = try SIPMessage(parsing: bytes)
        let vias = m.vias
        #expect(vias.count == 3)
        #expect(vias[1].transport == "TCP" && vias[1].host == "[2001:db8::9]" && vias[1].port == 5061 && vias[1].rport == "")
        #expect(vias[2].received == "192.0.2.7" && vias[2].port == 5071)
        #expect(m.from?.displayName == "\"Bob\" the \\ builder" && m.from?.tag == "abc")
        #expect(m.to?.uri == "sip:carol@chicago.com" && m.to?.tag == nil)
        #expect(m.callID == "1j9FpLxk3uxtm8tn@biloxi.example.com")
        #expect(m.contacts.count == 2)
        #expect(m.contacts[1].displayName == "Bob, Jr.")
        #expect(m.contacts[1].parameters["+sip.instance"] == "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"")
        #expect(m.contacts[0].parameters["expires"] == "60")
        #expect(m.headers.first("subject") == "a long folded\tsubject")
        #expect(m.headers.first("X-Custom-Thing") == "kept;as=is")
        #expect(m.headers.fields.map(\.name).last == "l")
        #expect(m.body.isEmpty)
        try m.validate()
    }

    @Test func responsesAndTheirMethod() throws {
        let m = try SIPMessage(parsing: wire([
            "SIP/2.0 486 Busy Here", "Via: SIP/2.0/UDP h;branch=z9hG4bKx", "From: <sip:a@h>;tag=1", "To: <sip:b@h>;tag=2",
            "Call-ID: c", "CSeq: 2 INVITE", "Content-Length: 0",
        ]))
        #expect(m.startLine == .response(statusCode: 486, reasonPhrase: "Busy Here"))
        #expect(m.method == .invite && m.statusCode == 486 && !m.isRequest)
        let empty = try SIPMessage(parsing: Array("\r\n\r\n".utf8) + wire(["SIP/2.0 200 ", "CSeq: 1 BYE"]))
        #expect(empty.startLine == .response(statusCode: 200, reasonPhrase: ""))
    }

    /// Each malformed input is a typed error, never a crash.
    @Test func malformedInputIsATypedError() {
        func error(_ bytes: [UInt8], limits: SIPLimits = SIPLimits()) -> SIPParseError? {
            do { _ = try SIPMessage(parsing: bytes, limits: limits); return nil } catch { return error }
        }
        let ok = ["INVITE sip:b@h SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "CSeq: 1 INVITE"]
        #expect(error(Array("INVITE sip:b@h SIP/2.0\r\nVia: x\r\n".utf8)) == .noEndOfHeaders)
        #expect(error(wire(["INVITE sip:b@h SIP/7.0"])) == .unsupportedVersion("SIP/7.0"))
        #expect(error(wire(["SIP/1.0 200 OK"])) == .unsupportedVersion("SIP/1.0"))
        #expect(error(wire(["INVITE sip:b@h"])) == .malformedStartLine)
        #expect(error(wire(["INV ITE sip:b@h SIP/2.0"])) == .malformedStartLine)
        #expect(error(wire(["SIP/2.0 99 Too Low"])) == .malformedStartLine)
        #expect(error(wire(ok + ["Content-Length: 10"], body: "short")) == .truncatedBody(expected: 10, got: 5))
        #expect(error(wire(ok + ["Content-Length: -1"])) == .invalidHeader("Content-Length"))
        #expect(error(wire(ok + ["Content-Length: 0", "l: 3"], body: "abc")) == .invalidHeader("Content-Length"))
        #expect(error(wire(ok + ["no colon here"])) == .malformedHeaderField(line: 4))
        #expect(error(wire(ok + ["Bad Name: x"])) == .malformedHeaderField(line: 4))
        #expect(error(wire(["INVITE sip:b@h SIP/2.0", " folded first"])) == .malformedHeaderField(line: 2))
        #expect(error(wire(ok + (0..<10).map { "X-\($0): y" }), limits: SIPLimits(maximumHeaderFields: 8)) == .tooManyHeaderFields(limit: 8))
        #expect(error(wire(ok + ["X: " + String(repeating: "y", count: 9000)])) == .lineTooLong(limit: 8192))
        #expect(error([UInt8](repeating: 0x41, count: 70_000)) == .tooLarge(limit: 65_535))
        #expect(error([0xFF, 0xFE, 0x0D, 0x0A, 0x0D, 0x0A]) == .malformedStartLine)
    }

    /// What a UA needs before it acts on a request; failures name the reason for a 400.
    @Test func validationNamesWhatIsWrong() throws {
        func failure(_ lines: [String]) throws -> SIPParseError? {
            do { try SIPMessage(parsing: wire(lines)).validate(); return nil } catch { return error }
        }
        let base = ["BYE sip:b@h SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>;tag=2", "Call-ID: c", "CSeq: 3 BYE"]
        #expect(try failure(base) == nil)
        #expect(try failure(base.filter { !$0.hasPrefix("Call-ID") }) == .missingHeader("Call-ID"))
        #expect(try failure(base.map { $0.hasPrefix("CSeq") ? "CSeq: 3 INVITE" : $0 }) == .invalidHeader("CSeq"))
        #expect(try failure(base.map { $0.hasPrefix("CSeq") ? "CSeq: x BYE" : $0 }) == .invalidHeader("CSeq"))
        #expect(try failure(base.map { $0.hasPrefix("Via") ? "Via: SIP/2.0/UDP h" : $0 }) == .invalidHeader("Via"))
        #expect(try failure(base.map { $0.hasPrefix("Via") ? "Via: HTTP/1.1/TCP h;branch=z9hG4bK1" : $0 }) == .invalidHeader("Via"))
        #expect(try failure(base.filter { !$0.hasPrefix("Via") }) == .missingHeader("Via"))
        #expect(try failure(base.map { $0.hasPrefix("To") ? "To: nobody" : $0 }) == .invalidHeader("To"))
        #expect(try failure(base + ["Max-Forwards: 300"]) == .invalidHeader("Max-Forwards"))
        #expect(try failure(base.map { $0.hasPrefix("BYE") ? "ACK sip:b@h SIP/2.0" : $0.hasPrefix("CSeq") ? "CSeq: 3 INVITE" : $0 }) == nil)
    }

    /// A response copies Via, From, To, Call-ID and CSeq and adds the To tag (RFC 3261 §8.2.6.2).
    @Test func responseToARequest() throws {
        let request = try SIPMessage(parsing: wire([
            "REGISTER sip:registrar.biloxi.com SIP/2.0", "CSeq: 1826 REGISTER", "Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7",
            "Via: SIP/2.0/UDP proxy;branch=z9hG4bK2", "To: Bob <sip:bob@biloxi.com>", "From: Bob <sip:bob@biloxi.com>;tag=456248",
            "Call-ID: 843817637684230@998sdasdh09", "Max-Forwards: 70", "Contact: <sip:bob@192.0.2.4>",
        ]))
        let response = request.response(statusCode: 400, reasonPhrase: "Missing Call-ID header", toTag: "xyz")
        #expect(response.headers.fields.map(\.name) == ["Via", "Via", "From", "To", "Call-ID", "CSeq"])
        #expect(response.to?.tag == "xyz" && response.from?.tag == "456248")
        #expect(response.vias.map(\.branch) == ["z9hG4bKnashds7", "z9hG4bK2"])
        let parsed = try SIPMessage(parsing: response.serialized())
        #expect(parsed.statusCode == 400 && parsed.headers.first("Content-Length") == "0")
        let tagged = try SIPMessage(parsing: wire(["BYE sip:b@h SIP/2.0", "To: <sip:b@h>;tag=keep"])).response(statusCode: 200, reasonPhrase: "OK", toTag: "new")
        #expect(tagged.to?.tag == "keep")
    }

    /// Serializing writes one line per field and a Content-Length that matches the body;
    /// parsing that again gives the same bytes.
    @Test func serializationIsStable() throws {
        var m = SIPMessage(startLine: .request(method: .invite, requestURI: "sip:bob@biloxi.com"))
        m.headers.append("Via", Via(transport: "UDP", host: "[::1]", port: 5062, parameters: [("branch", "z9hG4bK7"), ("rport", "")]).serialized)
        m.headers.append("Content-Length", "999")
        m.headers.append("CSeq", CSeq(sequence: 1, method: .invite).serialized)
        m.body = Array(Self.sdp.utf8)
        let once = m.serialized()
        let parsed = try SIPMessage(parsing: once)
        #expect(parsed.serialized() == once)
        #expect(parsed.headers.first("Content-Length") == String(Self.sdp.utf8.count))
        #expect(parsed.vias.first?.serialized == "SIP/2.0/UDP [::1]:5062;branch=z9hG4bK7;rport")
        var headers = parsed.headers
        headers.append("Via", "SIP/2.0/UDP second;branch=z9hG4bK8")
        headers.set("v", "SIP/2.0/UDP only;branch=z9hG4bK9")
        #expect(headers.values("Via") == ["SIP/2.0/UDP only;branch=z9hG4bK9"])
        headers.remove("Via")
        #expect(headers.values("Via").isEmpty)
    }
}

@Suite("SIP stream framing")
struct SIPStreamFramerTests {
    /// Messages and keep-alives arrive in pieces of any size; each comes out whole, once.
    @Test func framesMessagesAndKeepAlivesAcrossAnySplit() throws {
        let one = wire(["OPTIONS sip:a@h SIP/2.0", "CSeq: 1 OPTIONS", "Content-Length: 4"], body: "abcd")
        let two = wire(["SIP/2.0 200 OK", "CSeq: 1 OPTIONS", "l: 0"])
        let stream = one + Array("\r\n\r\n".utf8) + two + Array("\r\n".utf8)
        var generator = SplitMix(seed: 7)
        for _ in 0..<50 {
            var framer = SIPStreamFramer()
            var items: [SIPStreamFramer.Item] = []
            var offset = 0
            while offset < stream.count {
                let n = Int(generator.next() % 40) + 1
                try framer.append(stream[offset..<min(stream.count, offset + n)])
                offset += n
                while let item = try framer.next() { items.append(item) }
            }
            #expect(items.count == 4)
            guard items.count == 4, case .message(let first) = items[0], case .message(let second) = items[2] else { continue }
            #expect(first.body == Array("abcd".utf8))
            #expect(items[1] == .keepAlivePing && items[3] == .keepAlivePong)
            #expect(second.statusCode == 200)
            #expect(framer.pendingBytes == 0)
        }
    }

    @Test func streamsNeedContentLengthAndBoundedMessages() throws {
        var framer = SIPStreamFramer()
        try framer.append(wire(["OPTIONS sip:a@h SIP/2.0", "CSeq: 1 OPTIONS"]))
        #expect(throws: SIPParseError.missingContentLength) { _ = try framer.next() }

        var small = SIPStreamFramer(limits: SIPLimits(maximumMessageBytes: 200))
        try small.append(wire(["OPTIONS sip:a@h SIP/2.0", "Content-Length: 500"]))
        #expect(throws: SIPParseError.tooLarge(limit: 200)) { _ = try small.next() }

        var endless = SIPStreamFramer(limits: SIPLimits(maximumMessageBytes: 200))
        #expect(throws: SIPParseError.tooLarge(limit: 200)) { try endless.append([UInt8](repeating: 0x41, count: 300)) }
    }
}

/// A small deterministic generator for the split points.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("SIP error responses")
struct SIPErrorResponseTests {
    /// A request that fails gets a 400 naming the reason, with the fields its client matches on.
    @Test func malformedRequestsGet400WithAReason() throws {
        let broken = wire([
            "INVITE sip:bob@biloxi.example.com SIP/2.0", "v: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKbad", "f: <sip:a@atlanta.example.com>;tag=1",
            "To: <sip:bob@biloxi.example.com>", "i: broken-1", "CSeq: 9 INVITE", "Content-Length: 50", "this line has no colon",
        ])
        var caught: SIPParseError?
        do { _ = try SIPMessage(parsing: broken) } catch { caught = error }
        let error = try #require(caught)
        #expect(error == .malformedHeaderField(line: 8))
        let response = try #require(SIPMessage.badRequest(for: broken, error: error))
        #expect(response.startLine == .response(statusCode: 400, reasonPhrase: "Malformed header field on line 8"))
        #expect(response.headers.fields.map(\.name) == ["Via", "From", "To", "Call-ID", "CSeq"])
        #expect(response.vias.first?.branch == "z9hG4bKbad" && response.callID == "broken-1")
        let parsed = try SIPMessage(parsing: response.serialized())
        #expect(SIPTransactionKey(parsed) != nil)

        // A version other than 2.0 is a 505 (RFC 3261 §21.5.7).
        let future = wire(["OPTIONS sip:a@h SIP/7.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK7", "CSeq: 1 OPTIONS"])
        #expect(SIPMessage.badRequest(for: future, error: .unsupportedVersion("SIP/7.0"))?.statusCode == 505)
        // Validation failures use the same path.
        let noCallID = try SIPMessage(parsing: wire(["BYE sip:b@h SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK2", "From: <sip:a@h>;tag=1", "To: <sip:b@h>", "CSeq: 1 BYE"]))
        #expect(throws: SIPParseError.missingHeader("Call-ID")) { try noCallID.validate() }
        #expect(SIPMessage.badRequest(for: noCallID.serialized(), error: .missingHeader("Call-ID"))?.reasonPhrase == "Missing Call-ID header")
    }

    /// Responses, and requests without a usable Via, get nothing back.
    @Test func nothingToAnswer() {
        #expect(SIPMessage.badRequest(for: wire(["SIP/2.0 200 OK", "Via: SIP/2.0/UDP h;branch=z9hG4bK1"]), error: .malformedStartLine) == nil)
        #expect(SIPMessage.badRequest(for: wire(["INVITE sip:b@h SIP/2.0", "Via: nonsense"]), error: .invalidHeader("Via")) == nil)
        #expect(SIPMessage.badRequest(for: Array("garbage".utf8), error: .noEndOfHeaders) == nil)
        #expect(SIPMessage.badRequest(for: [UInt8](repeating: 0x0A, count: 10), error: .malformedStartLine) == nil)
    }
}
