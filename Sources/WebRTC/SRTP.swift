import CSRTP
import Synchronization

/// The DTLS-SRTP protection profiles Tandem negotiates (RFC 5764 §4.1.2, RFC 7714 §14.2).
public enum SRTPProfile: Int, Sendable, Hashable, CaseIterable {
    /// SRTP_AES128_CM_HMAC_SHA1_80: AES counter mode, 80-bit HMAC-SHA1 tag (RFC 3711).
    case aes128CMHMACSHA1_80 = 1
    /// SRTP_AEAD_AES_128_GCM: AES-GCM with a 16-byte tag (RFC 7714); about 3× cheaper here.
    case aeadAES128GCM = 7

    public var keyLength: Int { 16 }
    public var saltLength: Int { self == .aeadAES128GCM ? 12 : 14 }
    /// Bytes protection adds to an RTP packet.
    public var rtpOverhead: Int { self == .aeadAES128GCM ? 16 : 10 }
    /// The OpenSSL name for `use_srtp`.
    public var openSSLName: String { self == .aeadAES128GCM ? "SRTP_AEAD_AES_128_GCM" : "SRTP_AES128_CM_SHA1_80" }
}

/// Why SRTP refused a packet (libsrtp2's status, named).
public struct SRTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int32
    public var description: String {
        switch status {
        case 7: "SRTP authentication failed"
        case 9: "SRTP replayed packet"
        case 10: "SRTP packet too old"
        case 2: "SRTP bad parameter"
        case 3: "SRTP allocation failed"
        default: "SRTP error \(status)"
        }
    }
    public var isReplay: Bool { status == 9 || status == 10 }
    public var isAuthenticationFailure: Bool { status == 7 }
}

/// One direction of an SRTP/SRTCP session (RFC 3711) keyed with a master key and salt. An
/// inbound context accepts any SSRC (the first packet of a new one creates its stream); an
/// outbound context protects whatever SSRCs it is given. AEAD_AES_128_GCM runs on OpenSSL
/// (``AESGCMSRTPSession``, RFC 7714), AES_CM_128_HMAC_SHA1_80 through libsrtp2.
/// Confined to the loop of the leg that owns it.
public final class SRTPContext {
    public enum Direction: Sendable { case inbound, outbound }

    /// Who does the cryptography.
    public enum Implementation: Sendable {
        /// OpenSSL's AES-GCM for AEAD_AES_128_GCM, libsrtp2 for the rest.
        case preferred
        /// libsrtp2 for every profile (the reference the native path is tested against).
        case libsrtp
    }

    /// Replay window in packets (RFC 3711 §3.3.2). libsrtp2's default is 128; a wide window
    /// keeps reordered or retransmitted packets after a long hold or a burst from being refused.
    public static let replayWindow = 1024

    private var session: srtp_t?
    private var native: AESGCMSRTPSession?
    public let profile: SRTPProfile

    /// - Parameter keyAndSalt: the master key followed by the master salt.
    public init(profile: SRTPProfile, keyAndSalt: [UInt8], direction: Direction, implementation: Implementation = .preferred) throws(SRTPError) {
        guard keyAndSalt.count == profile.keyLength + profile.saltLength else { throw SRTPError(status: 2) }
        self.profile = profile
        if profile == .aeadAES128GCM, implementation == .preferred {
            native = try AESGCMSRTPSession(keyAndSalt: keyAndSalt, sealing: direction == .outbound, windowSize: Self.replayWindow)
            return
        }
        SRTPLibrary.initialize()
        var policy = srtp_policy_t()
        switch profile {
        case .aes128CMHMACSHA1_80:
            // The RFC 3711 default (a macro for AES_CM_128_HMAC_SHA1_80 in srtp.h).
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        case .aeadAES128GCM:
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        }
        policy.ssrc.type = direction == .inbound ? ssrc_any_inbound : ssrc_any_outbound
        policy.window_size = UInt(Self.replayWindow)
        policy.allow_repeat_tx = 1
        var created: srtp_t?
        let status = keyAndSalt.withUnsafeBufferPointer { key -> srtp_err_status_t in
            policy.key = UnsafeMutablePointer(mutating: key.baseAddress)
            return srtp_create(&created, &policy)
        }
        guard status == srtp_err_status_ok, let created else { throw SRTPError(status: Int32(status.rawValue)) }
        session = created
    }

    deinit { if let session { srtp_dealloc(session) } }

