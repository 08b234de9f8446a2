/// The class of a STUN message, RFC 8489 §5 (bits C1 C0 of the message type).
public enum STUNClass: UInt16, Sendable, Hashable {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11
}

/// A STUN method (12 bits), RFC 8489 §18.2 and the TURN methods of RFC 8656 §17.
public struct STUNMethod: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)

    public var description: String {
        switch self {
        case .binding: "Binding"
        case .allocate: "Allocate"
        case .refresh: "Refresh"
        case .send: "Send"
        case .data: "Data"
        case .createPermission: "CreatePermission"
        case .channelBind: "ChannelBind"
        default: "0x" + String(rawValue, radix: 16)
        }
    }
}

/// The 14-bit message type: method and class interleaved, RFC 8489 §5 figure 3.
public struct STUNMessageType: Sendable, Hashable, CustomStringConvertible {
    public var method: STUNMethod
    public var messageClass: STUNClass

    public init(method: STUNMethod, messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    /// Decodes the wire value (top two bits must already be checked to be zero).
    public init(rawValue: UInt16) {
        let m = (rawValue & 0x000F) | ((rawValue & 0x00E0) >> 1) | ((rawValue & 0x3E00) >> 2)
        let c = ((rawValue & 0x0010) >> 4) | ((rawValue & 0x0100) >> 7)
        self.method = STUNMethod(rawValue: m)
        self.messageClass = STUNClass(rawValue: c)!
    }

    /// The wire value.
    public var rawValue: UInt16 {
        let m = method.rawValue
        let c = messageClass.rawValue
        return (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
    }

    public var description: String {
        let suffix: String
        switch messageClass {
        case .request: suffix = "request"
        case .indication: suffix = "indication"
        case .successResponse: suffix = "success response"
        case .errorResponse: suffix = "error response"
        }
        return "\(method) \(suffix)"
    }
}
