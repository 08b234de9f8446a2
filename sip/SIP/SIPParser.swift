/// Why bytes are not a SIP message; ``reasonPhrase`` is what a `400 Bad Request` says.
public enum SIPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(limit: Int)
    case lineTooLong(limit: Int)
    case tooManyHeaderFields(limit: Int)
    case noEndOfHeaders
    case malformedStartLine
    /// The SIP-Version of the start line is not SIP/2.0 (answered with 505).
    case unsupportedVersion(String)
    case malformedHeaderField(line: Int)
    case invalidHeader(String)
    case missingHeader(String)
    /// The body is shorter than Content-Length.
    case truncatedBody(expected: Int, got: Int)
    /// A stream message without Content-Length cannot be framed (RFC 3261 §18.3).
    case missingContentLength

    public var description: String { reasonPhrase }

    public var reasonPhrase: String {
        switch self {
        case .tooLarge(let limit): "Message larger than \(limit) bytes"
        case .lineTooLong(let limit): "Line longer than \(limit) bytes"
        case .tooManyHeaderFields(let limit): "More than \(limit) header fields"
        case .noEndOfHeaders: "No empty line after the headers"
        case .malformedStartLine: "Malformed start line"
        case .unsupportedVersion(let v): "Version \(v) not supported"
        case .malformedHeaderField(let line): "Malformed header field on line \(line)"
        case .invalidHeader(let name): "Invalid \(name) header"
        case .missingHeader(let name): "Missing \(name) header"
        case .truncatedBody(let expected, let got): "Body of \(got) bytes, Content-Length \(expected)"
        case .missingContentLength: "Missing Content-Length on a stream"
        }
    }
}

/// Bounds on what the parser accepts from the network.
public struct SIPLimits: Sendable, Equatable {
    /// A whole message, header section and body (UDP's largest datagram by default).
    public var maximumMessageBytes: Int
    public var maximumLineBytes: Int
    public var maximumHeaderFields: Int

    public init(maximumMessageBytes: Int = 65_535, maximumLineBytes: Int = 8_192, maximumHeaderFields: Int = 256) {
        self.maximumMessageBytes = maximumMessageBytes
        self.maximumLineBytes = maximumLineBytes
        self.maximumHeaderFields = maximumHeaderFields
    }
}

