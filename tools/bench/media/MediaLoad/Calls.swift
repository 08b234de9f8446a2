import Datapath
import Foundation
import Media
import SDP
import STUN
import WebRTC

/// One call after its offer was answered: its socket and what the answer negotiated.
struct CallSetup: @unchecked Sendable {
    let index: Int
    let socket: UDPSocket
    let local: LocalMediaParameters
    let audio: NegotiatedAudio
    let remote: DatagramAddress
    let dtls: DTLSTransport

    static func make(index: Int, bind: String, codec: AudioCodec, identity: DTLSIdentity, url: String) throws -> CallSetup {
        guard let ip = IPAddress(bind) else { throw SetupError("bad bind address \(bind)") }
        let socket = try UDPSocket(binding: DatagramAddress(TransportAddress(ip: ip, port: 0)), options: .init(receiveBufferSize: 1 << 18, sendBufferSize: 1 << 18, receiveTimestamps: true))
        var local = LocalMediaParameters(ice: .random(), fingerprintSHA256: identity.fingerprintSHA256, addresses: [bind], port: socket.localAddress.port)
        local.codecs = [codec]
        var offer = WebRTCOfferAnswer.offer(local: local)
        offer.remove("ice-lite")  // a browser is a full agent
        let answerText = try post(offer.serialized, to: url)
        let answer = try SessionDescription(parsing: answerText)
        let audio = try WebRTCOfferAnswer.apply(answer: answer, to: offer)
        guard let candidate = audio.remoteCandidates.first, let address = IPAddress(candidate.address) else { throw SetupError("answer has no usable candidate") }
        let dtls = try DTLSTransport(identity: identity, role: audio.dtlsRole, expectedFingerprints: audio.remoteFingerprints)
        return CallSetup(index: index, socket: socket, local: local, audio: audio, remote: DatagramAddress(TransportAddress(ip: address, port: candidate.port)), dtls: dtls)
    }

    /// A browser answering Tandem's offer (a call from SIP): Opus, a full ICE agent, and the
    /// DTLS role the answer takes (passive to Tandem's actpass: this side is the DTLS server).
    static func answering(index: Int, bind: String, identity: DTLSIdentity, offer text: String) throws -> (CallSetup, answer: String) {
        guard let ip = IPAddress(bind) else { throw SetupError("bad bind address \(bind)") }
        let socket = try UDPSocket(binding: DatagramAddress(TransportAddress(ip: ip, port: 0)), options: .init(receiveBufferSize: 1 << 18, sendBufferSize: 1 << 18, receiveTimestamps: true))
        var local = LocalMediaParameters(ice: .random(), fingerprintSHA256: identity.fingerprintSHA256, addresses: [bind], port: socket.localAddress.port)
        local.codecs = [.opus]
        let offer = try SessionDescription(parsing: text)
        let negotiated = try WebRTCOfferAnswer.answer(offer, local: local)
        var answer = negotiated.answer
        let audio = negotiated.audio
        answer.remove("ice-lite")
        guard let candidate = audio.remoteCandidates.first, let address = IPAddress(candidate.address) else {
            socket.close()
            throw SetupError("offer has no usable candidate")
        }
        let dtls = try DTLSTransport(identity: identity, role: audio.dtlsRole, expectedFingerprints: audio.remoteFingerprints)
        return (CallSetup(index: index, socket: socket, local: local, audio: audio, remote: DatagramAddress(TransportAddress(ip: address, port: candidate.port)), dtls: dtls),
                answer.serialized)
    }

    /// POSTs the offer with curl (Tandem's certificate is self-signed in the bench), started
    /// with `posix_spawn` and read through a pipe: Foundation's `Process` crashes once the
    /// tool holds more than about 1,400 descriptors (the calls' sockets), and a signal
    /// interrupting the read is simply retried.
    static func post(_ sdp: String, to url: String) throws -> String {
        try post(sdp, to: url, headers: ["Content-Type: application/sdp"])
    }

