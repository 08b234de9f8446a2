/// `host[:port]` as configured for a SIP peer: a DNS name, an IPv4 address, or an IPv6
/// address (in brackets when a port follows, RFC 3986 §3.2.2).
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int?

    public init?(_ text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), IPAddress(String(text[text.index(after: text.startIndex)..<close])) != nil else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { port = nil; return }
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
            port = p
            return
        }
        if IPAddress(text)?.family == .ipv6 {
            host = text
            port = nil
            return
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, (1...253).contains(name.count),
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }) else { return nil }
        host = String(name)
        if parts.count == 2 {
            guard let p = Int(parts[1]), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            port = nil
        }
    }

    /// Whether the host is an address literal (no DNS needed).
    public var isAddress: Bool { IPAddress(host) != nil }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port.map { "\(h):\($0)" } ?? h
    }
}
