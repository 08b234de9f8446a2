import CDTLS

/// Which packets of a stream arrived: the highest packet index seen and a bitmap of the
/// `size` indexes below it (RFC 3711 §3.3.2; bit i is the index `highest - i`).
struct ReplayWindow {
    private(set) var highest: Int64 = -1
    private var bits: [UInt64]
    let size: Int64

    init(size: Int) {
        self.size = Int64(size)
        bits = Array(repeating: 0, count: (size + 63) / 64)
    }

    enum Verdict: Equatable { case fresh, replayed, tooOld }

    func check(_ index: Int64) -> Verdict {
        if index > highest { return .fresh }
        let delta = highest - index
        if delta >= size { return .tooOld }
        return bits[Int(delta / 64)] >> UInt64(delta % 64) & 1 == 1 ? .replayed : .fresh
    }

    /// Marks `index` as received (after its packet was authenticated).
    mutating func accept(_ index: Int64) {
        if index > highest {
            shift(by: highest < 0 ? size : index - highest)
            highest = index
            bits[0] |= 1
        } else {
            let delta = highest - index
            guard delta < size else { return }
            bits[Int(delta / 64)] |= 1 << UInt64(delta % 64)
        }
    }

    /// Ages every bit by `k` indexes.
    private mutating func shift(by k: Int64) {
        guard k < size else {
            for i in bits.indices { bits[i] = 0 }
            return
        }
        let words = Int(k / 64), offset = UInt64(k % 64)
        for j in stride(from: bits.count - 1, through: 0, by: -1) {
            let source = j - words
            var value: UInt64 = source >= 0 ? bits[source] << offset : 0
            if offset > 0, source - 1 >= 0 { value |= bits[source - 1] >> (64 - offset) }
            bits[j] = value
        }
    }
}

/// SRTP and SRTCP with AEAD_AES_128_GCM (RFC 7714) on OpenSSL's AES-GCM: session keys and
/// salts from the RFC 3711 §4.3 key derivation (AES-CM PRF, key derivation rate 0, the
/// 96-bit master salt padded to 112 bits), the 12-byte IVs of §8.1 and §9.1, the RTP header
/// (and the SRTCP header, E flag and index) as associated data, a 16-byte tag, the rollover
/// counter estimated per RFC 3711 Appendix A and a replay window per SSRC.
///
/// Written by hand because Debian's libsrtp2 is built on NSS, whose AES-GCM costs about 6 µs
/// a packet here (a PKCS #11 context per call; half of a pass-through call's CPU); OpenSSL's,
/// with the key schedule kept per context, costs a fraction of that. libsrtp2 stays for
/// AES_CM_128_HMAC_SHA1_80 and is the reference these packets are tested against.
final class AESGCMSRTPSession {
    private let rtpCipher: OpaquePointer
    private let rtcpCipher: OpaquePointer
    private let rtpSalt: [UInt8]
    private let rtcpSalt: [UInt8]
    private let sealing: Bool
    private let windowSize: Int
    private var rtpStreams: [UInt32: ReplayWindow] = [:]
    private var rtcpStreams: [UInt32: ReplayWindow] = [:]
    private var nextRTCPIndex: [UInt32: UInt32] = [:]
    /// SSRCs kept at most per direction (an authenticated peer could otherwise grow the maps).
    static let maximumStreams = 64
    static let tagLength = 16

    init(keyAndSalt: [UInt8], sealing: Bool, windowSize: Int) throws(SRTPError) {
        guard keyAndSalt.count == 28 else { throw SRTPError(status: 2) }
        let masterKey = Array(keyAndSalt[0..<16]), masterSalt = Array(keyAndSalt[16..<28])
        let rtpKey = try Self.derive(masterKey, masterSalt, label: 0, length: 16)
        let rtcpKey = try Self.derive(masterKey, masterSalt, label: 3, length: 16)
        rtpSalt = try Self.derive(masterKey, masterSalt, label: 2, length: 12)
        rtcpSalt = try Self.derive(masterKey, masterSalt, label: 5, length: 12)
        guard let rtp = tandem_aes_gcm_new(rtpKey, sealing ? 1 : 0) else { throw SRTPError(status: 3) }
        guard let rtcp = tandem_aes_gcm_new(rtcpKey, sealing ? 1 : 0) else {
            tandem_aes_gcm_free(rtp)
            throw SRTPError(status: 3)
        }
        rtpCipher = rtp
        rtcpCipher = rtcp
        self.sealing = sealing
        self.windowSize = windowSize
    }

    deinit {
        tandem_aes_gcm_free(rtpCipher)
        tandem_aes_gcm_free(rtcpCipher)
    }