extension SIPMessage {
    /// Parses a message that arrived in one datagram (RFC 3261 §18.3): the body is what
    /// follows the header section, cut to Content-Length when that is shorter. Empty lines
    /// before the start line are skipped (§7.5).
    public init(parsing datagram: some Collection<UInt8>, limits: SIPLimits = SIPLimits()) throws(SIPParseError) {
        guard datagram.count <= limits.maximumMessageBytes else { throw .tooLarge(limit: limits.maximumMessageBytes) }
        let bytes = Array(datagram.drop { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") })
        guard let end = SIPHeaderSection.end(in: bytes, from: 0) else { throw .noEndOfHeaders }
        let section = try SIPHeaderSection(bytes[0..<end.headers], limits: limits)
        let available = bytes.count - end.body
        let length = try section.contentLength() ?? available
        guard length <= available else { throw .truncatedBody(expected: length, got: available) }
        self.init(startLine: section.startLine, headers: section.headers, body: Array(bytes[end.body..<(end.body + length)]))
    }

    /// Checks what RFC 3261 §8.1.1 and §8.2 require of a message a UA acts on: Via (parsable,
    /// with a branch on requests), From and To, Call-ID, a CSeq whose method matches the
    /// request's. A request that fails gets `400` with the error's reason phrase.
    public func validate() throws(SIPParseError) {
        let vias = headers.values("Via")
        guard !vias.isEmpty else { throw .missingHeader("Via") }
        guard let top = Via(parsing: vias[0]) else { throw .invalidHeader("Via") }
        for (name, value) in [("From", headers.first("From")), ("To", headers.first("To"))] {
            guard let value else { throw .missingHeader(name) }
            guard NameAddress(parsing: value) != nil else { throw .invalidHeader(name) }
        }
        guard let callID = callID, !callID.isEmpty else { throw .missingHeader("Call-ID") }
        guard let cseqText = headers.first("CSeq") else { throw .missingHeader("CSeq") }
        guard let cseq = CSeq(parsing: cseqText) else { throw .invalidHeader("CSeq") }
        if case .request(let method, _) = startLine {
            guard cseq.method == method || (method == .ack && cseq.method == .invite) || (method == .cancel && cseq.method == .cancel) else { throw .invalidHeader("CSeq") }
            guard top.branch?.isEmpty == false else { throw .invalidHeader("Via") }
            if let text = headers.first("Max-Forwards") {
                guard let n = Int(text), (0...255).contains(n) else { throw .invalidHeader("Max-Forwards") }
            }
        }
    }
}

/// Frames the messages of a stream transport (TCP, TLS) by Content-Length (RFC 3261 §18.3),
/// and passes on the CRLF keep-alives of RFC 5626 §3.5.1 between them. Holds at most
/// one message's bytes beyond what was framed.
public struct SIPStreamFramer: Sendable {
    public enum Item: Hashable, Sendable {
        case message(SIPMessage)
        /// A double CRLF: the peer pings, and expects a single CRLF back.
        case keepAlivePing
        /// A single CRLF: the peer's answer to a ping.
        case keepAlivePong
    }

    public let limits: SIPLimits
    private var buffer: [UInt8] = []
    private var start = 0

    public init(limits: SIPLimits = SIPLimits()) { self.limits = limits }

    /// Bytes waiting to be framed.
    public var pendingBytes: Int { buffer.count - start }

    /// Adds bytes read from the stream. Throws, and should close the connection, when
    /// they cannot be the start of a message within the limits.
    public mutating func append(_ bytes: some Sequence<UInt8>) throws(SIPParseError) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
        // A header section must end within a message's size; a body is bounded by its Content-Length.
        if pendingBytes > limits.maximumMessageBytes + 4, SIPHeaderSection.end(in: buffer, from: start) == nil {
            throw .tooLarge(limit: limits.maximumMessageBytes)
        }
    }

    /// The next complete item, or nil until more bytes come.
    public mutating func next() throws(SIPParseError) -> Item? {
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        if pendingBytes >= 2, buffer[start] == cr, buffer[start + 1] == lf {
            if pendingBytes >= 4, buffer[start + 2] == cr, buffer[start + 3] == lf {
                start += 4
                return .keepAlivePing
            }
            if pendingBytes == 2 || buffer[start + 2] != cr {
                start += 2
                return .keepAlivePong
            }
            return nil  // "\r\n\r": the rest of a ping is on its way
        }
        guard let end = SIPHeaderSection.end(in: buffer, from: start) else {
            if pendingBytes > limits.maximumMessageBytes { throw .tooLarge(limit: limits.maximumMessageBytes) }
            return nil
        }
        let section = try SIPHeaderSection(buffer[start..<end.headers], limits: limits)
        guard let length = try section.contentLength() else { throw .missingContentLength }
        guard end.body - start + length <= limits.maximumMessageBytes else { throw .tooLarge(limit: limits.maximumMessageBytes) }
        guard buffer.count - end.body >= length else { return nil }
        let body = Array(buffer[end.body..<(end.body + length)])
        start = end.body + length
        return .message(SIPMessage(startLine: section.startLine, headers: section.headers, body: body))
    }
}

/// The start line and header fields of one message (RFC 3261 §7.1–7.3), with folding undone.
struct SIPHeaderSection {
    var startLine: SIPStartLine
    var headers: SIPHeaders

    /// Where the header section ends (before its empty line) and the body begins; a lone
    /// LF is taken for CRLF, as RFC 3261 §7.5 lets implementations do.
    static func end(in bytes: [UInt8], from: Int) -> (headers: Int, body: Int)? {
        let lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var i = from
        while i < bytes.count {
            if bytes[i] == lf {
                // LF then (CR) LF: the empty line.
                if i + 1 < bytes.count, bytes[i + 1] == lf { return (i + 1, i + 2) }
                if i + 2 < bytes.count, bytes[i + 1] == cr, bytes[i + 2] == lf { return (i + 1, i + 3) }
            }
            i += 1
        }
        return nil
    }

