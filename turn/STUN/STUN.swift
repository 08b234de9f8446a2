/// # STUN
///
/// The STUN message codec (RFC 8489, which obsoletes RFC 5389), with the attributes that
/// TURN (RFC 5766/8656, RFC 6156) and ICE (RFC 8445) carry, message integrity
/// (HMAC-SHA1 and HMAC-SHA256, RFC 8489 §14.5–14.6), FINGERPRINT (§14.7) and the
/// comprehension-required rule (§15). It also frames TURN ChannelData messages
/// (RFC 8656 §12.4).
///
/// Pure values over bytes: no sockets, no clocks. Every parser takes untrusted input and
/// answers with a typed ``STUNError`` instead of trapping; sizes are bounded by the input.
///
/// Used by the `TURN` server and, later, by the ICE-lite agent in `WebRTC`.
/// Hand-written because no maintained Swift package implements STUN/TURN.
public enum STUN {
    /// The fixed magic cookie, RFC 8489 §5.
    public static let magicCookie: UInt32 = 0x2112_A442
    /// The fixed header length, RFC 8489 §5.
    public static let headerLength = 20
    /// XOR applied to the CRC-32 in FINGERPRINT, RFC 8489 §14.7.
    public static let fingerprintXOR: UInt32 = 0x5354_554E
    /// The largest STUN message this codec accepts (a UDP datagram cannot be larger).
    public static let maximumMessageLength = 65_535
}

/// Why bytes are not a valid STUN or ChannelData message.
public enum STUNError: Error, Equatable, Sendable {
    /// Fewer bytes than the header or an announced length needs.
    case truncated
    /// The two most significant bits are not zero (RFC 8489 §5).
    case notSTUN
    /// The magic cookie is missing (RFC 8489 §5): an RFC 3489 client.
    case badMagicCookie
    /// The header length is not a multiple of 4 or disagrees with the bytes.
    case badLength
    /// An attribute's length runs past the end of the message.
    case attributeOverrun(type: UInt16)
    /// An attribute value is malformed for its type.
    case malformedAttribute(type: UInt16)
    /// FINGERPRINT is present but not last, or its value is wrong.
    case badFingerprint
    /// A ChannelData channel number outside 0x4000–0x7FFF.
    case badChannelNumber
    /// Message class and method combination that does not exist.
    case badMessageType
}
