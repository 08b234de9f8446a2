// sip-peer: Tandem's SIP stack (SIPUA) driven as a test peer for tools/interop/sip/run.py.
// It registers one extension with the platform, then either
//   answer: takes incoming calls, answers with a G.711 SDP built here (the "small test helper"
//           of the SIP issue: SIPUA knows no SDP) and echoes every RTP packet back to where it
//           came from; BYE from either side (--hangup-after) or CANCEL ends each call; or
//   call:   calls --target, sends a µ-law tone of --tone-hz to the answer's address, decodes
//           what comes back and finds its strongest frequency (Goertzel over 50–3500 Hz).
// Prints one JSON line per call.

import ArgumentParser
import Foundation
import G711
import Logging
import NIOCore
import NIOPosix
import SIP
import SIPUA

@main
struct SIPPeer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sip-peer", abstract: "Tandem's SIP stack as an interop test peer.")

    enum Mode: String, ExpressibleByArgument { case answer, call, register }

    @Option var mode: Mode
    @Option(help: "Local SIP address host:port (UDP).") var listen = "127.0.0.1:5062"
    @Option(help: "Registrar/proxy ip:port.") var platform = "127.0.0.1:5060"
    @Option var domain = "tandem.test"
    @Option var user = "3001"
    @Option var password = "pw3001"
    @Option(help: "call: the URI to call.") var target: String?
    @Option(help: "call: tone sent, Hz.") var toneHz = 1000.0
    @Option(help: "call: seconds of media before hanging up.") var seconds = 4.0
    @Option(help: "answer: ms between 180 and 200 (0 = answer at once).") var answerDelayMs = 300
    @Option(help: "answer: hang up (BYE) this many seconds after answering (0 = wait for the peer).") var hangupAfter = 0.0
    @Option(help: "answer: exit after this many calls ended.") var calls = 1
    @Option(help: "Give up after this many seconds.") var timeout = 60.0
    @Option(help: "register: the extensions, first-last (password pw + number).") var extensions: String?
    @Option(help: "register: REGISTERs started per second.") var rate = 200
    @Flag(help: "answer: no line per call (for load).") var quiet = false
    @Flag(help: "answer: no 180 before the 200 (for load through a multi-process proxy, which may reorder them).") var noRing = false

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["SIP_PEER_TRACE"] != nil ? .trace : .info
            return handler
        }
        let logger = Logger(label: "sip-peer")
        let parts = listen.split(separator: ":")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let endpoint = SIPEndpoint(
            configuration: SIPEndpointConfiguration(listen: [SIPListenAddress(transport: .udp, host: String(parts[0]), port: Int(parts[1]) ?? 5062)], advertisedHost: String(parts[0])),
            loop: loop, logger: logger)
        try await endpoint.start()
        let platformParts = platform.split(separator: ":")
        let destination = try SIPDestination(transport: .udp, ipAddress: String(platformParts[0]), port: Int(platformParts[1]) ?? 5060)
        let agent = RegistrationAgent(endpoint: endpoint, platform: SIPPlatform(primary: destination, domain: domain, keepAliveInterval: 0, registrationsPerSecond: rate), logger: logger)
        if mode == .register {
            try await registerMany(agent: agent, loop: loop)
            await endpoint.stop()
            return
        }
        let (user, password) = (self.user, self.password)
        let manager = SIPCallManager(endpoint: endpoint, domain: domain, logger: logger,
                                     credentials: { $0 == user ? (user, password) : nil }, route: { _ in destination })
        let results = AsyncStream<String>.makeStream()
        let media = try await MediaSocket.bind(host: String(parts[0]), loop: loop)
        let mode = self.mode, answerDelayMs = self.answerDelayMs, hangupAfter = self.hangupAfter, ring = !noRing
        try await loop.submit {
            manager.install()
            agent.start([SIPExtensionCredentials(user: user, username: user, password: password)])
            manager.onIncomingCall = { call in
                guard mode == .answer else { return call.reject(486, "Busy Here") }
                media.reset(echo: true)
                if ring { call.ring() }
                let answer = Self.sdp(port: media.port)
                let started = NIODeadline.now()
                call.onEvent = { event in
                    switch event {
                    case .answered:
                        if hangupAfter > 0 {
                            loop.scheduleTask(in: .milliseconds(Int64(hangupAfter * 1000))) { call.hangUp() }
                        }
                    case .ended(let reason, let code):
                        let stats = media.stats()
                        let fields: [String: Any] = ["call": call.callID, "ended": reason, "code": code ?? 0, "rtp_in": stats.received, "rtp_echoed": stats.sent,
                                                     "seconds": Double((NIODeadline.now() - started).nanoseconds) / 1e9]
                        results.continuation.yield(Self.json(fields))
                    default: break
                    }
                }
                loop.scheduleTask(in: .milliseconds(Int64(answerDelayMs))) {
                    if !call.isEnded { call.accept(body: Array(answer.utf8)) }
                }
            }
        }.get()
        // Registered before anything else.
        let deadline = ContinuousClock.now + .seconds(timeout)
        while agent.summary.registeredCount == 0 {
            if ContinuousClock.now > deadline { throw ValidationError("not registered: \(agent.summary.failures)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        Self.emit(Self.json(["registered": user, "media_port": media.port]))

        switch mode {
        case .register:
            return
        case .answer:
            var ended = 0
            let timer = Task { try await Task.sleep(for: .seconds(timeout)); results.continuation.finish() }
            for await line in results.stream {
                if !quiet { Self.emit(line) }
                ended += 1
                if ended >= calls { break }
            }
            timer.cancel()
            if ended < calls { throw ValidationError("only \(ended) of \(calls) calls") }
        case .call:
            guard let target else { throw ValidationError("--target is needed to call") }
            media.reset(echo: false)
            let offer = Self.sdp(port: media.port)
            let tone = toneHz, seconds = self.seconds
            try await loop.submit {
                guard let call = manager.call(from: user, to: target, body: Array(offer.utf8)) else { return }
                call.onEvent = { event in
                    switch event {
                    case .answered(let body):
                        guard let (host, port) = Self.mediaAddress(String(decoding: body, as: UTF8.self)) else {
                            results.continuation.yield(Self.json(["ok": false, "error": "no media address in the answer", "answer": String(decoding: body, as: UTF8.self)]))
                            call.hangUp()
                            return
                        }
                        media.playTone(hz: tone, to: host, port: port, seconds: seconds) { call.hangUp() }
                    case .ended(let reason, let code):
                        let stats = media.stats()
                        let (hz, ratio) = Tone.dominant(G711.Law.muLaw.decode(stats.payload))
                        results.continuation.yield(Self.json(["call": call.callID, "ended": reason, "code": code ?? 0, "rtp_in": stats.received, "rtp_out": stats.sent,
                                                              "dominant_hz": hz, "tone_ratio": ratio]))
                    default: break
                    }
                }
            }.get()
            let timer = Task { try await Task.sleep(for: .seconds(timeout)); results.continuation.finish() }
            for await line in results.stream {
                Self.emit(line)
                break
            }
            timer.cancel()
            // Give the BYE its answer before the sockets close.
            try await Task.sleep(for: .milliseconds(500))
        }
        await agent.stop()
        await endpoint.stop()
        try await media.close()
    }

    /// Registers every extension of `--extensions` at `--rate` and reports how long it took
    /// and the CPU time it cost this process.
    func registerMany(agent: RegistrationAgent, loop: any EventLoop) async throws {
        guard let text = extensions, let dash = text.firstIndex(of: "-"), let first = Int(text[..<dash]), let last = Int(text[text.index(after: dash)...]), first <= last else {
            throw ValidationError("--extensions first-last")
        }
        let list = (first...last).map { SIPExtensionCredentials(user: String($0), username: String($0), password: "pw\($0)") }
        let cpu0 = Self.cpuSeconds()
        let started = ContinuousClock.now
        try await loop.submit { agent.start(list) }.get()
        let deadline = started + .seconds(timeout)
        var summary = agent.summary
        while summary.registeredCount + summary.failed < list.count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            summary = agent.summary
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        Self.emit(Self.json(["registered": summary.registeredCount, "failed": summary.failed, "seconds": seconds, "cpu_seconds": Self.cpuSeconds() - cpu0]))
    }

    static func cpuSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func sdp(port: Int) -> String {
        let id = UInt32.random(in: 1...UInt32.max)
        return "v=0\r\no=tandem \(id) 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio \(port) RTP/AVP 0 101\r\n"
            + "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    }

    /// The connection address and audio port of an SDP (session or media level c=).
    static func mediaAddress(_ sdp: String) -> (String, Int)? {
        var host: String?
        var port: Int?
        for line in sdp.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("c=IN IP4 ") { host = String(line.dropFirst(9)).split(separator: "/").first.map(String.init) }
            if line.hasPrefix("m=audio ") { port = Int(line.split(separator: " ")[1]) }
        }
        guard let host, let port else { return nil }
        return (host, port)
    }

    /// One line on standard output, written at once (the runner reads it while we run).
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func json(_ fields: [String: Any]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)) ?? "{}"
    }
}

