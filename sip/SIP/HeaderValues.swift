/// Header names: compact forms (RFC 3261 §7.3.3, §20; RFC 3265, 3515, 3892, 4028, 3841,
/// 4474), canonical spelling, and which headers carry comma-separated lists.
public enum SIPHeaderName {
    static let compact: [String: String] = [
        "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
        "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "r": "Refer-To",
        "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires", "a": "Accept-Contact", "j": "Reject-Contact",
        "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
    ]

    /// Canonical spellings of the headers a UA reads, by lowercased name.
    static let known: [String: String] = {
        let names = ["Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info", "Authorization",
                     "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
                     "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires", "From", "In-Reply-To",
                     "Max-Forwards", "Min-Expires", "MIME-Version", "Organization", "Priority", "Proxy-Authenticate",
                     "Proxy-Authorization", "Proxy-Require", "Record-Route", "Reply-To", "Require", "Retry-After", "Route",
                     "Server", "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
                     "WWW-Authenticate", "RSeq", "RAck", "Session-Expires", "Min-SE", "Event", "Allow-Events", "Refer-To",
                     "Referred-By", "Accept-Contact", "Reject-Contact", "Request-Disposition", "Identity", "Identity-Info",
                     "Path", "Service-Route", "P-Asserted-Identity", "Reason"]
        return Dictionary(uniqueKeysWithValues: names.map { ($0.lowercased(), $0) })
    }()

    /// Headers whose value is a comma-separated list (RFC 3261 §7.3.1); the
    /// authentication headers are not (their parameters are separated by commas).
    static let lists: Set<String> = [
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Call-Info", "Contact", "Content-Encoding",
        "Content-Language", "Error-Info", "In-Reply-To", "Proxy-Require", "Record-Route", "Require", "Route", "Supported",
        "Unsupported", "Via", "Warning", "Allow-Events", "Path", "Service-Route", "P-Asserted-Identity", "Reason",
        "Accept-Contact", "Reject-Contact", "Request-Disposition",
    ]

    /// The full name for `name`: a compact form expanded, a known header in its usual
    /// spelling, anything else as written.
    public static func canonical(_ name: String) -> String {
        if name.utf8.count == 1, let full = compact[name.lowercased()] { return full }
        return known[name.lowercased()] ?? name
    }

    public static func isList(_ canonicalName: String) -> Bool { lists.contains(canonicalName) }
}

/// Pieces of header values: list splitting, parameters, quoted strings.
public enum HeaderValue {
    /// Splits at commas outside quoted strings and angle brackets, trimming whitespace;
    /// empty elements are dropped.
    public static func splitList(_ value: String) -> [String] {
        split(value, at: UInt8(ascii: ","))
    }

    /// Splits at `separator` outside quoted strings (with backslash escapes) and `<…>`.
    static func split(_ value: String, at separator: UInt8) -> [String] {
        var out: [String] = []
        var current: [UInt8] = []
        var quoted = false, escaped = false, angle = 0
        for b in value.utf8 {
            if escaped { escaped = false; current.append(b); continue }
            switch b {
            case UInt8(ascii: "\\") where quoted: escaped = true
            case UInt8(ascii: "\""): quoted.toggle()
            case UInt8(ascii: "<") where !quoted: angle += 1
            case UInt8(ascii: ">") where !quoted && angle > 0: angle -= 1
            case separator where !quoted && angle == 0:
                let element = trimmed(current)
                if !element.isEmpty { out.append(element) }
                current.removeAll(keepingCapacity: true)
                continue
            default: break
            }
            current.append(b)
        }
        let element = trimmed(current)
        if !element.isEmpty { out.append(element) }
        return out
    }

