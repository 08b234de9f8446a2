/// The address a relay address is reachable at from outside a 1:1 NAT, advertised in
/// XOR-RELAYED-ADDRESS instead of the local one (RFC 8656 §7.2; coturn's `external-ip`).
///
/// Text form: `relayIP=externalIP`, or a plain `externalIP` that applies to every relay address.
public struct ExternalAddressMapping: Hashable, Sendable, CustomStringConvertible {
    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case invalidAddress(String)
        case familyMismatch(String)

        public var description: String {
            switch self {
            case .invalidAddress(let text): "'\(text)' is not an IPv4 or IPv6 address"
            case .familyMismatch(let text): "'\(text)' maps between IPv4 and IPv6"
            }
        }
    }

    /// The local relay address this mapping applies to; nil for every relay address.
    public var relayAddress: IPAddress?
    /// The address clients see.
    public var externalAddress: IPAddress

    public init(relayAddress: IPAddress?, externalAddress: IPAddress) {
        self.relayAddress = relayAddress
        self.externalAddress = externalAddress
    }

    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 2 {
            let relayText = parts[0].trimmingWhitespace()
            let externalText = parts[1].trimmingWhitespace()
            guard let relay = IPAddress(relayText) else { throw .invalidAddress(relayText) }
            guard let external = IPAddress(externalText) else { throw .invalidAddress(externalText) }
            guard relay.family == external.family else { throw .familyMismatch(text) }
            self.init(relayAddress: relay, externalAddress: external)
        } else {
            let externalText = text.trimmingWhitespace()
            guard let external = IPAddress(externalText) else { throw .invalidAddress(externalText) }
            self.init(relayAddress: nil, externalAddress: external)
        }
    }

    public var description: String {
        relayAddress.map { "\($0)=\(externalAddress)" } ?? externalAddress.description
    }
}

extension Sequence<ExternalAddressMapping> {
    /// The external address for `relayAddress`: an exact mapping first, then a plain
    /// address of the same family; nil when it is not behind NAT.
    public func externalAddress(for relayAddress: IPAddress) -> IPAddress? {
        first { $0.relayAddress == relayAddress }?.externalAddress
            ?? first { $0.relayAddress == nil && $0.externalAddress.family == relayAddress.family }?.externalAddress
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