/// A UDP socket for one call's RTP: echoes (answer) or plays a tone (call), and counts.
final class MediaSocket: @unchecked Sendable {
    let channel: any Channel
    private let lock = NSLock()
    private var received = 0
    private var sent = 0
    private var payload: [UInt8] = []
    private var echo = false

    var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) { self.channel = channel }

    /// Binds on `loop`, the SIP endpoint's, so media callbacks may call into the call.
    static func bind(host: String, loop: any EventLoop) async throws -> MediaSocket {
        let box = Holder()
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(holder: box)) }
            }
            .bind(host: host, port: 0).get()
        let socket = MediaSocket(channel: channel)
        box.socket = socket
        return socket
    }

    func reset(echo: Bool) {
        lock.withLock {
            received = 0
            sent = 0
            payload = []
            self.echo = echo
        }
    }

    func stats() -> (received: Int, sent: Int, payload: [UInt8]) { lock.withLock { (received, sent, payload) } }

    fileprivate func got(_ envelope: AddressedEnvelope<ByteBuffer>) {
        let bytes = Array(envelope.data.readableBytesView)
        guard bytes.count >= 12, bytes[0] >> 6 == 2 else { return }
        let headerLength = 12 + Int(bytes[0] & 0x0F) * 4
        let echoing = lock.withLock { () -> Bool in
            received += 1
            if bytes[1] & 0x7F == 0, bytes.count > headerLength { payload += bytes[headerLength...] }
            if echo { sent += 1 }
            return echo
        }
        if echoing { channel.writeAndFlush(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: envelope.data), promise: nil) }
    }

    /// 20 ms PCMU packets of a sine at `hz` for `seconds`, then `done`.
    func playTone(hz: Double, to host: String, port: Int, seconds: Double, done: @escaping @Sendable () -> Void) {
        guard let address = try? SocketAddress(ipAddress: host, port: port) else { return done() }
        let ssrc = UInt32.random(in: 1...UInt32.max)
        let frames = Int(seconds * 50)
        let loop = channel.eventLoop
        @Sendable func send(_ n: Int) {
            guard n < frames else { return done() }
            var samples = [Int16](repeating: 0, count: 160)
            for i in 0..<160 { samples[i] = Int16(8000 * sin(2 * Double.pi * hz * Double(n * 160 + i) / 8000)) }
            var packet: [UInt8] = [0x80, n == 0 ? 0x80 : 0x00, UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
            let ts = UInt32(n * 160)
            packet += [UInt8(ts >> 24), UInt8((ts >> 16) & 0xFF), UInt8((ts >> 8) & 0xFF), UInt8(ts & 0xFF)]
            packet += [UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xFF), UInt8((ssrc >> 8) & 0xFF), UInt8(ssrc & 0xFF)]
            packet += G711.Law.muLaw.encode(samples)
            lock.withLock { sent += 1 }
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: packet)), promise: nil)
            loop.scheduleTask(in: .milliseconds(20)) { send(n + 1) }
        }
        loop.execute { send(0) }
    }

    func close() async throws { try await channel.close() }

    final class Holder: @unchecked Sendable { weak var socket: MediaSocket? }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let holder: Holder
        init(holder: Holder) { self.holder = holder }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { holder.socket?.got(unwrapInboundIn(data)) }
    }
}

/// The strongest frequency of 8 kHz samples (Goertzel in 10 Hz steps) and its share of the
/// energy of all steps.
enum Tone {
    static func dominant(_ samples: [Int16]) -> (Double, Double) {
        // The middle of the recording: leave out the jitter of its start and end.
        let usable = samples.count > 16000 ? Array(samples[4000..<(samples.count - 4000)]) : samples
        guard usable.count >= 800 else { return (0, 0) }
        let window = Array(usable.prefix(8000)).map(Double.init)
        var best = (hz: 0.0, power: 0.0)
        var total = 0.0
        for step in stride(from: 50.0, through: 3500.0, by: 10.0) {
            let w = 2 * Double.pi * step / 8000
            let coefficient = 2 * cos(w)
            var s1 = 0.0, s2 = 0.0
            for x in window {
                let s0 = x + coefficient * s1 - s2
                s2 = s1
                s1 = s0
            }
            let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
            total += power
            if power > best.power { best = (step, power) }
        }
        return (best.hz, total > 0 ? best.power / total : 0)
    }
}
