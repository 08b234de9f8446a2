import Crypto

/// The 96-bit transaction ID, RFC 8489 §5.
public struct TransactionID: Sendable, Hashable, CustomStringConvertible {
    public var high: UInt32
    public var low: UInt64

    public init(high: UInt32, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A fresh, cryptographically random transaction ID (RFC 8489 §6.3 asks for uniform randomness).
    public static func random() -> TransactionID {
        var g = SystemRandomNumberGenerator()
        return TransactionID(high: g.next(), low: g.next())
    }

    /// The 12 bytes in network order.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        for i in 0..<4 { out[i] = UInt8(truncatingIfNeeded: high >> (24 - 8 * UInt32(i))) }
        for i in 0..<8 { out[4 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
        return out
    }

    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        precondition(bytes.count == 12)
        high = bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
        low = bytes.dropFirst(4).reduce(0) { $0 << 8 | UInt64($1) }
    }

    public var description: String { bytes.map { String($0, radix: 16).leftPadded(2) }.joined() }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// One attribute: its type and raw value (without padding), RFC 8489 §14.
public struct STUNAttribute: Sendable, Hashable {
    public var type: STUNAttributeType
    public var value: ArraySlice<UInt8>

    public init(type: STUNAttributeType, value: ArraySlice<UInt8>) {
        self.type = type
        self.value = value
    }

    public init(type: STUNAttributeType, value: [UInt8]) {
        self.init(type: type, value: value[...])
    }
}

/// A STUN message (RFC 8489 §5–6): message type, transaction ID and attributes in order.
///
/// A decoded message keeps its original bytes so that MESSAGE-INTEGRITY,
/// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT can be checked over exactly what was received.
public struct STUNMessage: Sendable {
    public var type: STUNMessageType
    public var transactionID: TransactionID
    /// Attributes as received or to be sent, in order. On decode, attributes after
    /// MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are dropped
    /// (RFC 8489 §14.5); MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT are not listed here,
    /// they are checked with ``verifyIntegrity(key:)`` and decode.
    public var attributes: [STUNAttribute]

    /// The bytes this message was decoded from.
    public private(set) var raw: [UInt8] = []
    /// Offsets into ``raw`` of the integrity attributes found on decode.
    public private(set) var integrityOffset: Int?
    public private(set) var integritySHA256Offset: Int?
    /// Whether a valid FINGERPRINT was present on decode.
    public private(set) var hadFingerprint = false

    public init(type: STUNMessageType, transactionID: TransactionID = .random(), attributes: [STUNAttribute] = []) {
        self.type = type
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// Whether the first byte looks like STUN (RFC 7983 demultiplexing: 0–3).
    @inlinable
    public static func looksLikeSTUN(firstByte: UInt8) -> Bool { firstByte < 4 }

    // MARK: decoding

    /// Decodes one whole STUN message (RFC 8489 §5). `bytes` may carry trailing bytes
    /// beyond the announced length only when `allowTrailing` is set (stream framing).
    public static func decode<C: Collection>(_ bytes: C, allowTrailing: Bool = false) throws(STUNError) -> STUNMessage
    where C.Element == UInt8 {
        let raw = Array(bytes)
        guard raw.count >= STUN.headerLength else { throw .truncated }
        guard raw[0] & 0xC0 == 0 else { throw .notSTUN }
        let length = Int(raw[2]) << 8 | Int(raw[3])
        guard length % 4 == 0 else { throw .badLength }
        let cookie = UInt32(raw[4]) << 24 | UInt32(raw[5]) << 16 | UInt32(raw[6]) << 8 | UInt32(raw[7])
        guard cookie == STUN.magicCookie else { throw .badMagicCookie }
        guard raw.count >= STUN.headerLength + length else { throw .truncated }
        guard allowTrailing || raw.count == STUN.headerLength + length else { throw .badLength }
        let end = STUN.headerLength + length
        let typeValue = UInt16(raw[0]) << 8 | UInt16(raw[1])
        var message = STUNMessage(
            type: STUNMessageType(rawValue: typeValue),
            transactionID: TransactionID(bytes: raw[8..<20]))
        message.raw = end == raw.count ? raw : Array(raw[0..<end])
        var attributes: [STUNAttribute] = []
        var offset = STUN.headerLength
        var afterIntegrity = false
        while offset < end {
            guard end - offset >= 4 else { throw .badLength }
            let type = STUNAttributeType(rawValue: UInt16(raw[offset]) << 8 | UInt16(raw[offset + 1]))
            let valueLength = Int(raw[offset + 2]) << 8 | Int(raw[offset + 3])
            let valueStart = offset + 4
            let padded = (valueLength + 3) & ~3
            guard valueStart + padded <= end else { throw .attributeOverrun(type: type.rawValue) }
            if message.hadFingerprint { throw .badFingerprint }  // FINGERPRINT must be last (§14.7)
            switch type {
            case .messageIntegrity:
                guard valueLength == 20 else { throw .malformedAttribute(type: type.rawValue) }
                if !afterIntegrity { message.integrityOffset = offset }
                afterIntegrity = true
            case .messageIntegritySHA256:
                guard (16...32).contains(valueLength), valueLength % 4 == 0 else { throw .malformedAttribute(type: type.rawValue) }
                if message.integritySHA256Offset == nil { message.integritySHA256Offset = offset }
                afterIntegrity = true
            case .fingerprint:
                guard valueLength == 4, valueStart + 4 == end else { throw .badFingerprint }
                let received = UInt32(raw[valueStart]) << 24 | UInt32(raw[valueStart + 1]) << 16
                    | UInt32(raw[valueStart + 2]) << 8 | UInt32(raw[valueStart + 3])
                var prefix = Array(raw[0..<offset])
                let patched = offset + 8 - STUN.headerLength
                prefix[2] = UInt8(patched >> 8)
                prefix[3] = UInt8(patched & 0xFF)
                guard CRC32.checksum(prefix) ^ STUN.fingerprintXOR == received else { throw .badFingerprint }
                message.hadFingerprint = true
            default:
                if !afterIntegrity {
                    attributes.append(STUNAttribute(type: type, value: message.raw[valueStart..<(valueStart + valueLength)]))
                }
            }
            offset = valueStart + padded
        }
        message.attributes = attributes
        return message
    }

    // MARK: access

    /// The first attribute of a type.
    public func attribute(_ type: STUNAttributeType) -> ArraySlice<UInt8>? {
        attributes.first(where: { $0.type == type })?.value
    }

    /// All attributes of a type, in order (XOR-PEER-ADDRESS may repeat in CreatePermission).
    public func attributes(_ type: STUNAttributeType) -> [ArraySlice<UInt8>] {
        attributes.filter { $0.type == type }.map(\.value)
    }

    public func has(_ type: STUNAttributeType) -> Bool { attributes.contains { $0.type == type } }

    /// Comprehension-required attributes not in `known` (RFC 8489 §15: answer 420 with them).
    public func unknownComprehensionRequired(known: Set<STUNAttributeType>) -> [STUNAttributeType] {
        var out: [STUNAttributeType] = []
        for a in attributes where a.type.isComprehensionRequired && !known.contains(a.type) && !out.contains(a.type) {
            out.append(a.type)
        }
        return out
    }

    // MARK: integrity

    /// Checks MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY (RFC 8489 §14.5–14.6),
    /// with the key of the credential mechanism (short-term: the password; long-term: ``longTermKey``).
    /// Comparison is constant-time. False when neither attribute is present.
    public func verifyIntegrity(key: [UInt8]) -> Bool {
        let symmetric = SymmetricKey(data: key)
        if let offset = integritySHA256Offset {
            let length = Int(raw[offset + 2]) << 8 | Int(raw[offset + 3])
            let mac = Array(HMAC<SHA256>.authenticationCode(for: Self.prefix(raw, upTo: offset, attributeLength: length), using: symmetric))
            return constantTimeEqual(Array(mac.prefix(length)), Array(raw[(offset + 4)..<(offset + 4 + length)]))
        }
        if let offset = integrityOffset {
            let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: Self.prefix(raw, upTo: offset, attributeLength: 20), using: symmetric))
            return constantTimeEqual(mac, Array(raw[(offset + 4)..<(offset + 24)]))
        }
        return false
    }

    /// Whether the message carries MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256.
    public var hasIntegrity: Bool { integrityOffset != nil || integritySHA256Offset != nil }

    /// The message bytes before an integrity attribute at `offset`, with the header
    /// length patched to end just after that attribute (RFC 8489 §14.5).
    static func prefix(_ raw: [UInt8], upTo offset: Int, attributeLength: Int) -> [UInt8] {
        var prefix = Array(raw[0..<offset])
        let patched = offset + 4 + attributeLength - STUN.headerLength
        prefix[2] = UInt8(patched >> 8)
        prefix[3] = UInt8(patched & 0xFF)
        return prefix
    }

    /// The long-term credential key, RFC 8489 §9.2.2: MD5(username ":" realm ":" password).
    /// Passwords are used as given (the OpaqueString profile is the identity for ASCII).
    public static func longTermKey(username: String, realm: String, password: String) -> [UInt8] {
        Array(Insecure.MD5.hash(data: Array("\(username):\(realm):\(password)".utf8)))
    }

    // MARK: encoding

    /// How an encoded message is protected.
    public enum Integrity: Sendable {
        case none
        /// MESSAGE-INTEGRITY (HMAC-SHA1) with this key.
        case sha1(key: [UInt8])
        /// MESSAGE-INTEGRITY-SHA256 with this key.
        case sha256(key: [UInt8])
    }

    /// Encodes the message (RFC 8489 §5, §14), appending integrity and FINGERPRINT as asked.
    public func encode(integrity: Integrity = .none, fingerprint: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        let t = type.rawValue
        out.append(UInt8(t >> 8)); out.append(UInt8(t & 0xFF))
        out.append(0); out.append(0)
        out.append(contentsOf: [0x21, 0x12, 0xA4, 0x42])
        out.append(contentsOf: transactionID.bytes)
        for a in attributes { Self.appendAttribute(&out, type: a.type, value: a.value) }
        switch integrity {
        case .none:
            break
        case .sha1(let key):
            let prefix = Self.prefix(out, upTo: out.count, attributeLength: 20)
            let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: prefix, using: SymmetricKey(data: key)))
            Self.appendAttribute(&out, type: .messageIntegrity, value: mac[...])
        case .sha256(let key):
            let prefix = Self.prefix(out, upTo: out.count, attributeLength: 32)
            let mac = Array(HMAC<SHA256>.authenticationCode(for: prefix, using: SymmetricKey(data: key)))
            Self.appendAttribute(&out, type: .messageIntegritySHA256, value: mac[...])
        }
        if fingerprint {
            let prefix = Self.prefix(out, upTo: out.count, attributeLength: 4)
            let crc = CRC32.checksum(prefix) ^ STUN.fingerprintXOR
            Self.appendAttribute(&out, type: .fingerprint, value: [UInt8(crc >> 24), UInt8(truncatingIfNeeded: crc >> 16), UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)][...])
        }
        let length = out.count - STUN.headerLength
        out[2] = UInt8(length >> 8)
        out[3] = UInt8(length & 0xFF)
        return out
    }

    static func appendAttribute(_ out: inout [UInt8], type: STUNAttributeType, value: ArraySlice<UInt8>) {
        out.append(UInt8(type.rawValue >> 8)); out.append(UInt8(type.rawValue & 0xFF))
        out.append(UInt8(value.count >> 8)); out.append(UInt8(value.count & 0xFF))
        out.append(contentsOf: value)
        let pad = (4 - value.count % 4) % 4
        for _ in 0..<pad { out.append(0) }
    }
}

/// Compares two byte strings in time independent of where they differ.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<a.count { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// CRC-32 (ISO 3309 / ITU-T V.42, as in FINGERPRINT, RFC 8489 §14.7).
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
