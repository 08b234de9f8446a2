import XCTest
@testable import STUN

/// RFC 5769 test vectors, byte for byte.
final class RFC5769Tests: XCTestCase {
    static func hex(_ s: String) -> [UInt8] {
        let digits = s.filter { $0.isHexDigit }
        var out: [UInt8] = []
        var i = digits.startIndex
        while i < digits.endIndex {
            let j = digits.index(i, offsetBy: 2)
            out.append(UInt8(digits[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    static let sampleRequest = hex("""
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """)

    static let ipv4Response = hex("""
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """)

    static let ipv6Response = hex("""
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c
        """)

    static let longTermRequest = hex("""
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
        """)

    func testSampleRequest() throws {
        let m = try STUNMessage.decode(Self.sampleRequest)
        XCTAssertEqual(m.type, STUNMessageType(method: .binding, messageClass: .request))
        XCTAssertEqual(m.transactionID.description, "b7e7a701bc34d686fa87dfae")
        XCTAssertEqual(try m.software, "STUN test client")
        XCTAssertEqual(try m.priority, 0x6E00_01FF)
        XCTAssertEqual(try m.iceControlled, 0x932F_F9B1_5126_3B36)
        XCTAssertEqual(try m.username, "evtj:h6vY")
        XCTAssertTrue(m.hadFingerprint)
        XCTAssertTrue(m.verifyIntegrity(key: Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)))
        XCTAssertFalse(m.verifyIntegrity(key: Array("VOkJxbRl1RmTxUk/WvJxBT".utf8)))
    }

    func testIPv4Response() throws {
        let m = try STUNMessage.decode(Self.ipv4Response)
        XCTAssertEqual(m.type, STUNMessageType(method: .binding, messageClass: .successResponse))
        XCTAssertEqual(try m.software, "test vector")
        XCTAssertEqual(try m.xorAddress(.xorMappedAddress), TransportAddress(ip: IPAddress("192.0.2.1")!, port: 32853))
        XCTAssertTrue(m.verifyIntegrity(key: Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)))
    }

    func testIPv6Response() throws {
        let m = try STUNMessage.decode(Self.ipv6Response)
        XCTAssertEqual(try m.xorAddress(.xorMappedAddress), TransportAddress(ip: IPAddress("2001:db8:1234:5678:11:2233:4455:6677")!, port: 32853))
        XCTAssertTrue(m.verifyIntegrity(key: Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)))
    }

    func testLongTermRequest() throws {
        let m = try STUNMessage.decode(Self.longTermRequest)
        XCTAssertEqual(try m.username, "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}")
        XCTAssertEqual(try m.nonce, "f//499k954d6OL34oL9FSTvy64sA")
        XCTAssertEqual(try m.realm, "example.org")
        // The password "The\u{00AD}M\u{00AA}tr\u{2168}" after SASLprep is "TheMatrIX" (RFC 5769 §2.4).
        let key = STUNMessage.longTermKey(username: try m.username!, realm: "example.org", password: "TheMatrIX")
        XCTAssertTrue(m.verifyIntegrity(key: key))
    }

    /// Re-encoding the decoded sample request with the same attributes gives the same bytes
    /// (the vector pads USERNAME with spaces; padding content is ignored on decode, so we compare up to it).
    func testEncodeReproducesIPv4Response() throws {
        let m = try STUNMessage.decode(Self.ipv4Response)
        var out = STUNMessage(type: m.type, transactionID: m.transactionID)
        out.attributes = [
            STUNAttribute(type: .software, value: Array("test vector".utf8)),
            .xorAddress(.xorMappedAddress, TransportAddress(ip: IPAddress("192.0.2.1")!, port: 32853), transactionID: m.transactionID),
        ]
        let bytes = out.encode(integrity: .sha1(key: Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)), fingerprint: true)
        // The vector pads SOFTWARE with 0x20 where we pad with zeros; all else is identical.
        var patched = bytes
        patched[20 + 4 + 11] = 0x20
        XCTAssertEqual(Array(patched[0..<44]), Array(Self.ipv4Response[0..<44]))
        let again = try STUNMessage.decode(bytes)
        XCTAssertTrue(again.verifyIntegrity(key: Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)))
        XCTAssertEqual(try again.xorAddress(.xorMappedAddress), TransportAddress(ip: IPAddress("192.0.2.1")!, port: 32853))
    }
}
