/// A STUN attribute type, RFC 8489 §14 and §18.3, with the TURN (RFC 8656 §18, RFC 6156),
/// ICE (RFC 8445 §16.1) and NAT-behaviour (RFC 5780) registrations.
///
/// Types 0x0000–0x7FFF are comprehension-required, 0x8000–0xFFFF comprehension-optional.
public struct STUNAttributeType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    // RFC 8489
    public static let mappedAddress = STUNAttributeType(rawValue: 0x0001)
    public static let changeRequest = STUNAttributeType(rawValue: 0x0003)  // RFC 5780
    public static let username = STUNAttributeType(rawValue: 0x0006)
    public static let messageIntegrity = STUNAttributeType(rawValue: 0x0008)
    public static let errorCode = STUNAttributeType(rawValue: 0x0009)
    public static let unknownAttributes = STUNAttributeType(rawValue: 0x000A)
    public static let realm = STUNAttributeType(rawValue: 0x0014)
    public static let nonce = STUNAttributeType(rawValue: 0x0015)
    public static let messageIntegritySHA256 = STUNAttributeType(rawValue: 0x001C)
    public static let passwordAlgorithm = STUNAttributeType(rawValue: 0x001D)
    public static let userhash = STUNAttributeType(rawValue: 0x001E)
    public static let xorMappedAddress = STUNAttributeType(rawValue: 0x0020)
    public static let passwordAlgorithms = STUNAttributeType(rawValue: 0x8002)
    public static let alternateDomain = STUNAttributeType(rawValue: 0x8003)
    public static let software = STUNAttributeType(rawValue: 0x8022)
    public static let alternateServer = STUNAttributeType(rawValue: 0x8023)
    public static let fingerprint = STUNAttributeType(rawValue: 0x8028)
    public static let responseOrigin = STUNAttributeType(rawValue: 0x802B)  // RFC 5780
    public static let otherAddress = STUNAttributeType(rawValue: 0x802C)  // RFC 5780

    // TURN, RFC 8656 §18 and RFC 6156
    public static let channelNumber = STUNAttributeType(rawValue: 0x000C)
    public static let lifetime = STUNAttributeType(rawValue: 0x000D)
    public static let xorPeerAddress = STUNAttributeType(rawValue: 0x0012)
    public static let data = STUNAttributeType(rawValue: 0x0013)
    public static let xorRelayedAddress = STUNAttributeType(rawValue: 0x0016)
    public static let requestedAddressFamily = STUNAttributeType(rawValue: 0x0017)
    public static let evenPort = STUNAttributeType(rawValue: 0x0018)
    public static let requestedTransport = STUNAttributeType(rawValue: 0x0019)
    public static let dontFragment = STUNAttributeType(rawValue: 0x001A)
    public static let reservationToken = STUNAttributeType(rawValue: 0x0022)
    public static let additionalAddressFamily = STUNAttributeType(rawValue: 0x8000)
    public static let addressErrorCode = STUNAttributeType(rawValue: 0x8001)
    public static let icmp = STUNAttributeType(rawValue: 0x8004)

    // ICE, RFC 8445 §16.1
    public static let priority = STUNAttributeType(rawValue: 0x0024)
    public static let useCandidate = STUNAttributeType(rawValue: 0x0025)
    public static let iceControlled = STUNAttributeType(rawValue: 0x8029)
    public static let iceControlling = STUNAttributeType(rawValue: 0x802A)

    /// RFC 8489 §14: types below 0x8000 must be understood or the request rejected (420).
    public var isComprehensionRequired: Bool { rawValue < 0x8000 }

    public var description: String {
        switch self {
        case .mappedAddress: "MAPPED-ADDRESS"
        case .changeRequest: "CHANGE-REQUEST"
        case .username: "USERNAME"
        case .messageIntegrity: "MESSAGE-INTEGRITY"
        case .errorCode: "ERROR-CODE"
        case .unknownAttributes: "UNKNOWN-ATTRIBUTES"
        case .realm: "REALM"
        case .nonce: "NONCE"
        case .messageIntegritySHA256: "MESSAGE-INTEGRITY-SHA256"
        case .passwordAlgorithm: "PASSWORD-ALGORITHM"
        case .userhash: "USERHASH"
        case .xorMappedAddress: "XOR-MAPPED-ADDRESS"
        case .passwordAlgorithms: "PASSWORD-ALGORITHMS"
        case .alternateDomain: "ALTERNATE-DOMAIN"
        case .software: "SOFTWARE"
        case .alternateServer: "ALTERNATE-SERVER"
        case .fingerprint: "FINGERPRINT"
        case .responseOrigin: "RESPONSE-ORIGIN"
        case .otherAddress: "OTHER-ADDRESS"
        case .channelNumber: "CHANNEL-NUMBER"
        case .lifetime: "LIFETIME"
        case .xorPeerAddress: "XOR-PEER-ADDRESS"
        case .data: "DATA"
        case .xorRelayedAddress: "XOR-RELAYED-ADDRESS"
        case .requestedAddressFamily: "REQUESTED-ADDRESS-FAMILY"
        case .evenPort: "EVEN-PORT"
        case .requestedTransport: "REQUESTED-TRANSPORT"
        case .dontFragment: "DONT-FRAGMENT"
        case .reservationToken: "RESERVATION-TOKEN"
        case .additionalAddressFamily: "ADDITIONAL-ADDRESS-FAMILY"
        case .addressErrorCode: "ADDRESS-ERROR-CODE"
        case .icmp: "ICMP"
        case .priority: "PRIORITY"
        case .useCandidate: "USE-CANDIDATE"
        case .iceControlled: "ICE-CONTROLLED"
        case .iceControlling: "ICE-CONTROLLING"
        default: "0x" + String(rawValue, radix: 16)
        }
    }
}