    /// POSTs `body` with `headers` (see ``post(_:to:)``); the answer's body.
    static func post(_ body: String, to url: String, headers: [String]) throws -> String {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw SetupError("pipe: \(errno)") }
        // Neither end leaks into other calls' curl processes (only the dup2 on 1 is inherited).
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        let arguments = ["curl", "-sS", "-k", "--fail-with-body", "--max-time", "10"] + headers.flatMap { ["-H", $0] } + ["--data-binary", body, url]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/usr/bin/curl", &actions, nil, &argv, environ)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard spawned == 0 else { throw SetupError("posix_spawn curl: \(spawned)") }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n > 0 { data += chunk[0..<n]; continue }
            if n < 0, errno == EINTR { continue }
            break
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let text = String(decoding: data, as: UTF8.self)
        // A normal exit with status 0 (WIFEXITED and WEXITSTATUS, spelled out).
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else { throw SetupError("\(url) refused the request: \(text)") }
        return text
    }
}

struct SetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// All calls, on the load tool's loop: ICE as the controlling agent, DTLS client, SRTP,
/// paced sending, echo matching.
final class Driver {
    let loop: DatapathLoop
    let frames: [[UInt8]]
    let codec: AudioCodec
    var calls: [LoadCall] = []
    /// The calls by the millisecond of the 20 ms frame period they send in, so sends spread
    /// over the period as independent browsers' do instead of leaving in bursts.
    private var slots: [[LoadCall]] = Array(repeating: [], count: Driver.slotCount)
    private var measuring = false
    private var sending = true
    private var tick = 0
    /// Ticks are due at start + n × 250 µs, so late wake-ups do not slow the pace.
    private let start = DatapathLoop.monotonicNanoseconds()
    var latencies: [Double] = []
    /// The same round trips from the send call to the kernel's arrival stamp on our socket
    /// (SO_TIMESTAMPNS): the time the packets spent in and between the gateway's two passes,
    /// without this tool's own loop delays.
    var socketLatencies: [Double] = []
    static let tickNanoseconds: UInt64 = 250_000
    static let slotCount = Int(20_000_000 / tickNanoseconds)
    /// Every call's socket is read into this one batch (one thread): one `recvmmsg` per wake-up.
    let receiveBatch = ReceiveBatch(capacity: 8, maximumDatagramSize: 2048, receiveTimestamps: true)

    init(loop: DatapathLoop, frames: [[UInt8]], codec: AudioCodec) {
        self.loop = loop
        self.frames = frames
        self.codec = codec
        schedule()
    }

    /// Calls by the gateway's call id (the gateway mode), to end them when Tandem says so.
    private var tagged: [String: LoadCall] = [:]
    /// Counts of calls that ended, kept for the report.
    private(set) var endedCalls = 0
    private var endedSent = 0, endedReceived = 0, endedAudio = 0

    func add(_ setup: CallSetup, tag: String? = nil) {
        let call = LoadCall(setup: setup, driver: self)
        slots[calls.count % Self.slotCount].append(call)
        calls.append(call)
        if let tag { tagged[tag] = call }
        try? loop.register(setup.socket.fd, call)
        call.sendCheck(nominate: true)
    }

    /// Ends the call Tandem ended; its counts stay in the totals.
    func end(tag: String) {
        guard let call = tagged.removeValue(forKey: tag) else { return }
        endedCalls += 1
        if measuring {
            endedSent += call.sentMeasured
            endedReceived += call.audioReceived
        }
        if measuring, call.echoes > 0 { endedAudio += 1 }
        call.close()
        calls.removeAll { $0 === call }
        for i in slots.indices { slots[i].removeAll { $0 === call } }
    }

    /// The gateway mode's figures since ``startMeasuring()``: RTP sent to and received from
    /// Tandem, calls with audio, calls ended.
    func gatewayReport() -> [String: Int] {
        let sent = endedSent + calls.reduce(0) { $0 + $1.sentMeasured }
        let received = endedReceived + calls.reduce(0) { $0 + $1.audioReceived }
        return ["calls_live": calls.count, "calls_with_audio": endedAudio + calls.filter { $0.echoes > 0 }.count, "calls_ended": endedCalls,
                "rtp_sent": sent, "rtp_received": received, "srtp_failures": calls.reduce(0) { $0 + $1.srtpFailures }]
    }

    var echoingCalls: Int { calls.filter { $0.echoes > 0 }.count }

