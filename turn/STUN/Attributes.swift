/// Typed encoders and decoders for the attribute values, one per attribute kind
/// (RFC 8489 §14, RFC 8656 §18, RFC 8445 §16.1).
extension STUNAttribute {
    // MARK: builders

    /// MAPPED-ADDRESS style (plain) address, RFC 8489 §14.1.
    public static func address(_ type: STUNAttributeType, _ address: TransportAddress) -> STUNAttribute {
        var v: [UInt8] = [0, address.ip.family.rawValue, UInt8(address.port >> 8), UInt8(address.port & 0xFF)]
        v.append(contentsOf: address.ip.bytes)
        return STUNAttribute(type: type, value: v)
    }

    /// XOR-MAPPED-ADDRESS style address (XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS), RFC 8489 §14.2.
    public static func xorAddress(_ type: STUNAttributeType, _ address: TransportAddress, transactionID: TransactionID) -> STUNAttribute {
        let port = address.port ^ 0x2112
        var v: [UInt8] = [0, address.ip.family.rawValue, UInt8(port >> 8), UInt8(port & 0xFF)]
        let mask = xorMask(transactionID)
        for (i, b) in address.ip.bytes.enumerated() { v.append(b ^ mask[i]) }
        return STUNAttribute(type: type, value: v)
    }

    /// ERROR-CODE, RFC 8489 §14.8: code 300–699 and a UTF-8 reason phrase.
    public static func errorCode(_ code: Int, reason: String) -> STUNAttribute {
        var v: [UInt8] = [0, 0, UInt8(code / 100), UInt8(code % 100)]
        v.append(contentsOf: Array(reason.utf8.prefix(763)))
        return STUNAttribute(type: .errorCode, value: v)
    }

    /// UNKNOWN-ATTRIBUTES, RFC 8489 §14.9.
    public static func unknownAttributes(_ types: [STUNAttributeType]) -> STUNAttribute {
        STUNAttribute(type: .unknownAttributes, value: types.flatMap { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xFF)] })
    }

    /// A UTF-8 text attribute (USERNAME, REALM, NONCE, SOFTWARE).
    public static func text(_ type: STUNAttributeType, _ text: String) -> STUNAttribute {
        STUNAttribute(type: type, value: Array(text.utf8))
    }

    /// A 32-bit attribute (LIFETIME, PRIORITY).
    public static func uint32(_ type: STUNAttributeType, _ value: UInt32) -> STUNAttribute {
        STUNAttribute(type: type, value: [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)])
    }

    /// A 64-bit attribute (RESERVATION-TOKEN, ICE-CONTROLLING, ICE-CONTROLLED).
    public static func uint64(_ type: STUNAttributeType, _ value: UInt64) -> STUNAttribute {
        STUNAttribute(type: type, value: (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) })
    }

    /// CHANNEL-NUMBER, RFC 8656 §18.1: the number and 16 RFFU bits.
    public static func channelNumber(_ number: UInt16) -> STUNAttribute {
        STUNAttribute(type: .channelNumber, value: [UInt8(number >> 8), UInt8(number & 0xFF), 0, 0])
    }

    /// REQUESTED-TRANSPORT, RFC 8656 §18.7: the IP protocol number (17 = UDP).
    public static func requestedTransport(_ proto: UInt8) -> STUNAttribute {
        STUNAttribute(type: .requestedTransport, value: [proto, 0, 0, 0])
    }

    /// REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY, RFC 8656 §18.8 and §18.11.
    public static func addressFamily(_ type: STUNAttributeType, _ family: AddressFamily) -> STUNAttribute {
        STUNAttribute(type: type, value: [family.rawValue, 0, 0, 0])
    }

    /// EVEN-PORT, RFC 8656 §18.6: the R bit asks to reserve the next port.
    public static func evenPort(reserveNext: Bool) -> STUNAttribute {
        STUNAttribute(type: .evenPort, value: [reserveNext ? 0x80 : 0])
    }

    /// ADDRESS-ERROR-CODE, RFC 8656 §18.12.
    public static func addressErrorCode(family: AddressFamily, code: Int, reason: String) -> STUNAttribute {
        var v: [UInt8] = [family.rawValue, 0, UInt8(code / 100), UInt8(code % 100)]
        v.append(contentsOf: Array(reason.utf8.prefix(763)))
        return STUNAttribute(type: .addressErrorCode, value: v)
    }

    /// An attribute with no value (DONT-FRAGMENT, USE-CANDIDATE).
    public static func flag(_ type: STUNAttributeType) -> STUNAttribute {
        STUNAttribute(type: type, value: [])
    }

    static func xorMask(_ transactionID: TransactionID) -> [UInt8] {
        [0x21, 0x12, 0xA4, 0x42] + transactionID.bytes
    }
}