    /// RFC 3711 §4.3.1 with kdr = 0: AES-CM keystream under the master key from
    /// IV = (master salt XOR (label << 48)) × 2^16.
    static func derive(_ masterKey: [UInt8], _ masterSalt: [UInt8], label: UInt8, length: Int) throws(SRTPError) -> [UInt8] {
        var iv = [UInt8](repeating: 0, count: 16)
        for i in 0..<min(14, masterSalt.count) { iv[i] = masterSalt[i] }
        iv[7] ^= label
        var out = [UInt8](repeating: 0, count: length)
        guard tandem_aes_cm_keystream(masterKey, iv, &out, length) == 0 else { throw SRTPError(status: 3) }
        return out
    }

    // MARK: RTP

    /// The RTP header's length (fixed part, CSRCs, extension), nil when malformed.
    @inline(__always)
    private static func headerLength(_ p: UnsafeMutableRawBufferPointer, _ length: Int) -> Int? {
        guard length >= 12, p[0] >> 6 == 2 else { return nil }
        var h = 12 + 4 * Int(p[0] & 0x0F)
        if p[0] & 0x10 != 0 {
            guard length >= h + 4 else { return nil }
            h += 4 + 4 * (Int(p[h + 2]) << 8 | Int(p[h + 3]))
        }
        return h <= length ? h : nil
    }

    /// The packet index a sequence number has against the highest seen (RFC 3711 Appendix A).
    @inline(__always)
    private static func estimateIndex(_ sequence: UInt16, highest: Int64) -> Int64 {
        guard highest >= 0 else { return Int64(sequence) }
        let roc = highest >> 16, last = Int64(highest & 0xFFFF), seq = Int64(sequence)
        var v = roc
        if last < 32768 {
            if seq - last > 32768 { v = roc - 1 }
        } else if last - 32768 > seq {
            v = roc + 1
        }
        return v << 16 | seq
    }

    /// RFC 7714 §8.1: 00 00 | SSRC | ROC | SEQ, XOR the session salt.
    @inline(__always)
    private func rtpIV(ssrc: UInt32, index: Int64) -> (UInt64, UInt32) {
        let roc = UInt32(truncatingIfNeeded: index >> 16), seq = UInt16(truncatingIfNeeded: index)
        let high = UInt64(ssrc) << 16 | UInt64(roc >> 16)
        let low = UInt32(roc & 0xFFFF) << 16 | UInt32(seq)
        return (high, low)
    }

