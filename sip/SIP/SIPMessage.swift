/// A SIP method (RFC 3261 §7.1, §27.4): the standard ones by name, any other token kept as sent.
public struct SIPMethod: Hashable, Sendable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) { self.name = name }

    public static let invite = SIPMethod("INVITE")
    public static let ack = SIPMethod("ACK")
    public static let bye = SIPMethod("BYE")
    public static let cancel = SIPMethod("CANCEL")
    public static let register = SIPMethod("REGISTER")
    public static let options = SIPMethod("OPTIONS")
    public static let prack = SIPMethod("PRACK")
    public static let update = SIPMethod("UPDATE")
    public static let info = SIPMethod("INFO")

    public var description: String { name }
}

/// The first line of a message: a Request-Line or a Status-Line (RFC 3261 §7.1, §7.2).
public enum SIPStartLine: Hashable, Sendable {
    case request(method: SIPMethod, requestURI: String)
    case response(statusCode: Int, reasonPhrase: String)
}

/// One header field as it arrived: its name as written (compact or full, any case) and its
/// value with folding undone and surrounding whitespace removed (RFC 3261 §7.3.1).
public struct SIPHeaderField: Hashable, Sendable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// The full, canonical name (compact forms expanded, RFC 3261 §7.3.3).
    public var canonicalName: String { SIPHeaderName.canonical(name) }
}

/// The header fields of a message in the order they came, unknown ones included. Lookup
/// is by name, case-insensitive, compact and full forms alike; list-valued headers
/// (Via, Contact, Route, …) written as several fields or comma-separated in one give the
/// same ``values(_:)`` (RFC 3261 §7.3.1).
public struct SIPHeaders: Hashable, Sendable, Sequence {
    public private(set) var fields: [SIPHeaderField]

    public init(_ fields: [SIPHeaderField] = []) { self.fields = fields }

    public func makeIterator() -> IndexingIterator<[SIPHeaderField]> { fields.makeIterator() }

    public var count: Int { fields.count }

    /// The value of the first field named `name` (whole, not split at commas).
    public func first(_ name: String) -> String? {
        let canonical = SIPHeaderName.canonical(name)
        return fields.first { $0.canonicalName == canonical }?.value
    }

    /// Every value of the fields named `name`: list headers split at top-level commas
    /// (not inside quotes or angle brackets); others one value per field.
    public func values(_ name: String) -> [String] {
        let canonical = SIPHeaderName.canonical(name)
        let matching = fields.filter { $0.canonicalName == canonical }.map(\.value)
        guard SIPHeaderName.isList(canonical) else { return matching }
        return matching.flatMap { HeaderValue.splitList($0) }
    }

    public mutating func append(_ name: String, _ value: String) {
        fields.append(SIPHeaderField(name: name, value: value))
    }

    /// Replaces every field named `name` with one field of `value` (in the first one's place).
    public mutating func set(_ name: String, _ value: String) {
        let canonical = SIPHeaderName.canonical(name)
        guard let i = fields.firstIndex(where: { $0.canonicalName == canonical }) else {
            append(name, value)
            return
        }
        fields[i].value = value
        var kept = false
        fields.removeAll { field in
            guard field.canonicalName == canonical else { return false }
            defer { kept = true }
            return kept
        }
    }

    public mutating func remove(_ name: String) {
        let canonical = SIPHeaderName.canonical(name)
        fields.removeAll { $0.canonicalName == canonical }
    }
}

/// A SIP request or response (RFC 3261 §7): start line, header fields, and the body as
/// opaque bytes (its type is the Content-Type header; SDP is parsed elsewhere).
public struct SIPMessage: Hashable, Sendable {
    public var startLine: SIPStartLine
    public var headers: SIPHeaders
    public var body: [UInt8]

    public init(startLine: SIPStartLine, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) {
        self.startLine = startLine
        self.headers = headers
        self.body = body
    }

    public var isRequest: Bool { if case .request = startLine { true } else { false } }

    /// The request's method, or the method of the request a response answers (from CSeq).
    public var method: SIPMethod? {
        switch startLine {
        case .request(let method, _): return method
        case .response: return cseq?.method
        }
    }

    public var statusCode: Int? { if case .response(let code, _) = startLine { code } else { nil } }

    public var callID: String? { headers.first("Call-ID") }
    public var cseq: CSeq? { headers.first("CSeq").flatMap(CSeq.init(parsing:)) }
    /// The Via headers, topmost first.
    public var vias: [Via] { headers.values("Via").compactMap(Via.init(parsing:)) }
    public var from: NameAddress? { headers.first("From").flatMap(NameAddress.init(parsing:)) }
    public var to: NameAddress? { headers.first("To").flatMap(NameAddress.init(parsing:)) }
    public var contacts: [NameAddress] { headers.values("Contact").compactMap(NameAddress.init(parsing:)) }
    public var maxForwards: Int? { headers.first("Max-Forwards").flatMap { Int($0) } }
    public var expires: Int? { headers.first("Expires").flatMap { Int($0) } }
    public var contentType: String? { headers.first("Content-Type") }

    /// The message as bytes: start line, the fields in order, and a Content-Length that
    /// matches the body (replacing any given one, RFC 3261 §20.14).
    public func serialized() -> [UInt8] {
        var text: String
        switch startLine {
        case .request(let method, let uri): text = "\(method.name) \(uri) SIP/2.0\r\n"
        case .response(let code, let reason): text = "SIP/2.0 \(code) \(reason)\r\n"
        }
        for field in headers where field.canonicalName != "Content-Length" {
            text += "\(field.name): \(field.value)\r\n"
        }
        text += "Content-Length: \(body.count)\r\n\r\n"
        return Array(text.utf8) + body
    }

    /// A response to this request that copies Via, From, To, Call-ID and CSeq, adding a To
    /// tag when one is given and the request's To has none (RFC 3261 §8.2.6.2).
    public func response(statusCode: Int, reasonPhrase: String, toTag: String? = nil) -> SIPMessage {
        var out = SIPMessage(startLine: .response(statusCode: statusCode, reasonPhrase: reasonPhrase))
        // In the order of §8.2.6.2's list, whatever the request's order; only the first To.
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for field in headers where field.canonicalName == name {
                var value = field.value
                if name == "To", let toTag, let parsed = NameAddress(parsing: value), parsed.tag == nil { value += ";tag=\(toTag)" }
                out.headers.append(name, value)
                if name == "To" { break }
            }
        }
        return out
    }
}