    /// The LF-terminated lines of `bytes`, each without its CR LF (or lone LF); bytes after
    /// the last LF are not a line.
    static func lines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = bytes.startIndex
        for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") {
            var end = i
            if end > lineStart, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            lines.append(bytes[lineStart..<end])
            lineStart = i + 1
        }
        return lines
    }

    /// `bytes` is a header section as ``end(in:from:)`` delimits it, so it ends with a LF.
    init(_ bytes: ArraySlice<UInt8>, limits: SIPLimits) throws(SIPParseError) {
        var lines = Self.lines(bytes)
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let first = lines.first else { throw .malformedStartLine }
        for line in lines where line.count > limits.maximumLineBytes { throw .lineTooLong(limit: limits.maximumLineBytes) }
        startLine = try Self.startLine(String(decoding: first, as: UTF8.self))

        var fields: [SIPHeaderField] = []
        for (number, line) in lines.enumerated().dropFirst() {
            guard let b = line.first else { throw .malformedHeaderField(line: number + 1) }
            if b == 0x20 || b == 0x09 {
                // Folded continuation (LWS, RFC 3261 §7.3.1): one space joins it to the value.
                guard !fields.isEmpty else { throw .malformedHeaderField(line: number + 1) }
                let more = HeaderValue.trimmed(Array(line))
                if !more.isEmpty { fields[fields.count - 1].value += (fields[fields.count - 1].value.isEmpty ? "" : " ") + more }
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .malformedHeaderField(line: number + 1) }
            let name = HeaderValue.trimmed(Array(line[line.startIndex..<colon]))
            guard SIPGrammar.isToken(name) else { throw .malformedHeaderField(line: number + 1) }
            guard fields.count < limits.maximumHeaderFields else { throw .tooManyHeaderFields(limit: limits.maximumHeaderFields) }
            fields.append(SIPHeaderField(name: name, value: HeaderValue.trimmed(Array(line[(colon + 1)...]))))
        }
        headers = SIPHeaders(fields)
    }

    /// Request-Line = Method SP Request-URI SP SIP-Version; Status-Line = SIP-Version SP
    /// Status-Code SP Reason-Phrase.
    static func startLine(_ line: String) throws(SIPParseError) -> SIPStartLine {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2 else { throw .malformedStartLine }
        if parts[0].uppercased().hasPrefix("SIP/") {
            guard parts[0] == "SIP/2.0" else { throw .unsupportedVersion(String(parts[0])) }
            guard parts[1].count == 3, let code = Int(parts[1]), (100...699).contains(code) else { throw .malformedStartLine }
            return .response(statusCode: code, reasonPhrase: parts.count > 2 ? String(parts[2]) : "")
        }
        guard parts.count == 3, SIPGrammar.isToken(parts[0]), !parts[1].isEmpty, parts[1].contains(":") else { throw .malformedStartLine }
        guard parts[2].uppercased().hasPrefix("SIP/") else { throw .malformedStartLine }
        guard parts[2] == "SIP/2.0" else { throw .unsupportedVersion(String(parts[2])) }
        return .request(method: SIPMethod(String(parts[0])), requestURI: String(parts[1]))
    }

    /// The Content-Length (RFC 3261 §20.14); nil when absent. Several that disagree, or one
    /// that is not a non-negative number, are an error.
    func contentLength() throws(SIPParseError) -> Int? {
        let values = headers.values("Content-Length")
        guard let first = values.first else { return nil }
        guard first.utf8.count <= 9, first.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(first) else { throw .invalidHeader("Content-Length") }
        guard values.allSatisfy({ Int($0) == n }) else { throw .invalidHeader("Content-Length") }
        return n
    }
}

extension SIPMessage {
    /// The `400 Bad Request` for a request that did not parse or validate (RFC 3261 §8.2,
    /// §21.4.1): the reason phrase names the error, and the Via, From, To, Call-ID and CSeq
    /// fields are copied from whatever lines of `bytes` still read as such, so the client's
    /// transaction can match it. Nil when the bytes are not a request, or carry no usable Via
    /// (there is nowhere to send a response then; the datagram is dropped and counted).
    public static func badRequest(for bytes: some Collection<UInt8>, error: SIPParseError, limits: SIPLimits = SIPLimits()) -> SIPMessage? {
        // Lines up to the first empty one, each cut at the line-length bound.
        let lines = SIPHeaderSection.lines(Array(bytes.prefix(limits.maximumMessageBytes))[...])
            .prefix { !$0.isEmpty }
            .prefix(limits.maximumHeaderFields + 1)
            .map { String(decoding: $0.prefix(limits.maximumLineBytes), as: UTF8.self) }
        guard let first = lines.first, !first.uppercased().hasPrefix("SIP/"), first.split(separator: " ").count >= 2 else { return nil }
        var response = SIPMessage(startLine: .response(statusCode: error.statusCode, reasonPhrase: error.reasonPhrase))
        var copied: Set<String> = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = SIPHeaderName.canonical(line[..<colon].trimmingWhitespace())
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            guard ["Via", "From", "To", "Call-ID", "CSeq"].contains(name), !value.isEmpty else { continue }
            if name != "Via" && copied.contains(name) { continue }
            copied.insert(name)
            response.headers.append(name, value)
        }
        guard let via = response.headers.values("Via").first, Via(parsing: via) != nil else { return nil }
        return response
    }
}

extension SIPParseError {
    /// The response code for this error: 505 for a SIP version other than 2.0, 400 otherwise.
    public var statusCode: Int {
        if case .unsupportedVersion = self { return 505 }
        return 400
    }
}
