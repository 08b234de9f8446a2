import Testing
import WebRTC

private func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

@Suite("SRTP")
struct SRTPTests {
    /// Master key and salt of RFC 3711 Appendix B.3; the packet is the one libsrtp's own driver
    /// checks, and was recomputed independently here (AES-CM key derivation of §4.3 giving
    /// B.3's session keys, then AES-CM and HMAC-SHA1-80 of §4.1–4.2).
    static let masterKeyAndSalt = hex("E1F97A0D3E018BE0D64FA32C06DE4139") + hex("0EC675AD498AFEEBB6960B3AABE6")
    static let plaintext = hex("800f1234decafbadcafebabe") + [UInt8](repeating: 0xAB, count: 16)
    static let protected = hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")

    @Test func rfc3711KeyGivesTheReferenceCiphertext() throws {
        let outbound = try SRTPContext(profile: .aes128CMHMACSHA1_80, keyAndSalt: Self.masterKeyAndSalt, direction: .outbound)
        #expect(try outbound.protectRTP(Self.plaintext) == Self.protected)
        let inbound = try SRTPContext(profile: .aes128CMHMACSHA1_80, keyAndSalt: Self.masterKeyAndSalt, direction: .inbound)
        #expect(try inbound.unprotectRTP(Self.protected) == Self.plaintext)
    }

    @Test func tamperingAndReplayAreRefused() throws {
        let inbound = try SRTPContext(profile: .aes128CMHMACSHA1_80, keyAndSalt: Self.masterKeyAndSalt, direction: .inbound)
        var tampered = Self.protected
        tampered[20] ^= 1
        #expect { try inbound.unprotectRTP(tampered) } throws: { ($0 as? SRTPError)?.isAuthenticationFailure == true }
        _ = try inbound.unprotectRTP(Self.protected)
        #expect { try inbound.unprotectRTP(Self.protected) } throws: { ($0 as? SRTPError)?.isReplay == true }
    }

    @Test(arguments: SRTPProfile.allCases)
    func rtpAndRTCPRoundTrip(profile: SRTPProfile) throws {
        let key = (0..<(profile.keyLength + profile.saltLength)).map { UInt8($0 * 7 & 0xFF) }
        let tx = try SRTPContext(profile: profile, keyAndSalt: key, direction: .outbound)
        let rx = try SRTPContext(profile: profile, keyAndSalt: key, direction: .inbound)
        for seq in 0..<50 {
            let rtp = [0x80, 111, 0, UInt8(seq), 0, 0, 3, 0xC0, 0xCA, 0xFE, 0, 1] + [UInt8](repeating: UInt8(seq), count: 60)
            let srtp = try tx.protectRTP(rtp)
            #expect(srtp.count == rtp.count + profile.rtpOverhead)
            #expect(srtp[12...] != rtp[12...])
            #expect(try rx.unprotectRTP(srtp) == rtp)
        }
        let rtcp: [UInt8] = [0x80, 201, 0, 1, 0xCA, 0xFE, 0, 1]
        let srtcp = try tx.protectRTCP(rtcp)
        #expect(try rx.unprotectRTCP(srtcp) == rtcp)
    }

