import XCTest
@testable import STUN

final class CodecTests: XCTestCase {
    func testMessageTypeRoundTrip() {
        for method in [STUNMethod.binding, .allocate, .refresh, .send, .data, .createPermission, .channelBind, STUNMethod(rawValue: 0xFFF)] {
            for cls in [STUNClass.request, .indication, .successResponse, .errorResponse] {
                let t = STUNMessageType(method: method, messageClass: cls)
                XCTAssertEqual(STUNMessageType(rawValue: t.rawValue), t)
                XCTAssertEqual(t.rawValue & 0xC000, 0)
            }
        }
        XCTAssertEqual(STUNMessageType(method: .binding, messageClass: .successResponse).rawValue, 0x0101)
        XCTAssertEqual(STUNMessageType(method: .allocate, messageClass: .errorResponse).rawValue, 0x0113)
        XCTAssertEqual(STUNMessageType(method: .data, messageClass: .indication).rawValue, 0x0017)
        XCTAssertEqual(STUNMessageType(method: .channelBind, messageClass: .request).rawValue, 0x0009)
    }

    func testEveryAttributeRoundTrips() throws {
        let tid = TransactionID.random()
        let v4 = TransportAddress(ip: IPAddress("203.0.113.9")!, port: 49152)
        let v6 = TransportAddress(ip: IPAddress("2001:db8::1")!, port: 3478)
        var m = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .successResponse), transactionID: tid)
        m.attributes = [
            .address(.mappedAddress, v4),
            .xorAddress(.xorMappedAddress, v6, transactionID: tid),
            .xorAddress(.xorRelayedAddress, v4, transactionID: tid),
            .xorAddress(.xorPeerAddress, v4, transactionID: tid),
            .xorAddress(.xorPeerAddress, v6, transactionID: tid),
            .text(.username, "1700000000:alice"),
            .text(.realm, "tandem"),
            .text(.nonce, "abc"),
            .text(.software, "Tandem"),
            .errorCode(438, reason: "Stale Nonce"),
            .unknownAttributes([STUNAttributeType(rawValue: 0x0031), .dontFragment]),
            .uint32(.lifetime, 600),
            .channelNumber(0x4001),
            .requestedTransport(17),
            .addressFamily(.requestedAddressFamily, .ipv6),
            .addressFamily(.additionalAddressFamily, .ipv6),
            .evenPort(reserveNext: true),
            .uint64(.reservationToken, 0x0102_0304_0506_0708),
            .flag(.dontFragment),
            STUNAttribute(type: .data, value: [1, 2, 3, 4, 5]),
            .uint32(.priority, 0x6E00_01FF),
            .flag(.useCandidate),
            .uint64(.iceControlling, 42),
            .uint64(.iceControlled, 43),
            .addressErrorCode(family: .ipv6, code: 440, reason: "Address Family not Supported"),
        ]
        let key = STUNMessage.longTermKey(username: "u", realm: "r", password: "p")
        for integrity in [STUNMessage.Integrity.sha1(key: key), .sha256(key: key)] {
            let bytes = m.encode(integrity: integrity, fingerprint: true)
            let d = try STUNMessage.decode(bytes)
            XCTAssertTrue(d.hadFingerprint)
            XCTAssertTrue(d.verifyIntegrity(key: key))
            XCTAssertFalse(d.verifyIntegrity(key: STUNMessage.longTermKey(username: "u", realm: "r", password: "q")))
            XCTAssertEqual(try d.address(.mappedAddress), v4)
            XCTAssertEqual(try d.xorAddress(.xorMappedAddress), v6)
            XCTAssertEqual(try d.xorAddress(.xorRelayedAddress), v4)
            XCTAssertEqual(try d.xorAddresses(.xorPeerAddress), [v4, v6])
            XCTAssertEqual(try d.username, "1700000000:alice")
            XCTAssertEqual(try d.realm, "tandem")
            XCTAssertEqual(try d.nonce, "abc")
            XCTAssertEqual(try d.software, "Tandem")
            XCTAssertEqual(try d.errorCode, STUNErrorCode(code: 438, reason: "Stale Nonce"))
            XCTAssertEqual(try d.unknownAttributes, [STUNAttributeType(rawValue: 0x0031), .dontFragment])
            XCTAssertEqual(try d.lifetime, 600)
            XCTAssertEqual(try d.channelNumber, 0x4001)
            XCTAssertEqual(try d.requestedTransport, 17)
            XCTAssertEqual(try d.addressFamily(.requestedAddressFamily), .ipv6)
            XCTAssertEqual(try d.addressFamily(.additionalAddressFamily), .ipv6)
            XCTAssertEqual(try d.evenPort, true)
            XCTAssertEqual(try d.reservationToken, 0x0102_0304_0506_0708)
            XCTAssertTrue(d.has(.dontFragment))
            XCTAssertEqual(d.attribute(.data).map(Array.init), [1, 2, 3, 4, 5])
            XCTAssertEqual(try d.priority, 0x6E00_01FF)
            XCTAssertTrue(d.has(.useCandidate))
            XCTAssertEqual(try d.iceControlling, 42)
            XCTAssertEqual(try d.iceControlled, 43)
            XCTAssertNotNil(d.attribute(.addressErrorCode))
        }
    }

    func testAttributesAfterIntegrityAreIgnored() throws {
        var m = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request))
        m.attributes = [.text(.username, "a")]
        var bytes = m.encode(integrity: .sha1(key: [1, 2, 3]))
        // Append a SOFTWARE attribute after MESSAGE-INTEGRITY and fix the length.
        bytes += [0x80, 0x22, 0x00, 0x04, 0x41, 0x42, 0x43, 0x44]
        let len = bytes.count - 20
        bytes[2] = UInt8(len >> 8); bytes[3] = UInt8(len & 0xFF)
        let d = try STUNMessage.decode(bytes)
        XCTAssertNil(try d.software)
        XCTAssertTrue(d.verifyIntegrity(key: [1, 2, 3]))
    }

    func testComprehensionRequired() throws {
        var m = STUNMessage(type: STUNMessageType(method: .allocate, messageClass: .request))
        m.attributes = [STUNAttribute(type: STUNAttributeType(rawValue: 0x0031), value: [0]), STUNAttribute(type: STUNAttributeType(rawValue: 0x8031), value: [0]), .requestedTransport(17)]
        let d = try STUNMessage.decode(m.encode())
        XCTAssertEqual(d.unknownComprehensionRequired(known: [.requestedTransport]), [STUNAttributeType(rawValue: 0x0031)])
    }

    func testMalformedInputIsTypedError() {
        func fails(_ bytes: [UInt8], _ expected: STUNError, line: UInt = #line) {
            XCTAssertThrowsError(try STUNMessage.decode(bytes), line: line) { XCTAssertEqual($0 as? STUNError, expected, line: line) }
        }
        fails([], .truncated)
        fails([0, 1, 0, 0, 0x21, 0x12, 0xA4], .truncated)
        fails([0xC0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0, count: 12), .notSTUN)
        fails([0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x43] + [UInt8](repeating: 0, count: 12), .badMagicCookie)
        fails([0, 1, 0, 3, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0, count: 15), .badLength)
        fails([0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0, count: 12), .truncated)
        // An attribute whose length runs past the message.
        fails([0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0, count: 12) + [0, 6, 0, 9, 1, 2, 3, 4], .attributeOverrun(type: 6))
        // A bad FINGERPRINT.
        var m = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request))
        m.attributes = [.text(.software, "x")]
        var bytes = m.encode(fingerprint: true)
        bytes[bytes.count - 1] ^= 1
        fails(bytes, .badFingerprint)
        // Bad address family.
        var a = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .successResponse))
        a.attributes = [STUNAttribute(type: .xorMappedAddress, value: [0, 3, 0, 0, 1, 2, 3, 4])]
        let d = try! STUNMessage.decode(a.encode())
        XCTAssertThrowsError(try d.xorAddress(.xorMappedAddress))
    }

    func testChannelData() throws {
        let encoded = ChannelData.encode(channelNumber: 0x4001, data: [1, 2, 3, 4, 5], padded: true)
        XCTAssertEqual(encoded.count, 12)
        let h = try ChannelData.parseHeader(encoded)
        XCTAssertEqual(h, ChannelData.Header(channelNumber: 0x4001, length: 5))
        XCTAssertTrue(ChannelData.looksLikeChannelData(firstByte: encoded[0]))
        XCTAssertFalse(ChannelData.looksLikeChannelData(firstByte: 0x00))
        XCTAssertThrowsError(try ChannelData.parseHeader([0x40, 0x01, 0x00, 0x08, 1, 2])) { XCTAssertEqual($0 as? STUNError, .truncated) }
        XCTAssertThrowsError(try ChannelData.parseHeader([0x80, 0x01, 0x00, 0x00])) { XCTAssertEqual($0 as? STUNError, .badChannelNumber) }
    }

    func testIPAddressText() {
        XCTAssertEqual(IPAddress("127.0.0.1"), .v4(0x7F00_0001))
        XCTAssertNil(IPAddress("256.0.0.1"))
        XCTAssertNil(IPAddress("1.2.3"))
        XCTAssertEqual(IPAddress("::1"), .v6(0, 1))
        XCTAssertEqual(IPAddress("::"), .v6(0, 0))
        XCTAssertEqual(IPAddress("::ffff:1.2.3.4"), .v6(0, 0x0000_FFFF_0102_0304))
        XCTAssertEqual(IPAddress("2001:db8::1")?.description, "2001:db8::1")
        XCTAssertEqual(IPAddress("fe80::")?.description, "fe80::")
        XCTAssertNil(IPAddress("1::2::3"))
        XCTAssertNil(IPAddress("12345::"))
        XCTAssertEqual(IPAddress(bytes: [10, 0, 0, 1]), IPAddress("10.0.0.1"))
    }

    func testRandomBytesNeverCrash() {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let n = Int.random(in: 0..<120, using: &g)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            if n >= 8, Bool.random() { bytes[0] &= 0x3F; bytes[4...7] = [0x21, 0x12, 0xA4, 0x42]; bytes[2] = 0; bytes[3] = UInt8((n - 20) & 0xFC) }
            if let m = try? STUNMessage.decode(bytes) {
                _ = try? m.username; _ = try? m.errorCode; _ = try? m.xorAddresses(.xorPeerAddress); _ = m.verifyIntegrity(key: [1])
            }
            _ = try? ChannelData.parseHeader(bytes)
        }
    }
}