/// A decoded ERROR-CODE, RFC 8489 §14.8.
public struct STUNErrorCode: Sendable, Hashable {
    public var code: Int
    public var reason: String
}

extension STUNMessage {
    // MARK: typed access

    /// Decodes a plain address attribute (MAPPED-ADDRESS, ALTERNATE-SERVER).
    public func address(_ type: STUNAttributeType) throws(STUNError) -> TransportAddress? {
        guard let v = attribute(type) else { return nil }
        return try Self.decodeAddress(v, type: type, mask: nil)
    }

    /// Decodes an XOR address attribute (XOR-MAPPED-, XOR-PEER-, XOR-RELAYED-ADDRESS).
    public func xorAddress(_ type: STUNAttributeType) throws(STUNError) -> TransportAddress? {
        guard let v = attribute(type) else { return nil }
        return try Self.decodeAddress(v, type: type, mask: STUNAttribute.xorMask(transactionID))
    }

    /// Decodes every instance of an XOR address attribute.
    public func xorAddresses(_ type: STUNAttributeType) throws(STUNError) -> [TransportAddress] {
        let mask = STUNAttribute.xorMask(transactionID)
        var out: [TransportAddress] = []
        for v in attributes(type) { out.append(try Self.decodeAddress(v, type: type, mask: mask)) }
        return out
    }

    static func decodeAddress(_ v: ArraySlice<UInt8>, type: STUNAttributeType, mask: [UInt8]?) throws(STUNError) -> TransportAddress {
        guard v.count >= 4 else { throw .malformedAttribute(type: type.rawValue) }
        let s = v.startIndex
        let familyByte = v[s + 1]
        var port = UInt16(v[s + 2]) << 8 | UInt16(v[s + 3])
        let expected: Int
        switch familyByte {
        case AddressFamily.ipv4.rawValue: expected = 4
        case AddressFamily.ipv6.rawValue: expected = 16
        default: throw .malformedAttribute(type: type.rawValue)
        }
        guard v.count == 4 + expected else { throw .malformedAttribute(type: type.rawValue) }
        var bytes = Array(v[(s + 4)...])
        if let mask {
            port ^= 0x2112
            for i in 0..<bytes.count { bytes[i] ^= mask[i] }
        }
        return TransportAddress(ip: IPAddress(bytes: bytes)!, port: port)
    }

    /// Decodes a UTF-8 text attribute, bounded by `maxBytes` (RFC 8489: USERNAME < 513,
    /// REALM/NONCE/SOFTWARE < 763 bytes).
    public func text(_ type: STUNAttributeType, maxBytes: Int = 763) throws(STUNError) -> String? {
        guard let v = attribute(type) else { return nil }
        guard v.count <= maxBytes, let s = String(validating: v, as: UTF8.self) else { throw .malformedAttribute(type: type.rawValue) }
        return s
    }

    public var username: String? { get throws(STUNError) { try text(.username, maxBytes: 512) } }
    public var realm: String? { get throws(STUNError) { try text(.realm) } }
    public var nonce: String? { get throws(STUNError) { try text(.nonce) } }
    public var software: String? { get throws(STUNError) { try text(.software) } }