    /// Protects the RTP packet of `length` bytes at the start of `buffer` in place; the
    /// buffer needs `profile.rtpOverhead` spare bytes. Returns the protected length.
    @inline(__always)
    public func protectRTP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        if let native { return try native.protectRTP(buffer, length: length) }
        return try apply(srtp_protect, buffer, length, overhead: profile.rtpOverhead)
    }

    /// Verifies and decrypts the SRTP packet of `length` bytes in place; returns the RTP length.
    @inline(__always)
    public func unprotectRTP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        if let native { return try native.unprotectRTP(buffer, length: length) }
        return try apply(srtp_unprotect, buffer, length, overhead: 0)
    }

    /// Protects a compound RTCP packet in place (adds the E-bit/index word and the tag).
    public func protectRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        if let native { return try native.protectRTCP(buffer, length: length) }
        return try apply(srtp_protect_rtcp, buffer, length, overhead: profile.rtpOverhead + 4)
    }

    /// Verifies and decrypts an SRTCP packet in place.
    public func unprotectRTCP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        if let native { return try native.unprotectRTCP(buffer, length: length) }
        return try apply(srtp_unprotect_rtcp, buffer, length, overhead: 0)
    }

    @inline(__always)
    private func apply(_ operation: (srtp_t?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> srtp_err_status_t,
                       _ buffer: UnsafeMutableRawBufferPointer, _ length: Int, overhead: Int) throws(SRTPError) -> Int {
        guard length >= 4, length + overhead <= buffer.count, length <= Int(Int32.max) else { throw SRTPError(status: 2) }
        var n = Int32(length)
        let status = operation(session, buffer.baseAddress, &n)
        guard status == srtp_err_status_ok else { throw SRTPError(status: Int32(status.rawValue)) }
        return Int(n)
    }

    /// Protects a whole RTP packet held in an array.
    public func protectRTP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, overhead: profile.rtpOverhead + 4) { (b, n) throws(SRTPError) in try protectRTP(b, length: n) }
    }

    /// Unprotects a whole SRTP packet held in an array.
    public func unprotectRTP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, overhead: 0) { (b, n) throws(SRTPError) in try unprotectRTP(b, length: n) }
    }

    public func protectRTCP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, overhead: profile.rtpOverhead + 4) { (b, n) throws(SRTPError) in try protectRTCP(b, length: n) }
    }

    public func unprotectRTCP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        try transform(packet, overhead: 0) { (b, n) throws(SRTPError) in try unprotectRTCP(b, length: n) }
    }

    private func transform(_ packet: [UInt8], overhead: Int, _ body: (UnsafeMutableRawBufferPointer, Int) throws(SRTPError) -> Int) throws(SRTPError) -> [UInt8] {
        var buffer = packet + [UInt8](repeating: 0, count: overhead)
        let result = buffer.withUnsafeMutableBytes { b in Result { () throws(SRTPError) -> Int in try body(b, packet.count) } }
        let n = try result.get()
        buffer.removeLast(buffer.count - n)
        return buffer
    }
}

/// The keys of both directions from DTLS-SRTP keying material (RFC 5764 §4.2): the
/// material is client key | server key | client salt | server salt.
public struct SRTPKeys: Sendable, Equatable {
    public var profile: SRTPProfile
    /// What this endpoint protects with.
    public var local: [UInt8]
    /// What the peer protects with.
    public var remote: [UInt8]

    public init(profile: SRTPProfile, keyingMaterial m: [UInt8], isDTLSServer: Bool) {
        let k = profile.keyLength, s = profile.saltLength
        precondition(m.count == 2 * (k + s))
        let client = Array(m[0..<k]) + Array(m[(2 * k)..<(2 * k + s)])
        let server = Array(m[k..<(2 * k)]) + Array(m[(2 * k + s)..<(2 * k + 2 * s)])
        self.profile = profile
        local = isDTLSServer ? server : client
        remote = isDTLSServer ? client : server
    }

    /// Bytes of keying material the profile needs.
    public static func materialLength(_ profile: SRTPProfile) -> Int { 2 * (profile.keyLength + profile.saltLength) }
}

/// libsrtp2's one-time global initialization.
enum SRTPLibrary {
    private static let done = Mutex(false)
    static func initialize() {
        done.withLock { done in
            if !done {
                _ = srtp_init()
                done = true
            }
        }
    }
}