    static func trimmed(_ bytes: [UInt8]) -> String {
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// The content of a quoted-string (RFC 3261 §25.1) with its backslash escapes undone;
    /// text that is not in double quotes is returned as it is.
    static func unquoted<S: StringProtocol>(_ text: S) -> String {
        guard text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") else { return String(text) }
        var out = "", escaped = false
        for c in text.dropFirst().dropLast() {
            if escaped { out.append(c); escaped = false } else if c == "\\" { escaped = true } else { out.append(c) }
        }
        return out
    }

    /// `;name=value` parameters (a name without a value maps to ""), names lowercased.
    /// Returns nil for an empty or unnamed parameter.
    static func parameters(_ text: String) -> [(name: String, value: String)]? {
        var out: [(String, String)] = []
        for piece in split(text, at: UInt8(ascii: ";")) {
            let parts = piece.split(separator: "=", maxSplits: 1).map { HeaderValue.trimmed(Array($0.utf8)) }
            guard let name = parts.first, !name.isEmpty else { return nil }
            out.append((name.lowercased(), parts.count > 1 ? parts[1] : ""))
        }
        return out
    }
}

/// A Via header value (RFC 3261 §20.42, §18.2.1; `rport` RFC 3581): protocol and transport,
/// the sent-by host and port, and parameters such as branch, received and rport.
public struct Via: Hashable, Sendable {
    public var transport: String
    public var host: String
    public var port: Int?
    public var parameters: [String: String]
    /// The parameters in the order written, for re-serialization.
    public var parameterOrder: [String]

    public var branch: String? { parameters["branch"] }
    /// `rport` present: "" until a server fills in the port it saw.
    public var rport: String? { parameters["rport"] }
    public var received: String? { parameters["received"] }
    /// The sent-by host without IPv6 brackets.
    public var bareHost: String { HostPort.bare(host) }

    public init(transport: String, host: String, port: Int?, parameters: [(String, String)] = []) {
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = Dictionary(parameters, uniquingKeysWith: { first, _ in first })
        self.parameterOrder = parameters.map(\.0)
    }

    /// Parses `SIP/2.0/UDP host[:port][;params]`; nil when malformed.
    public init?(parsing text: String) {
        let pieces = HeaderValue.split(text, at: UInt8(ascii: ";"))
        guard let sent = pieces.first else { return nil }
        // sent-protocol LWS sent-by, where SLASH and COLON may have whitespace around them
        // (SWS "/" SWS, RFC 3261 §25.1): drop that whitespace, then split once.
        let words = Self.closingUp(sent).split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 2 else { return nil }
        let protocolParts = words[0].split(separator: "/", omittingEmptySubsequences: false)
        guard protocolParts.count == 3, protocolParts[0].uppercased() == "SIP", protocolParts[1] == "2.0", SIPGrammar.isToken(protocolParts[2]) else { return nil }
        let transport = protocolParts[2].uppercased()
        guard let (host, port) = HostPort.parse(words[1]) else { return nil }
        guard let parameters = HeaderValue.parameters(pieces.dropFirst().joined(separator: ";")) else { return nil }
        self.init(transport: transport, host: host, port: port, parameters: parameters)
    }

