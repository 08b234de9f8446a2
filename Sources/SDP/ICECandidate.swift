/// An ICE candidate as SDP carries it (RFC 8839 §5.1):
/// `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
/// [raddr <address>] [rport <port>] *(<extension name> <extension value>)`.
public struct ICECandidate: Sendable, Hashable {
    /// Candidate types (RFC 8445 §5.1.1).
    public enum Kind: String, Sendable, Hashable {
        case host, srflx, prflx, relay
    }

    public var foundation: String
    /// 1 for RTP (and everything under rtcp-mux), 2 for RTCP.
    public var component: Int
    /// "udp" or "tcp" (lower-cased).
    public var transport: String
    public var priority: UInt32
    /// An IP address, or an mDNS `.local` name that a lite agent cannot resolve.
    public var address: String
    public var port: UInt16
    public var kind: Kind
    public var relatedAddress: String?
    public var relatedPort: UInt16?
    /// Extension attributes (`generation`, `ufrag`, `network-id`, `tcptype`, …), in order.
    public var extensions: [(name: String, value: String)]

    public init(foundation: String, component: Int = 1, transport: String = "udp", priority: UInt32, address: String, port: UInt16, kind: Kind, relatedAddress: String? = nil, relatedPort: UInt16? = nil, extensions: [(name: String, value: String)] = []) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.priority = priority
        self.address = address
        self.port = port
        self.kind = kind
        self.relatedAddress = relatedAddress
        self.relatedPort = relatedPort
        self.extensions = extensions
    }

    /// Parses the value of `a=candidate:` (with or without the `candidate:` prefix a
    /// browser's trickle message carries).
    public init(parsing text: String) throws(SDPError) {
        var body = Substring(text)
        if body.hasPrefix("candidate:") { body = body.dropFirst("candidate:".count) }
        let f = body.split(separator: " ")
        guard f.count >= 8, f.count <= 64, f[6] == "typ" else { throw .malformedLine(line: 0, reason: "candidate needs 8 fields with typ") }
        guard let component = Int(f[1]), (1...256).contains(component) else { throw .malformedLine(line: 0, reason: "bad candidate component") }
        guard let priority = UInt32(f[3]) else { throw .malformedLine(line: 0, reason: "bad candidate priority") }
        guard let port = UInt16(f[5]) else { throw .malformedLine(line: 0, reason: "bad candidate port") }
        guard let kind = Kind(rawValue: String(f[7])) else { throw .malformedLine(line: 0, reason: "unknown candidate type") }
        self.init(foundation: String(f[0]), component: component, transport: f[2].lowercased(), priority: priority, address: String(f[4]), port: port, kind: kind)
        var i = 8
        while i + 1 < f.count {
            let name = String(f[i]), value = String(f[i + 1])
            switch name {
            case "raddr": relatedAddress = value
            case "rport":
                guard let p = UInt16(value) else { throw .malformedLine(line: 0, reason: "bad rport") }
                relatedPort = p
            default: extensions.append((name, value))
            }
            i += 2
        }
        guard i == f.count else { throw .malformedLine(line: 0, reason: "candidate extension without a value") }
    }

    /// The value for `a=candidate:` (without the prefix).
    public var value: String {
        var out = "\(foundation) \(component) \(transport) \(priority) \(address) \(port) typ \(kind.rawValue)"
        if let a = relatedAddress { out += " raddr \(a)" }
        if let p = relatedPort { out += " rport \(p)" }
        for e in extensions { out += " \(e.name) \(e.value)" }
        return out
    }

    public static func == (a: ICECandidate, b: ICECandidate) -> Bool { a.value == b.value }
    public func hash(into hasher: inout Hasher) { hasher.combine(value) }
}
