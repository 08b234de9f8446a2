/// RAck (RFC 3262 §7.2): the RSeq of the reliable provisional, and the CSeq of its request.
public struct RAck: Hashable, Sendable {
    public var responseNumber: UInt32
    public var cseq: CSeq

    public init(responseNumber: UInt32, cseq: CSeq) {
        self.responseNumber = responseNumber
        self.cseq = cseq
    }

    /// Parses `1 314 INVITE`.
    public init?(parsing text: String) {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 3, let rseq = UInt32(words[0]), let cseq = CSeq(parsing: "\(words[1]) \(words[2])") else { return nil }
        self.init(responseNumber: rseq, cseq: cseq)
    }

    public var serialized: String { "\(responseNumber) \(cseq.serialized)" }
}

extension SIPMessage {
    /// Route headers (RFC 3261 §20.34), in order.
    public var routes: [NameAddress] { headers.values("Route").compactMap(NameAddress.init(parsing:)) }
    /// Record-Route headers (§20.30), in order.
    public var recordRoutes: [NameAddress] { headers.values("Record-Route").compactMap(NameAddress.init(parsing:)) }
    /// Content-Length (§20.14) as given (serialization writes the body's own length).
    public var contentLength: Int? { headers.first("Content-Length").flatMap { Int($0) } }
    /// Min-Expires of a 423 (§20.23).
    public var minExpires: Int? { headers.first("Min-Expires").flatMap { Int($0) } }
    /// The methods in Allow (§20.5).
    public var allow: [SIPMethod] { headers.values("Allow").map { SIPMethod($0.uppercased()) } }
    /// Option tags of Supported and Require (§20.37, §20.32), lower-cased.
    public var supported: [String] { headers.values("Supported").map { $0.lowercased() } }
    public var require: [String] { headers.values("Require").map { $0.lowercased() } }
    /// RSeq of a reliable provisional (RFC 3262 §7.1).
    public var rseq: UInt32? { headers.first("RSeq").flatMap { UInt32($0) } }
    /// RAck of a PRACK (RFC 3262 §7.2).
    public var rack: RAck? { headers.first("RAck").flatMap(RAck.init(parsing:)) }
    /// Session-Expires (RFC 4028 §4).
    public var sessionExpires: SessionTimer? { headers.first("Session-Expires").flatMap(SessionTimer.init(parsing:)) }
    /// Min-SE (RFC 4028 §5), seconds.
    public var minSE: Int? { headers.first("Min-SE").flatMap { Int($0.split(separator: ";").first?.trimmingWhitespace() ?? "") } }
    /// WWW-Authenticate and Proxy-Authenticate digest challenges (RFC 8760), in order.
    public var challenges: [DigestChallenge] {
        (headers.values("WWW-Authenticate") + headers.values("Proxy-Authenticate")).compactMap(DigestChallenge.init(parsing:))
    }
}
