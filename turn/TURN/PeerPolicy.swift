import Foundation
import STUN

/// An IP prefix such as `127.0.0.0/8` or `fe80::/10` (RFC 4632 §3.1, RFC 4291 §2.3);
/// host bits are cleared, so `10.1.2.3/8` is `10.0.0.0/8`.
public struct CIDR: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    /// Why a CIDR text was rejected.
    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case invalidAddress(String)
        case invalidPrefixLength(String, maximum: Int)

        public var description: String {
            switch self {
            case .invalidAddress(let text): "'\(text)' is not an IPv4 or IPv6 address"
            case .invalidPrefixLength(let text, let maximum): "'\(text)' is not a prefix length (0–\(maximum))"
            }
        }
    }

    /// The network address (host bits zero).
    public let network: IPAddress
    /// The number of leading bits that must match.
    public let prefixLength: Int
    private let hiMask: UInt64
    private let loMask: UInt64

    /// A prefix from an address and length; host bits of `address` are cleared.
    public init(address: IPAddress, prefixLength: Int) throws(ParseError) {
        let bits = address.family.bitCount
        guard (0...bits).contains(prefixLength) else { throw .invalidPrefixLength(String(prefixLength), maximum: bits) }
        self.prefixLength = prefixLength
        switch address {
        case .v4(let a):
            let mask: UInt32 = prefixLength == 0 ? 0 : ~(UInt32.max >> UInt32(prefixLength))
            hiMask = UInt64(mask)
            loMask = 0
            network = .v4(a & mask)
        case .v6(let hi, let lo):
            let hiBits = min(prefixLength, 64), loBits = max(prefixLength - 64, 0)
            hiMask = hiBits == 0 ? 0 : ~(UInt64.max >> UInt64(hiBits))
            loMask = loBits == 0 ? 0 : ~(UInt64.max >> UInt64(loBits))
            network = .v6(hi & hiMask, lo & loMask)
        }
    }

    /// Parses `address/length` or a plain address (a host prefix).
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { throw .invalidAddress(String(parts[0])) }
        var length = address.family.bitCount
        if parts.count == 2 {
            let lengthText = String(parts[1])
            guard !lengthText.isEmpty, lengthText.count <= 3, lengthText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let parsed = Int(lengthText), parsed <= address.family.bitCount
            else { throw .invalidPrefixLength(lengthText, maximum: address.family.bitCount) }
            length = parsed
        }
        try self.init(address: address, prefixLength: length)
    }

    public init?(_ description: String) {
        guard let parsed = try? CIDR(parsing: description) else { return nil }
        self = parsed
    }

    /// Whether `ip` lies inside the prefix; an IPv4-mapped IPv6 address counts as IPv4.
    @inline(__always)
    public func contains(_ ip: IPAddress) -> Bool {
        switch (network, ip) {
        case (.v4(let net), .v4(let a)):
            return UInt64(a) & hiMask == UInt64(net)
        case (.v6(let nh, let nl), .v6(let ah, let al)):
            return ah & hiMask == nh && al & loMask == nl
        case (.v4, .v6):
            guard let v4 = ip.unmappedIPv4 else { return false }
            return contains(v4)
        default:
            return false
        }
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

extension Sequence<CIDR> {
    /// Whether any prefix contains `address`.
    public func anyContains(_ address: IPAddress) -> Bool { contains { $0.contains(address) } }
}

/// Which peers an allocation may talk to (RFC 8656 §21.3 "Preventing Attacks Toward
/// Internal Resources"): loopback, "this network", unspecified, multicast, link-local,
/// broadcast and the server's own TURN listening ports are refused unless an explicit
/// allow-list says otherwise. IPv4-mapped IPv6 peers are judged by their IPv4 address.
public struct PeerPolicy: Sendable {
    /// Prefixes that are always allowed, overriding every refusal (operators and tests).
    public var allowed: [CIDR]
    /// Extra prefixes refused besides the built-in ones.
    public var denied: [CIDR]
    /// The server's own TURN listening ports and the local addresses they are bound to
    /// (an unspecified address means every local address).
    public var ownListeners: [TransportAddress]

    public static let builtInDenied: [CIDR] = [
        "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "fe80::/10", "ff00::/8",
    ].map { CIDR($0)! }

    public init(allowed: [CIDR] = [], denied: [CIDR] = [], ownListeners: [TransportAddress] = []) {
        self.allowed = allowed
        self.denied = denied
        self.ownListeners = ownListeners
    }

    /// Whether data may be relayed to or from this peer.
    public func permits(_ peer: TransportAddress) -> Bool {
        let ip = peer.ip.unmappedIPv4 ?? peer.ip
        if allowed.anyContains(peer.ip) { return true }
        if Self.builtInDenied.anyContains(ip) { return false }
        if denied.anyContains(peer.ip) { return false }
        for listener in ownListeners where listener.port == peer.port {
            if listener.ip == ip || listener.ip == .v4(0) || listener.ip == .v6(0, 0) { return false }
        }
        return true
    }

    /// Whether a CreatePermission for this IP (any port) may be installed.
    public func permitsPermission(for ip: IPAddress) -> Bool {
        permits(TransportAddress(ip: ip, port: 0))
    }
}