    /// The native AEAD_AES_128_GCM path (RFC 7714 on OpenSSL) writes the same bytes as
    /// libsrtp2 and each opens what the other sealed: through a sequence-number wrap (the
    /// rollover counter), with CSRCs and a header extension, for RTP and SRTCP.
    @Test func nativeGCMMatchesLibsrtp() throws {
        let key = (0..<28).map { UInt8(($0 * 29 + 3) & 0xFF) }
        let native = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .outbound)
        let reference = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .outbound, implementation: .libsrtp)
        let nativeIn = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .inbound)
        let referenceIn = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .inbound, implementation: .libsrtp)
        for n in 0..<120 {
            let seq = UInt16(truncatingIfNeeded: 65_480 + n)
            // V=2, X=1, CC=1; one CSRC; a one-word extension; a payload of varying length.
            var rtp: [UInt8] = [0x91, 111, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 1, 0x2C, 0x40, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 9]
            rtp += [0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0] + (0..<(20 + n % 40)).map { UInt8(($0 + n) & 0xFF) }
            let sealed = try native.protectRTP(rtp)
            #expect(sealed == (try reference.protectRTP(rtp)))
            #expect(Array(sealed.prefix(24)) == Array(rtp.prefix(24)))  // header and extension in the clear
            #expect(try referenceIn.unprotectRTP(sealed) == rtp)
            #expect(try nativeIn.unprotectRTP(sealed) == rtp)
        }
        for n in 0..<5 {
            let rtcp: [UInt8] = [0x81, 201, 0, 7, 0x12, 0x34, 0x56, 0x78] + (0..<24).map { UInt8($0 * 3 + n) }
            let sealed = try native.protectRTCP(rtcp)
            #expect(sealed == (try reference.protectRTCP(rtcp)))
            #expect(try referenceIn.unprotectRTCP(sealed) == rtcp)
            #expect(try nativeIn.unprotectRTCP(sealed) == rtcp)
        }
    }

    @Test func nativeGCMRefusesTamperingReplayAndOldPackets() throws {
        let key = (0..<28).map { UInt8($0 & 0xFF) }
        let tx = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .outbound)
        let rx = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .inbound)
        func packet(_ seq: UInt16) throws -> [UInt8] {
            try tx.protectRTP([0x80, 0, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 0, 0, 0, 0, 0, 0, 7] + [UInt8](repeating: 0x55, count: 32))
        }
        let first = try packet(2000)
        var tampered = first
        tampered[14] ^= 0x01
        #expect { try rx.unprotectRTP(tampered) } throws: { ($0 as? SRTPError)?.isAuthenticationFailure == true }
        var header = first
        header[1] ^= 0x01  // the header is authenticated too
        #expect { try rx.unprotectRTP(header) } throws: { ($0 as? SRTPError)?.isAuthenticationFailure == true }
        _ = try rx.unprotectRTP(first)
        #expect { try rx.unprotectRTP(first) } throws: { ($0 as? SRTPError)?.isReplay == true }
        let late = try packet(1990)  // reordered within the window: taken once
        _ = try rx.unprotectRTP(try packet(2900))
        #expect(try rx.unprotectRTP(late).count == 44)
        #expect { try rx.unprotectRTP(late) } throws: { ($0 as? SRTPError)?.isReplay == true }
        let old = try packet(1800)  // 1,100 behind the highest: outside the 1,024-packet window
        #expect { try rx.unprotectRTP(old) } throws: { ($0 as? SRTPError)?.isReplay == true }
        // Too short to hold a header and a tag, and a wrong key: refused, never a crash.
        #expect(throws: SRTPError.self) { try rx.unprotectRTP([0x80, 0, 0, 1]) }
        #expect(throws: SRTPError.self) { try rx.unprotectRTCP([0x80, 200, 0, 1, 0, 0, 0, 1]) }
        let stranger = try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: [UInt8](repeating: 9, count: 28), direction: .inbound)
        #expect { try stranger.unprotectRTP(try packet(4000)) } throws: { ($0 as? SRTPError)?.isAuthenticationFailure == true }
        let rtcp = try tx.protectRTCP([0x80, 200, 0, 1, 0, 0, 0, 7])
        _ = try rx.unprotectRTCP(rtcp)
        #expect { try rx.unprotectRTCP(rtcp) } throws: { ($0 as? SRTPError)?.isReplay == true }
    }

    @Test func wrongKeyLengthIsRefused() {
        #expect(throws: SRTPError.self) { try SRTPContext(profile: .aeadAES128GCM, keyAndSalt: [UInt8](repeating: 0, count: 30), direction: .inbound) }
    }

    /// RFC 5764 §4.2: client key, server key, client salt, server salt.
    @Test func keyingMaterialSplitsByRole() {
        let m = Array(0..<60).map(UInt8.init)
        let server = SRTPKeys(profile: .aes128CMHMACSHA1_80, keyingMaterial: m, isDTLSServer: true)
        let client = SRTPKeys(profile: .aes128CMHMACSHA1_80, keyingMaterial: m, isDTLSServer: false)
        #expect(server.local == Array(16..<32).map(UInt8.init) + Array(46..<60).map(UInt8.init))
        #expect(server.remote == Array(0..<16).map(UInt8.init) + Array(32..<46).map(UInt8.init))
        #expect(client.local == server.remote && client.remote == server.local)
    }
}
