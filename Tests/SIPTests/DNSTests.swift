import NIOCore
import NIOPosix
import Testing
@testable import SIPUA

/// The DNS of RFC 3263 §4: query encoding, bounded answer parsing (compression, truncation,
/// loops), SRV ordering, and SRV → A resolution against a DNS server on a loopback socket.
@Suite("DNS for SIP (RFC 3263, RFC 2782)")
struct DNSTests {
    /// An answer to `query` holding `records` (name, type, class IN, TTL 60, data), the owner
    /// names compressed to the question's name when equal.
    static func response(to query: [UInt8], rcode: UInt8 = 0, records: [(name: String, type: UInt16, data: [UInt8])], additional: [(name: String, type: UInt16, data: [UInt8])] = []) -> [UInt8] {
        var out = Array(query[0..<12])
        out[2] = 0x81
        out[3] = 0x80 | rcode
        out[6] = 0; out[7] = UInt8(records.count)
        out[10] = 0; out[11] = UInt8(additional.count)
        out += query[12...]
        let question = Array(query[12..<(query.count - 4)])
        for r in records + additional {
            if encoded(r.name) == question {
                out += [0xC0, 12]
            } else {
                out += encoded(r.name)
            }
            out += [UInt8(r.type >> 8), UInt8(r.type & 0xFF), 0, 1, 0, 0, 0, 60, UInt8(r.data.count >> 8), UInt8(r.data.count & 0xFF)]
            out += r.data
        }
        return out
    }

    static func encoded(_ name: String) -> [UInt8] {
        name.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
    }

    static func srv(_ priority: UInt16, _ weight: UInt16, _ port: UInt16, _ target: String) -> [UInt8] {
        [UInt8(priority >> 8), UInt8(priority & 0xFF), UInt8(weight >> 8), UInt8(weight & 0xFF), UInt8(port >> 8), UInt8(port & 0xFF)] + encoded(target)
    }

    @Test func queryAndAnswer() throws {
        let query = try DNS.query(id: 0x1234, name: "_sip._udp.pbx.example", type: .srv)
        #expect(query.prefix(4) == [0x12, 0x34, 0x01, 0x00] && query.suffix(4) == [0, 33, 0, 1])
        let answer = try DNS.parse(Self.response(to: query, records: [("_sip._udp.pbx.example", 33, Self.srv(10, 5, 5070, "sip1.pbx.example"))],
                                                 additional: [("sip1.pbx.example", 1, [10, 0, 0, 7]), ("sip1.pbx.example", 28, [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])]), id: 0x1234)
        #expect(answer.services == [DNS.Service(priority: 10, weight: 5, port: 5070, target: "sip1.pbx.example")])
        #expect(answer.addresses["sip1.pbx.example"] == ["10.0.0.7", "2001:db8:0:0:0:0:0:1"])
        #expect(throws: DNS.Error.wrongID) { try DNS.parse(Self.response(to: query, records: []), id: 1) }
        #expect(throws: DNS.Error.nameTooLong) { try DNS.query(id: 1, name: String(repeating: "a", count: 64) + ".example", type: .a) }
    }

    @Test func hostileAnswersAreRefused() throws {
        let query = try DNS.query(id: 7, name: "pbx.example", type: .a)
        var loop = Self.response(to: query, records: [])
        loop[7] = 1
        loop += [0xC0, UInt8(loop.count)]  // a pointer to itself
        #expect(throws: DNS.Error.self) { try DNS.parse(loop, id: 7) }
        var short = Self.response(to: query, records: [("pbx.example", 1, [10, 0, 0, 1])])
        short.removeLast(2)
        #expect(throws: DNS.Error.self) { try DNS.parse(short, id: 7) }
        #expect(throws: DNS.Error.self) { try DNS.parse([0, 7, 0x81], id: 7) }
        // Every prefix of a good answer either parses or is refused: no crash, no trap.
        let good = Self.response(to: query, records: [("pbx.example", 1, [10, 0, 0, 1])])
        for n in 0..<good.count { _ = try? DNS.parse(Array(good.prefix(n)), id: 7) }
    }

    @Test func srvOrder() {
        var generator = SystemRandomNumberGenerator()
        let records = [DNS.Service(priority: 20, weight: 0, port: 1, target: "c"), DNS.Service(priority: 10, weight: 60, port: 1, target: "a"),
                       DNS.Service(priority: 10, weight: 40, port: 1, target: "b")]
        var firsts: [String: Int] = [:]
        for _ in 0..<400 {
            let order = DNS.ordered(records, using: &generator)
            #expect(order.last?.target == "c" && order.count == 3)
            firsts[order[0].target, default: 0] += 1
        }
        // Weighted 60/40: both come first sometimes, "a" more often.
        #expect((firsts["a"] ?? 0) > (firsts["b"] ?? 0) && (firsts["b"] ?? 0) > 60)
    }

    /// A DNS server on a loopback UDP socket answers SRV for the platform and A for its target.
    @Test func resolvesThroughSRV() async throws {
        let server = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FakeDNS()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = UInt16(try #require(server.localAddress?.port))
        let resolver = SIPResolver(nameservers: [("127.0.0.1", port)], timeoutMilliseconds: 1000)
        let viaSRV = try resolver.resolve(host: "pbx.example", port: nil, transport: .udp)
        #expect(viaSRV.map(\.description) == ["udp:10.1.1.1:5070", "udp:10.1.1.2:5080"])
        #expect(viaSRV.first?.serverName == "pbx.example")
        // With a port, no SRV (RFC 3263 §4.2): the name's own A record.
        let direct = try resolver.resolve(host: "pbx.example", port: 5099, transport: .tcp)
        #expect(direct.map(\.description) == ["tcp:10.9.9.9:5099"])
        #expect(try resolver.resolve(host: "192.0.2.1", port: nil, transport: .tls).map(\.description) == ["tls:192.0.2.1:5061"])
        try await server.close()
    }

    /// Answers `_sip._udp.pbx.example` SRV (two targets, two priorities), A for the targets and
    /// for pbx.example, and nothing for AAAA.
    final class FakeDNS: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            let query = Array(envelope.data.readableBytesView)
            var offset = 12
            guard let name = try? DNS.name(query, &offset), offset + 2 <= query.count else { return }
            let type = UInt16(query[offset]) << 8 | UInt16(query[offset + 1])
            var records: [(name: String, type: UInt16, data: [UInt8])] = []
            switch (name, type) {
            case ("_sip._udp.pbx.example", 33):
                records = [(name, 33, DNSTests.srv(20, 0, 5080, "b.pbx.example")), (name, 33, DNSTests.srv(10, 0, 5070, "a.pbx.example"))]
            case ("a.pbx.example", 1): records = [(name, 1, [10, 1, 1, 1])]
            case ("b.pbx.example", 1): records = [(name, 1, [10, 1, 1, 2])]
            case ("pbx.example", 1): records = [(name, 1, [10, 9, 9, 9])]
            default: break
            }
            let reply = DNSTests.response(to: query, records: records)
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: reply))), promise: nil)
        }
    }
}
