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