    private func schedule() {
        loop.schedule(atNanoseconds: start + UInt64(tick + 1) * Self.tickNanoseconds) { [weak self] in
            guard let self else { return }
            self.tick += 1
            // Catch up on ticks a late wake-up missed, so every call keeps its 20 ms pace.
            let due = Int((DatapathLoop.monotonicNanoseconds() - self.start) / Self.tickNanoseconds)
            while true {
                for call in self.slots[self.tick % Self.slotCount] {
                    let now = DatapathLoop.monotonicNanoseconds()
                    call.timers(nowMilliseconds: Int64(now / 1_000_000))
                    if self.sending { call.sendFrame(now: now) }
                }
                if self.tick >= due { break }
                self.tick += 1
            }
            self.schedule()
        }
    }

    func startMeasuring() {
        for c in calls { c.resetCounts() }
        endedSent = 0
        endedReceived = 0
        endedAudio = 0
        endedCalls = 0
        latencies.removeAll(keepingCapacity: true)
        socketLatencies.removeAll(keepingCapacity: true)
        measuring = true
    }

    func stopSending() { sending = false }

    func record(latencyNanoseconds: UInt64, socketNanoseconds: Int64?) {
        guard measuring else { return }
        latencies.append(Double(latencyNanoseconds) / 1_000_000)
        if let socketNanoseconds { socketLatencies.append(Double(socketNanoseconds) / 1_000_000) }
    }

    func report(seconds: Double) -> [String: Any] {
        measuring = false
        let sent = calls.reduce(0) { $0 + $1.sentMeasured }
        let received = calls.reduce(0) { $0 + $1.receivedMeasured }
        let sorted = latencies.sorted()
        let socketSorted = socketLatencies.sorted()
        func pct(_ p: Double, _ sorted: [Double] = sorted) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return ["calls": calls.count, "codec": codec.rawValue, "seconds": seconds, "sent": sent, "received": received,
                "loss": sent > 0 ? max(0, Double(sent - received) / Double(sent)) : 0,
                "rtt_p50_ms": pct(0.5), "rtt_p99_ms": pct(0.99), "rtt_max_ms": sorted.last ?? 0,
                "socket_rtt_p50_ms": pct(0.5, socketSorted), "socket_rtt_p90_ms": pct(0.9, socketSorted), "socket_rtt_p99_ms": pct(0.99, socketSorted), "socket_rtt_p999_ms": pct(0.999, socketSorted), "socket_rtt_samples": socketSorted.count,
                "srtp_failures": calls.reduce(0) { $0 + $1.srtpFailures }]
    }

    func closeAll() {
        for c in calls { c.close() }
    }
}

/// One simulated browser.
final class LoadCall: ReadableHandler {
    let setup: CallSetup
    unowned let driver: Driver
    private var inbound: SRTPContext?
    private var outbound: SRTPContext?
    private var sequence = UInt16.random(in: 0...UInt16.max)
    private var timestamp: UInt32 = 0
    private var frameIndex = 0
    /// Send times by frame number (timestamp ÷ ticks per frame), a ring of 256: monotonic,
    /// and the wall clock read just before the send call (the kernel stamps arrivals with it).
    private var sendTimes = [UInt64](repeating: 0, count: 256)
    private var sendWallTimes = [Int64](repeating: 0, count: 256)
    private var buffer = [UInt8](repeating: 0, count: 2048)
    private var lastCheck: Int64 = 0
    private(set) var echoes = 0
    private(set) var sentMeasured = 0
    private(set) var receivedMeasured = 0
    /// Every RTP packet from the gateway since the counts were reset (the gateway mode: the
    /// far end's audio, not an echo).
    private(set) var audioReceived = 0
    private(set) var srtpFailures = 0
    /// Echoes seen, for sampling which ones are authenticated.
    private var verified = 0
    private var connected = false
    private let ticksPerFrame: UInt32

    init(setup: CallSetup, driver: Driver) {
        self.setup = setup
        self.driver = driver
        ticksPerFrame = setup.audio.codec == .opus ? 960 : 160
    }

    func resetCounts() {
        sentMeasured = 0
        receivedMeasured = 0
        audioReceived = 0
    }

