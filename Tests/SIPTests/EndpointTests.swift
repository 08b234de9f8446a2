import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import SIP
@testable import SIPUA

/// Two endpoints on loopback sockets: transactions over UDP, TCP and TLS, retransmission and
/// timeout on real timers, 400 for a malformed request, CANCEL.
@Suite("SIP endpoint on loopback")
struct EndpointTests {
    static let fast = SIPTimerValues(t1: 20, t2: 160, t4: 100)

    static func endpoint(_ transports: [SIPTransport], timers: SIPTimerValues = fast, tls: (server: NIOSSLContext?, client: NIOSSLContext?) = (nil, nil)) async throws -> SIPEndpoint {
        let configuration = SIPEndpointConfiguration(
            listen: transports.map { SIPListenAddress(transport: $0, host: "127.0.0.1", port: 0) }, advertisedHost: "127.0.0.1", timers: timers,
            serverTLS: tls.server, clientTLS: tls.client)
        let endpoint = SIPEndpoint(configuration: configuration, loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test"))
        try await endpoint.start()
        return endpoint
    }

    static func options(_ from: SIPEndpoint, _ transport: SIPTransport) async throws -> SIPMessage {
        try await from.loop.submit {
            var m = SIPMessage(startLine: .request(method: .options, requestURI: "sip:peer@127.0.0.1"))
            m.headers.append("Via", from.newVia(transport))
            m.headers.append("From", "<sip:test@127.0.0.1>;tag=\(SIPEndpoint.newTag())")
            m.headers.append("To", "<sip:peer@127.0.0.1>")
            m.headers.append("Call-ID", SIPEndpoint.newCallID())
            m.headers.append("CSeq", "1 OPTIONS")
            return m
        }.get()
    }

    /// Sends `request` and waits for its final response (or timeout); provisionals are collected.
    static func request(_ endpoint: SIPEndpoint, _ request: SIPMessage, to destination: SIPDestination,
                        provisional: (@Sendable (SIPMessage) -> Void)? = nil) async -> SIPClientEvent {
        await withCheckedContinuation { (continuation: CheckedContinuation<SIPClientEvent, Never>) in
            endpoint.loop.execute {
                var done = false
                endpoint.send(request, to: destination) { event in
                    guard !done else { return }
                    if case .response(let r) = event, (r.statusCode ?? 0) < 200 {
                        provisional?(r)
                        return
                    }
                    done = true
                    continuation.resume(returning: event)
                }
            }
        }
    }

    static func destination(_ endpoint: SIPEndpoint, _ transport: SIPTransport, serverName: String? = nil) throws -> SIPDestination {
        try SIPDestination(transport: transport, ipAddress: "127.0.0.1", port: try #require(endpoint.port(of: transport)), serverName: serverName)
    }

    @Test(arguments: [SIPTransport.udp, .tcp])
    func optionsAnswered(_ transport: SIPTransport) async throws {
        let a = try await Self.endpoint([transport])
        let b = try await Self.endpoint([transport])
        let event = await Self.request(a, try await Self.options(a, transport), to: try Self.destination(b, transport))
        guard case .response(let response) = event else { Issue.record("no response: \(event)"); return }
        #expect(response.statusCode == 200)
        #expect(response.headers.first("Allow") == SIPEndpoint.allow)
        // RFC 3581: B filled in the address and port it saw A's request come from.
        let via = try #require(response.vias.first)
        #expect(via.received == "127.0.0.1")
        if transport == .udp { #expect(via.rport == String(try #require(a.port(of: .udp)))) }
        await a.stop()
        await b.stop()
    }

    @Test func tlsOptionsAnswered() async throws {
        let (certificate, key) = try Self.selfSigned(name: "tandem.test")
        let server = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .certificates([certificate])
        let client = try NIOSSLContext(configuration: clientConfiguration)
        let a = try await Self.endpoint([.udp], tls: (nil, client))
        let b = try await Self.endpoint([.tls], tls: (server, nil))
        let event = await Self.request(a, try await Self.options(a, .tls), to: try Self.destination(b, .tls, serverName: "tandem.test"))
        guard case .response(let response) = event else { Issue.record("no response: \(event)"); return }
        #expect(response.statusCode == 200)
        // The certificate must name the server: the wrong name fails the handshake, which the TU
        // sees as a timeout. (A fresh endpoint: `a` would reuse its verified connection.)
        let c = try await Self.endpoint([.udp], tls: (nil, client))
        let wrongName = await Self.request(c, try await Self.options(c, .tls), to: try Self.destination(b, .tls, serverName: "other.test"))
        guard case .timeout = wrongName else { Issue.record("a certificate for another name was accepted"); return }
        await a.stop()
        await c.stop()
        await b.stop()
    }

    /// A UDP peer that never answers: the request is retransmitted on Timer E, doubling, until
    /// Timer F (64·T1) ends the transaction.
    @Test func retransmitsThenTimesOut() async throws {
        let peer = try await RawUDP.bind()
        let a = try await Self.endpoint([.udp])
        let started = ContinuousClock.now
        let event = await Self.request(a, try await Self.options(a, .udp), to: try SIPDestination(transport: .udp, ipAddress: "127.0.0.1", port: peer.port))
        let elapsed = ContinuousClock.now - started
        guard case .timeout = event else { Issue.record("expected a timeout, got \(event)"); return }
        #expect(elapsed >= .milliseconds(64 * 20))
        let copies = peer.received.count
        // Sends at 0, 20, 60, 140, 300 (then every T2 = 160 ms) until 1280 ms: 11 in all.
        #expect(copies >= 8 && copies <= 12, "\(copies) copies")
        let branches = Set(peer.received.compactMap { try? SIPMessage(parsing: $0).vias.first?.branch })
        #expect(branches.count == 1)
        await a.stop()
        try await peer.close()
    }

    @Test func malformedRequestGets400() async throws {
        let peer = try await RawUDP.bind()
        let b = try await Self.endpoint([.udp])
        let bytes = Array("INVITE sip:3001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bKbad\r\nTo: <sip:3001@127.0.0.1>\r\nCall-ID: x1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".utf8)
        try await peer.send(bytes, to: try #require(b.port(of: .udp)))
        let reply = try await peer.next()
        let response = try SIPMessage(parsing: reply)
        #expect(response.statusCode == 400)
        #expect(response.reasonPhrase.contains("From"))
        #expect(response.callID == "x1")
        // A malformed response is dropped: nothing comes back.
        try await peer.send(Array("SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n".utf8), to: try #require(b.port(of: .udp)))
        try await Task.sleep(for: .milliseconds(200))
        #expect(peer.received.count == 1)
        await b.stop()
        try await peer.close()
    }

    /// RFC 3261 §9: the CANCEL gets 200, the INVITE 487, and the UAC's transaction ACKs it.
    @Test func cancelEndsPendingInvite() async throws {
        let a = try await Self.endpoint([.udp])
        let b = try await Self.endpoint([.udp])
        let cancelled = Box<Int>(0)
        try await b.loop.submit {
            b.onRequest = { _ in }  // the INVITE rings: no final response
            let previous = b.onCancel
            b.onCancel = { id, request in
                cancelled.value += 1
                previous(id, request)
            }
        }.get()
        var invite = SIPMessage(startLine: .request(method: .invite, requestURI: "sip:3001@127.0.0.1"))
        invite.headers.append("Via", try await a.loop.submit { a.newVia(.udp) }.get())
        invite.headers.append("From", "<sip:caller@127.0.0.1>;tag=1")
        invite.headers.append("To", "<sip:3001@127.0.0.1>")
        invite.headers.append("Call-ID", "cancel-test")
        invite.headers.append("CSeq", "7 INVITE")
        let destination = try Self.destination(b, .udp)
        let trying = AsyncStream<Void>.makeStream()
        let inviteTask = Task { [invite] in
            await Self.request(a, invite, to: destination, provisional: { _ in trying.continuation.yield() })
        }
        for await _ in trying.stream { break }
        let cancel = try #require(invite.cancelRequest())
        let cancelEvent = await Self.request(a, cancel, to: destination)
        guard case .response(let cancelResponse) = cancelEvent else { Issue.record("CANCEL unanswered"); return }
        #expect(cancelResponse.statusCode == 200)
        guard case .response(let inviteResponse) = await inviteTask.value else { Issue.record("INVITE unanswered"); return }
        #expect(inviteResponse.statusCode == 487)
        #expect(try await b.loop.submit { cancelled.value }.get() == 1)
        // The ACK confirmed B's INVITE transaction, and Timer I (T4 over UDP) ends it; Timer J
        // (64·T1) ends the CANCEL's.
        try await Task.sleep(for: .milliseconds(64 * 20 + 400))
        #expect(try await b.loop.submit { b.transactionCount }.get() == 0)
        await a.stop()
        await b.stop()
    }

    static func selfSigned(name: String) throws -> (NIOSSLCertificate, NIOSSLPrivateKey) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-sip-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                             "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)",
                             "-keyout", dir.appendingPathComponent("key.pem").path, "-out", dir.appendingPathComponent("cert.pem").path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let certificate = try #require(try NIOSSLCertificate.fromPEMFile(dir.appendingPathComponent("cert.pem").path).first)
        let key = try NIOSSLPrivateKey(file: dir.appendingPathComponent("key.pem").path, format: .pem)
        return (certificate, key)
    }
}

/// A mutable value for closures that run on one event loop.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// A bare UDP socket on loopback that records every datagram it gets.
final class RawUDP: @unchecked Sendable {
    let channel: any Channel
    private let lock = NSLock()
    private var _received: [[UInt8]] = []

    var port: Int { channel.localAddress?.port ?? 0 }
    var received: [[UInt8]] { lock.withLock { _received } }

    private init(channel: any Channel) { self.channel = channel }

    static func bind() async throws -> RawUDP {
        let collector = Collector()
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RecordingHandler(collector: collector)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let raw = RawUDP(channel: channel)
        collector.owner = raw
        return raw
    }

    func record(_ bytes: [UInt8]) { lock.withLock { _received.append(bytes) } }

    func send(_ bytes: [UInt8], to port: Int) async throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)))
    }

    /// The next datagram (waits at most 2 s).
    func next() async throws -> [UInt8] {
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            if let first = received.first { return first }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw SIPTransportError(description: "nothing received")
    }

    func close() async throws { try await channel.close() }

    final class Collector: @unchecked Sendable {
        weak var owner: RawUDP?
    }

    final class RecordingHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let collector: Collector
        init(collector: Collector) { self.collector = collector }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            collector.owner?.record(Array(unwrapInboundIn(data).data.readableBytesView))
        }
    }
}