    /// Decodes a 32-bit attribute.
    public func uint32(_ type: STUNAttributeType) throws(STUNError) -> UInt32? {
        guard let v = attribute(type) else { return nil }
        guard v.count == 4 else { throw .malformedAttribute(type: type.rawValue) }
        return v.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Decodes a 64-bit attribute.
    public func uint64(_ type: STUNAttributeType) throws(STUNError) -> UInt64? {
        guard let v = attribute(type) else { return nil }
        guard v.count == 8 else { throw .malformedAttribute(type: type.rawValue) }
        return v.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// LIFETIME in seconds, RFC 8656 §18.2.
    public var lifetime: UInt32? { get throws(STUNError) { try uint32(.lifetime) } }

    /// ERROR-CODE, RFC 8489 §14.8.
    public var errorCode: STUNErrorCode? {
        get throws(STUNError) {
            guard let v = attribute(.errorCode) else { return nil }
            guard v.count >= 4, v.count <= 4 + 763 else { throw .malformedAttribute(type: STUNAttributeType.errorCode.rawValue) }
            let s = v.startIndex
            let cls = Int(v[s + 2] & 0x07), number = Int(v[s + 3])
            guard (3...6).contains(cls), number < 100 else { throw .malformedAttribute(type: STUNAttributeType.errorCode.rawValue) }
            let reason = String(decoding: v[(s + 4)...], as: UTF8.self)
            return STUNErrorCode(code: cls * 100 + number, reason: reason)
        }
    }

    /// UNKNOWN-ATTRIBUTES, RFC 8489 §14.9.
    public var unknownAttributes: [STUNAttributeType]? {
        get throws(STUNError) {
            guard let v = attribute(.unknownAttributes) else { return nil }
            guard v.count % 2 == 0 else { throw .malformedAttribute(type: STUNAttributeType.unknownAttributes.rawValue) }
            return stride(from: v.startIndex, to: v.endIndex, by: 2).map { STUNAttributeType(rawValue: UInt16(v[$0]) << 8 | UInt16(v[$0 + 1])) }
        }
    }

    /// CHANNEL-NUMBER, RFC 8656 §18.1.
    public var channelNumber: UInt16? {
        get throws(STUNError) {
            guard let v = attribute(.channelNumber) else { return nil }
            guard v.count == 4 else { throw .malformedAttribute(type: STUNAttributeType.channelNumber.rawValue) }
            return UInt16(v[v.startIndex]) << 8 | UInt16(v[v.startIndex + 1])
        }
    }

    /// REQUESTED-TRANSPORT protocol number, RFC 8656 §18.7.
    public var requestedTransport: UInt8? {
        get throws(STUNError) {
            guard let v = attribute(.requestedTransport) else { return nil }
            guard v.count == 4 else { throw .malformedAttribute(type: STUNAttributeType.requestedTransport.rawValue) }
            return v[v.startIndex]
        }
    }

    /// REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY, RFC 8656 §18.8/§18.11.
    public func addressFamily(_ type: STUNAttributeType) throws(STUNError) -> AddressFamily? {
        guard let v = attribute(type) else { return nil }
        guard v.count == 4, let f = AddressFamily(rawValue: v[v.startIndex]) else { throw .malformedAttribute(type: type.rawValue) }
        return f
    }

    /// EVEN-PORT: nil when absent, else whether the R bit asks to reserve the next port.
    public var evenPort: Bool? {
        get throws(STUNError) {
            guard let v = attribute(.evenPort) else { return nil }
            guard v.count == 1 else { throw .malformedAttribute(type: STUNAttributeType.evenPort.rawValue) }
            return v[v.startIndex] & 0x80 != 0
        }
    }

    /// RESERVATION-TOKEN, RFC 8656 §18.9.
    public var reservationToken: UInt64? { get throws(STUNError) { try uint64(.reservationToken) } }

    /// PRIORITY, RFC 8445 §16.1.
    public var priority: UInt32? { get throws(STUNError) { try uint32(.priority) } }

    /// ICE-CONTROLLING / ICE-CONTROLLED tie-breaker, RFC 8445 §16.1.
    public var iceControlling: UInt64? { get throws(STUNError) { try uint64(.iceControlling) } }
    public var iceControlled: UInt64? { get throws(STUNError) { try uint64(.iceControlled) } }
}