    /// `text` without the whitespace next to "/" and ":".
    private static func closingUp(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        for (i, b) in bytes.enumerated() {
            if b == 0x20 || b == 0x09 {
                let before = out.last
                var j = i + 1
                while j < bytes.count, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
                let after = j < bytes.count ? bytes[j] : nil
                let separators: [UInt8] = [UInt8(ascii: "/"), UInt8(ascii: ":")]
                if before.map(separators.contains) == true || after.map(separators.contains) == true { continue }
            }
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var serialized: String {
        var text = "SIP/2.0/\(transport) \(HostPort.format(host: host, port: port))"
        for name in parameterOrder {
            let value = parameters[name] ?? ""
            text += value.isEmpty ? ";\(name)" : ";\(name)=\(value)"
        }
        return text
    }
}

/// `host[:port]` with IPv6 references in brackets (RFC 3261 §25.1).
public enum HostPort {
    static func parse<S: StringProtocol>(_ text: S) -> (String, Int?)? {
        let text = String(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[...close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port) else { return nil }
            return (host, port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard let host = parts.first, !host.isEmpty, parts.count <= 2 else { return nil }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }) else { return nil }
        if parts.count == 2 {
            guard let port = Int(parts[1]), (0...65535).contains(port) else { return nil }
            return (String(host), port)
        }
        return (String(host), nil)
    }

    /// `host[:port]`, bracketing an IPv6 address given without brackets.
    public static func format(host: String, port: Int?) -> String {
        let reference = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return port.map { "\(reference):\($0)" } ?? reference
    }

    /// The host without IPv6 brackets (`[::1]` → `::1`).
    public static func bare(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }
}

/// A From, To or Contact value (RFC 3261 §20.10, §20.20, §20.39): an optional display name,
/// the URI (in angle brackets or bare), and the header parameters after it (tag, expires,
/// +sip.instance, …). Contact `*` is kept as the URI "*".
public struct NameAddress: Hashable, Sendable {
    public var displayName: String?
    public var uri: String
    public var parameters: [String: String]

    public var tag: String? { parameters["tag"] }

    public init(displayName: String? = nil, uri: String, parameters: [String: String] = [:]) {
        self.displayName = displayName
        self.uri = uri
        self.parameters = parameters
    }

    public init?(parsing text: String) {
        let text = text.trimmingWhitespace()
        if text == "*" {
            self.init(uri: "*")
            return
        }
        var display: String?
        var uri: String
        var rest: Substring
        if let open = Self.unquotedIndex(of: "<", in: text) {
            guard let close = text[open...].firstIndex(of: ">") else { return nil }
            let name = HeaderValue.unquoted(text[..<open].trimmingWhitespace())
            display = name.isEmpty ? nil : name
            uri = String(text[text.index(after: open)..<close])
            rest = text[text.index(after: close)...]
        } else {
            // addr-spec without brackets: the URI ends at the first ';' (its parameters
            // are then the header's, RFC 3261 §20.10).
            let semicolon = text.firstIndex(of: ";") ?? text.endIndex
            uri = String(text[..<semicolon])
            rest = text[semicolon...]
        }
        uri = uri.trimmingWhitespace()
        guard !uri.isEmpty, uri.contains(":") else { return nil }
        let parameterText = rest.trimmingWhitespace()
        var parameters: [String: String] = [:]
        if !parameterText.isEmpty {
            guard parameterText.hasPrefix(";"), let list = HeaderValue.parameters(String(parameterText.dropFirst())) else { return nil }
            for (name, value) in list where parameters[name] == nil { parameters[name] = value }
        }
        self.init(displayName: display, uri: uri, parameters: parameters)
    }

    private static func unquotedIndex(of character: Character, in text: String) -> String.Index? {
        var quoted = false, escaped = false
        for i in text.indices {
            let c = text[i]
            if escaped { escaped = false; continue }
            if c == "\\" && quoted { escaped = true } else if c == "\"" { quoted.toggle() } else if c == character && !quoted { return i }
        }
        return nil
    }

}

/// A CSeq value (RFC 3261 §20.16): sequence number (< 2³¹) and method.
public struct CSeq: Hashable, Sendable {
    public var sequence: UInt32
    public var method: SIPMethod

    public init(sequence: UInt32, method: SIPMethod) {
        self.sequence = sequence
        self.method = method
    }

    public init?(parsing text: String) {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 2, let n = UInt32(parts[0]), n < 1 << 31, SIPGrammar.isToken(parts[1]) else { return nil }
        self.init(sequence: n, method: SIPMethod(String(parts[1])))
    }

    public var serialized: String { "\(sequence) \(method.name)" }
}

/// Character classes of the RFC 3261 §25.1 grammar.
enum SIPGrammar {
    /// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
    static func isToken<S: StringProtocol>(_ text: S) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return "-.!%*_+`'~".utf8.contains(b)
        }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        HeaderValue.trimmed(Array(utf8))
    }
}