    /// A Binding request as the controlling agent (RFC 8445 §7.2.2), nominating on the first.
    func sendCheck(nominate: Bool) {
        var m = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .request))
        m.attributes = [.text(.username, "\(setup.audio.remoteICE.usernameFragment):\(setup.local.ice.usernameFragment)"),
                        .uint32(.priority, 1_853_824_767), .uint64(.iceControlling, 42)]
        if nominate { m.attributes.append(.flag(.useCandidate)) }
        _ = setup.socket.send(m.encode(integrity: .sha1(key: Array(setup.audio.remoteICE.password.utf8)), fingerprint: true), to: setup.remote)
    }

    func timers(nowMilliseconds now: Int64) {
        if now - lastCheck >= 2000 {  // consent (RFC 7675 asks every ~5 s); also retries the first check
            lastCheck = now
            sendCheck(nominate: !connected)
        }
        if let t = setup.dtls.timeoutMilliseconds, t == 0 {
            setup.dtls.handleTimeout()
            flushDTLS()
        }
    }

    private func flushDTLS() {
        for d in setup.dtls.takeOutgoing() { _ = setup.socket.send(d, to: setup.remote) }
    }

    func readable() {
        let batch = driver.receiveBatch
        batch.drain(setup.socket, rounds: 4) { i in
            received(batch.mutablePayload(i), arrival: batch.arrivalNanoseconds(i))
            return true
        }
    }

    private func received(_ datagram: UnsafeMutableRawBufferPointer, arrival: Int64?) {
        let n = datagram.count
        guard n > 1 else { return }
        let first = datagram[0]
        if first < 4 {
            // A Binding response: ICE is up; the DTLS client starts.
            if !connected, setup.dtls.role == .client, case .handshaking = setup.dtls.state, setup.dtls.timeoutMilliseconds == nil {
                setup.dtls.start()
                flushDTLS()
            }
        } else if (20...63).contains(first) {
            _ = setup.dtls.receive(UnsafeRawBufferPointer(datagram))
            flushDTLS()
            if case .connected(let keys) = setup.dtls.state, !connected {
                inbound = try? SRTPContext(profile: keys.profile, keyAndSalt: keys.remote, direction: .inbound)
                outbound = try? SRTPContext(profile: keys.profile, keyAndSalt: keys.local, direction: .outbound)
                connected = true
            }
        } else if first >= 128, let inbound {
            let now = DatapathLoop.monotonicNanoseconds()
            if datagram[1] >= 192, datagram[1] <= 223 { return }  // RTCP
            guard n >= 12 else { srtpFailures += 1; return }
            // The RTP header travels in the clear (RFC 3711 §3.1): the timestamp is read as it
            // came, and every 16th packet is authenticated and decrypted, so the tool costs the
            // gateway's peers less than the gateway and can drive it past its own capacity.
            let ts = UInt32(bigEndian: datagram.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            verified &+= 1
            if verified % 16 == 1 {
                guard let length = try? inbound.unprotectRTP(datagram, length: n), length >= 12 else { srtpFailures += 1; return }
            }
            let frame = Int((ts / ticksPerFrame) % 256)
            let sent = sendTimes[frame]
            echoes += 1
            audioReceived += 1
            if sent > 0, now >= sent {
                sendTimes[frame] = 0
                receivedMeasured += 1
                let wallSent = sendWallTimes[frame]
                driver.record(latencyNanoseconds: now - sent, socketNanoseconds: arrival.flatMap { $0 >= wallSent ? $0 - wallSent : nil })
            }
        }
    }

    func sendFrame(now: UInt64) {
        guard connected, let outbound else { return }
        let payload = driver.frames[frameIndex % driver.frames.count]
        frameIndex += 1
        sequence &+= 1
        timestamp &+= ticksPerFrame
        let header = RTPHeader(marker: frameIndex == 1, payloadType: setup.audio.payloadType, sequenceNumber: sequence, timestamp: timestamp, ssrc: setup.local.ssrc)
        let packet = header.packet(payload: payload)
        let n: Int? = buffer.withUnsafeMutableBytes { b in
            packet.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: b[0..<packet.count]).copyMemory(from: $0) }
            return try? outbound.protectRTP(b, length: packet.count)
        }
        guard let n else { return }
        let frame = Int((timestamp / ticksPerFrame) % 256)
        sendTimes[frame] = now
        sentMeasured += 1
        sendWallTimes[frame] = Self.wallClockNanoseconds()
        _ = buffer.withUnsafeBytes { setup.socket.send(UnsafeRawBufferPointer(rebasing: $0[0..<n]), to: setup.remote) }
    }

    static func wallClockNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    func close() {
        setup.dtls.close()
        flushDTLS()
        driver.loop.deregister(setup.socket.fd)
        setup.socket.close()
    }
}
