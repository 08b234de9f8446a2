import Foundation
import NIOCore
import NIOEmbedded
import STUN
import XCTest
@testable import TURN

/// TCP/TLS framing (RFC 8656 §12.5) and stream connection rules.
final class StreamTests: XCTestCase {
    func frames(_ chunks: [[UInt8]]) throws -> [[UInt8]] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(StreamFrameDecoder()))
        var out: [[UInt8]] = []
        for c in chunks {
            try channel.writeInbound(ByteBuffer(bytes: c))
            while let f: ByteBuffer = try channel.readInbound() { out.append(Array(f.readableBytesView)) }
        }
        _ = try? channel.finish()
        return out
    }

    let binding = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request)).encode()

    func testSplitsSTUNAndPaddedChannelData() throws {
        let cd = ChannelData.encode(channelNumber: 0x4001, data: [1, 2, 3, 4, 5], padded: true)
        let stream = binding + cd + binding
        XCTAssertEqual(try frames([stream]), [binding, Array(cd[0..<9]), binding])
        // Byte by byte gives the same frames.
        XCTAssertEqual(try frames(stream.map { [$0] }), [binding, Array(cd[0..<9]), binding])
    }

    func testToleratesUnpaddedChannelData() throws {
        let cd = ChannelData.encode(channelNumber: 0x4001, data: [1, 2, 3, 4, 5], padded: false)
        let cd2 = ChannelData.encode(channelNumber: 0x4002, data: [9], padded: false)
        XCTAssertEqual(try frames([cd + binding + cd2 + cd]), [cd, binding, cd2, cd])
        let padded = ChannelData.encode(channelNumber: 0x4001, data: [7], padded: true)
        XCTAssertEqual(try frames([padded + cd2]), [Array(padded[0..<5]), cd2])
    }

    func testGarbageClosesTheStream() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(StreamFrameDecoder()))
        XCTAssertThrowsError(try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0, 0, 0])))
    }

    func testIdleTCPConnectionIsClosed() async throws {
        let h = try await TURNServerHarness.start { $0.streamIdleTimeout = 1 }
        // An idle connection is closed by the server.
        let idle = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(idle) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(h.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(idle, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(connected, 0)
        var tv = timeval(tv_sec: 4, tv_usec: 0)
        setsockopt(idle, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let started = Date()
        XCTAssertEqual(recv(idle, &byte, 1, 0), 0, "the server closed the idle connection")
        XCTAssertLessThan(Date().timeIntervalSince(started), 3.5)
        await h.stop()
    }
}
