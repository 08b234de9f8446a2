/// An IP address as STUN carries it (RFC 8489 §14.1): 4 bytes for IPv4, 16 for IPv6.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// IPv4, in network byte order as a host integer (`0x7F000001` is 127.0.0.1).
    case v4(UInt32)
    /// IPv6, the 16 bytes as two big-endian halves.
    case v6(UInt64, UInt64)

    /// The STUN address family value: 0x01 IPv4, 0x02 IPv6.
    public var family: AddressFamily { if case .v4 = self { .ipv4 } else { .ipv6 } }

    /// The address bytes in network order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a):
            return [UInt8(a >> 24), UInt8(truncatingIfNeeded: a >> 16), UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a)]
        case .v6(let hi, let lo):
            var out = [UInt8](repeating: 0, count: 16)
            for i in 0..<8 {
                out[i] = UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64(i)))
                out[8 + i] = UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64(i)))
            }
            return out
        }
    }

    /// Builds an address from 4 or 16 network-order bytes.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let hi = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let lo = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(hi, lo)
        default:
            return nil
        }
    }

    /// Parses dotted-quad IPv4 or RFC 4291 §2.2 IPv6 text (with `::` and an embedded IPv4 tail).
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if s.contains(":") {
            guard let v6 = IPAddress.parseIPv6(s) else { return nil }
            self = v6
        } else {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var value: UInt32 = 0
            for p in parts {
                guard (1...3).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(p), n <= 255 else { return nil }
                value = value << 8 | n
            }
            self = .v4(value)
        }
    }

    private static func parseIPv6(_ s: String) -> IPAddress? {
        guard s.count <= 45 else { return nil }
        var groups: [UInt16] = []
        var tail: [UInt16] = []
        var seenDoubleColon = false
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func parseGroups(_ part: String, allowIPv4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, f) in fields.enumerated() {
                if f.contains("."), allowIPv4Tail, i == fields.count - 1, case .v4(let v4)? = IPAddress(f) {
                    out.append(UInt16(v4 >> 16))
                    out.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard (1...4).contains(f.count), let g = UInt16(f, radix: 16) else { return nil }
                    out.append(g)
                }
            }
            return out
        }
        if halves.count == 2 {
            seenDoubleColon = true
            guard let h = parseGroups(halves[0], allowIPv4Tail: false), let t = parseGroups(halves[1], allowIPv4Tail: true) else { return nil }
            groups = h
            tail = t
            guard groups.count + tail.count <= 7 else { return nil }
        } else {
            guard let g = parseGroups(halves[0], allowIPv4Tail: true), g.count == 8 else { return nil }
            groups = g
        }
        if seenDoubleColon {
            groups += [UInt16](repeating: 0, count: 8 - groups.count - tail.count) + tail
        }
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(groups[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(groups[i]) }
        return .v6(hi, lo)
    }

    public var description: String {
        switch self {
        case .v4(let a):
            return "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF)"
        case .v6(let hi, let lo):
            var groups: [UInt16] = []
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: hi >> (48 - 16 * UInt64(i)))) }
            for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: lo >> (48 - 16 * UInt64(i)))) }
            // RFC 5952: compress the longest run (≥ 2) of zero groups.
            var bestStart = -1, bestLen = 0, i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8 && groups[j] == 0 { j += 1 }
                    if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                    i = j
                } else { i += 1 }
            }
            func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
            if bestStart < 0 { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLen)..<8)
        }
    }
}

/// The address family field of STUN address attributes (RFC 8489 §14.1) and of
/// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.8).
public enum AddressFamily: UInt8, Sendable, Hashable {
    case ipv4 = 0x01
    case ipv6 = 0x02
}

/// An IP address and port: the value of MAPPED-ADDRESS and of the XOR-…-ADDRESS attributes.
public struct TransportAddress: Sendable, Hashable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    public var description: String {
        if case .v6 = ip { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}

extension IPAddress: LosslessStringConvertible {
    /// Parses an IPv4 or IPv6 address; nil when `text` is neither.
    public init?(_ text: String) {
        self.init(text[...])
    }

    public static let ipv4Loopback = IPAddress.v4(0x7F00_0001)
    public static let ipv6Loopback = IPAddress.v6(0, 1)
    public static let ipv4Any = IPAddress.v4(0)
    public static let ipv6Any = IPAddress.v6(0, 0)

    /// The IPv4 address itself, or the one embedded in an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2); nil for other IPv6 addresses.
    public var unmappedIPv4: IPAddress? {
        switch self {
        case .v4: return self
        case .v6(0, let lo) where lo >> 32 == 0xFFFF: return .v4(UInt32(truncatingIfNeeded: lo))
        case .v6: return nil
        }
    }

    /// 127.0.0.0/8 or ::1 (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3), also as IPv4-mapped.
    public var isLoopback: Bool {
        if case .v4(let a)? = unmappedIPv4 { return a >> 24 == 127 }
        return self == .ipv6Loopback
    }

    /// 0.0.0.0 or :: (the wildcard address).
    public var isUnspecified: Bool { self == .ipv4Any || self == .ipv6Any }

    /// 169.254.0.0/16 (RFC 3927) or fe80::/10 (RFC 4291 §2.5.6).
    public var isLinkLocal: Bool {
        if case .v4(let a)? = unmappedIPv4 { return a >> 16 == 0xA9FE }
        if case .v6(let hi, _) = self { return hi >> 54 == 0x3FA }
        return false
    }
}

extension AddressFamily {
    /// Address length in bits.
    public var bitCount: Int { self == .ipv4 ? 32 : 128 }
}