    private func withIV<R>(_ words: (UInt64, UInt32), salt: [UInt8], _ body: (UnsafePointer<UInt8>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { iv in
            for i in 0..<8 { iv[i] = UInt8(truncatingIfNeeded: words.0 >> UInt64(56 - 8 * i)) ^ salt[i] }
            for i in 0..<4 { iv[8 + i] = UInt8(truncatingIfNeeded: words.1 >> UInt32(24 - 8 * i)) ^ salt[8 + i] }
            return body(UnsafePointer(iv.baseAddress!))
        }
    }

    func protectRTP(_ p: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard sealing, let h = Self.headerLength(p, length), length + Self.tagLength <= p.count, let base = p.baseAddress else { throw SRTPError(status: 2) }
        let ssrc = p.loadBigEndian(at: 8)
        let sequence = UInt16(p[2]) << 8 | UInt16(p[3])
        var window = rtpStreams[ssrc] ?? ReplayWindow(size: windowSize)
        let index = Self.estimateIndex(sequence, highest: window.highest)
        guard index >= 0 else { throw SRTPError(status: 10) }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let status = withIV(rtpIV(ssrc: ssrc, index: index), salt: rtpSalt) { iv in
            tandem_aes_gcm_seal(rtpCipher, iv, bytes, h, bytes + h, length - h, bytes + length)
        }
        guard status == 0 else { throw SRTPError(status: 1) }
        window.accept(index)  // a sender may repeat an index (retransmission): allowed
        store(&rtpStreams, ssrc, window)
        return length + Self.tagLength
    }

    func unprotectRTP(_ p: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard !sealing, length <= p.count, let h = Self.headerLength(p, length - Self.tagLength), length >= h + Self.tagLength, let base = p.baseAddress else {
            throw SRTPError(status: 2)
        }
        let ssrc = p.loadBigEndian(at: 8)
        let sequence = UInt16(p[2]) << 8 | UInt16(p[3])
        var window = rtpStreams[ssrc] ?? ReplayWindow(size: windowSize)
        let index = Self.estimateIndex(sequence, highest: window.highest)
        guard index >= 0 else { throw SRTPError(status: 10) }
        switch window.check(index) {
        case .replayed: throw SRTPError(status: 9)
        case .tooOld: throw SRTPError(status: 10)
        case .fresh: break
        }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let payload = length - h - Self.tagLength
        let status = withIV(rtpIV(ssrc: ssrc, index: index), salt: rtpSalt) { iv in
            tandem_aes_gcm_open(rtpCipher, iv, bytes, h, bytes + h, payload, bytes + h + payload)
        }
        guard status == 0 else { throw SRTPError(status: 7) }
        window.accept(index)
        store(&rtpStreams, ssrc, window)
        return length - Self.tagLength
    }

    // MARK: RTCP

    /// RFC 7714 §9.1: 00 00 | SSRC | 00 00 | 0 + SRTCP index, XOR the session salt.
    @inline(__always)
    private func rtcpIV(ssrc: UInt32, index: UInt32) -> (UInt64, UInt32) {
        (UInt64(ssrc) << 16, index & 0x7FFF_FFFF)
    }

    func protectRTCP(_ p: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard sealing, length >= 8, length + Self.tagLength + 4 <= p.count, p[0] >> 6 == 2, let base = p.baseAddress else { throw SRTPError(status: 2) }
        let ssrc = p.loadBigEndian(at: 4)
        // The first SRTCP index is 1, as libsrtp2 sends it.
        let index = nextRTCPIndex[ssrc] ?? 1
        if nextRTCPIndex[ssrc] != nil || nextRTCPIndex.count < Self.maximumStreams { nextRTCPIndex[ssrc] = (index + 1) & 0x7FFF_FFFF }
        let trailer = 0x8000_0000 | index  // E = 1: encrypted
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        // Tag after the ciphertext, then E | index (RFC 7714 §9.2); both headers are associated data.
        p.storeBigEndian(trailer, at: length + Self.tagLength)
        let status = withAAD(header: bytes, trailer: trailer) { aad in
            withIV(rtcpIV(ssrc: ssrc, index: index), salt: rtcpSalt) { iv in
                tandem_aes_gcm_seal(rtcpCipher, iv, aad, 12, bytes + 8, length - 8, bytes + length)
            }
        }
        guard status == 0 else { throw SRTPError(status: 1) }
        return length + Self.tagLength + 4
    }

    func unprotectRTCP(_ p: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard !sealing, length >= 8 + Self.tagLength + 4, length <= p.count, let base = p.baseAddress else { throw SRTPError(status: 2) }
        let ssrc = p.loadBigEndian(at: 4)
        let trailer = p.loadBigEndian(at: length - 4)
        let index = trailer & 0x7FFF_FFFF
        let encrypted = trailer & 0x8000_0000 != 0
        var window = rtcpStreams[ssrc] ?? ReplayWindow(size: windowSize)
        switch window.check(Int64(index)) {
        case .replayed: throw SRTPError(status: 9)
        case .tooOld: throw SRTPError(status: 10)
        case .fresh: break
        }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let body = length - 8 - Self.tagLength - 4
        // E = 0 (authenticated only, RFC 7714 §9.3) is never what a browser sends, and is refused.
        guard encrypted else { throw SRTPError(status: 7) }
        let status = withAAD(header: bytes, trailer: trailer) { aad in
            withIV(rtcpIV(ssrc: ssrc, index: index), salt: rtcpSalt) { iv in
                tandem_aes_gcm_open(rtcpCipher, iv, aad, 12, bytes + 8, body, bytes + 8 + body)
            }
        }
        guard status == 0 else { throw SRTPError(status: 7) }
        window.accept(Int64(index))
        store(&rtcpStreams, ssrc, window)
        return 8 + body
    }

    /// The 12 bytes of SRTCP associated data: the first 8 of the packet, then E | index.
    private func withAAD<R>(header: UnsafeMutablePointer<UInt8>, trailer: UInt32, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 12) { aad in
            for i in 0..<8 { aad[i] = header[i] }
            for i in 0..<4 { aad[8 + i] = UInt8(truncatingIfNeeded: trailer >> UInt32(24 - 8 * i)) }
            return body(UnsafePointer(aad.baseAddress!))
        }
    }

    private func store(_ map: inout [UInt32: ReplayWindow], _ ssrc: UInt32, _ window: ReplayWindow) {
        if map[ssrc] == nil, map.count >= Self.maximumStreams { return }
        map[ssrc] = window
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func loadBigEndian(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }

    @inline(__always)
    func storeBigEndian(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(value >> 24)
        self[offset + 1] = UInt8((value >> 16) & 0xFF)
        self[offset + 2] = UInt8((value >> 8) & 0xFF)
        self[offset + 3] = UInt8(value & 0xFF)
    }
}
