import Datapath
import Glibc
import G711
import Media
import Opus
import SDP
import WebRTC

/// The calls of one media loop, and the loop's 20 ms tick (DTLS timers, consent, the
/// jitter buffers' gap release, RTCP reports every 5 s), which runs only while the loop has
/// calls: an idle gateway does not wake. Lives on its loop.
final class MediaLoopCore {
    let loop: DatapathLoop
    let metrics: MediaMetrics
    var calls: [String: MediaCall] = [:]
    private var ticks = 0
    static let tickMilliseconds = 20
    /// Lowers the Opus complexity of this thread's calls when it nears a full core.
    var governor: ComplexityGovernor
    private var lastSample: (wall: Int64, cpu: Int64)?
    /// The loop's port for every leg, when the engine runs in shared-port mode.
    let sharedPort: SharedUDPPort?
    /// Where legs with sockets of their own receive (one thread, so one batch serves them all).
    let receiveBatch = ReceiveBatch(capacity: 8, maximumDatagramSize: SharedUDPPort.maximumDatagramSize)

    /// Whether the governor may change the complexity (`media.opus-governor`).
    let governs: Bool

    /// The Opus encoder settings of new bridges toward G.711 (`media.opus-*`).
    let opus: OpusEncoder.Configuration

    init(loop: DatapathLoop, metrics: MediaMetrics, opus: OpusEncoder.Configuration, governs: Bool, sharedPort: SharedUDPPort?) {
        self.loop = loop
        self.metrics = metrics
        self.opus = opus
        self.governor = ComplexityGovernor(configured: opus.complexity)
        self.governs = governs
        self.sharedPort = sharedPort
    }

    /// This thread's CPU time and the monotonic clock, ns.
    private static func sample() -> (wall: Int64, cpu: Int64) {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return (Int64(DatapathLoop.monotonicNanoseconds()), Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }

    /// The busy share of this thread since `last` (updated to now).
    private static func busyShare(since last: inout (wall: Int64, cpu: Int64)?) -> Double? {
        let now = sample()
        defer { last = now }
        guard let before = last, now.wall > before.wall else { return nil }
        return Double(now.cpu - before.cpu) / Double(now.wall - before.wall)
    }

    /// Once a second: this thread's busy share, and the governor's decision.
    private func govern() {
        guard let utilization = Self.busyShare(since: &lastSample) else { return }
        metrics.utilization.record(utilization)
        if governs, let complexity = governor.update(utilization: utilization) { apply(complexity) }
    }

    /// The thread's clocks at the previous tick, to tell a tick made late by this thread's
    /// own work from one the core was not given for.
    private var lastTickSample: (wall: Int64, cpu: Int64)?

    private func apply(_ complexity: Int32) {
        for call in calls.values { call.bridge.encoder?.complexity = complexity }
        metrics.complexity.record(Int(complexity))
    }

    /// When the next tick is due (monotonic ns).
    private var nextTick: UInt64 = 0
    /// When the governor last acted on a late tick (ms).
    private var lastBehind: Int64 = 0

    /// Whether the tick is scheduled.
    private(set) var isTicking = false

    /// Starts the tick unless it runs already (a call was added).
    private func startTicking() {
        guard !isTicking else { return }
        isTicking = true
        nextTick = DatapathLoop.monotonicNanoseconds() + UInt64(Self.tickMilliseconds) * 1_000_000
        scheduleTick()
    }

    private func scheduleTick() {
        loop.schedule(atNanoseconds: nextTick) { [weak self] in
            guard let self else { return }
            let late = DatapathLoop.monotonicNanoseconds() - self.nextTick
            self.tick(lateNanoseconds: late)
            // The last call is gone: stop, with the counts handed over; the next call's first
            // samples start afresh rather than measure the idle time.
            if self.calls.isEmpty {
                self.flushCounters()
                self.lastSample = nil
                self.lastTickSample = nil
                self.isTicking = false
                return
            }
            self.nextTick += UInt64(Self.tickMilliseconds) * 1_000_000
            // Behind by more than a tick: skip ahead rather than fire a burst of catch-up ticks.
            if late > UInt64(Self.tickMilliseconds) * 1_000_000 { self.nextTick = DatapathLoop.monotonicNanoseconds() + UInt64(Self.tickMilliseconds) * 1_000_000 }
            self.scheduleTick()
        }
    }

    func tick(lateNanoseconds late: UInt64 = 0) {
        ticks += 1
        let now = DatapathLoop.monotonicMilliseconds()
        let busy = Self.busyShare(since: &lastTickSample)
        // A tick half a frame late after a busy interval means packets are waiting: shed
        // encoder work now (at most every 200 ms, so one step can take effect before the next).
        if late > UInt64(Self.tickMilliseconds) * 500_000, governs, now - lastBehind >= 200, let busy, let complexity = governor.behind(busyShare: busy) {
            lastBehind = now
            apply(complexity)
        }
        // Each call reports every 5 s in its own tick of the period, so reports do not pile
        // into one tick; counters reach the shared metrics once per tick, summed.
        let slot = ticks % Self.reportTicks
        for call in calls.values {
            call.tick(now: now, sendReports: call.reportSlot == slot)
            pending.add(call.takeCounterDeltas())
        }
        if ticks % (1000 / Self.tickMilliseconds) == 0 {
            flushCounters()
            govern()
        }
    }

    /// Ticks in the RTCP report interval (RFC 3550 §6.2; 5 s).
    static let reportTicks = 5000 / tickMilliseconds
    /// Counter increments gathered since the metrics were last updated.
    fileprivate(set) var pending = WebRTCLeg.Counters()

    /// Hands the gathered counts to the shared metrics (once a second, and when a call ends).
    func flushCounters() {
        if pending.rtpIn > 0 { metrics.rtpIn.increment(by: pending.rtpIn) }
        if pending.rtpOut > 0 { metrics.rtpOut.increment(by: pending.rtpOut) }
        if pending.srtpRefused > 0 { metrics.srtpRefused.increment(by: pending.srtpRefused) }
        pending = WebRTCLeg.Counters()
    }

    func startCall(id: String, loopIndex: Int, socket: UDPSocket?, audio: NegotiatedAudio, sip: SIPAudio, local: LocalMediaParameters,
                   identity: DTLSIdentity, configuration: MediaConfiguration, farEnd: any FarEnd, onEnded: (@Sendable (String) -> Void)?,
                   onConnected: (@Sendable () -> Void)? = nil, onRelease: @escaping () -> Void) throws {
        let localSSRC = local.ssrc
        var ice = ICELiteAgent(local: local.ice, remote: audio.remoteICE)
        ice.consentTimeout = Int64(configuration.consentTimeoutSeconds) * 1000
        let dtls = try DTLSTransport(identity: identity, role: audio.dtlsRole, expectedFingerprints: audio.remoteFingerprints)
        let transport: WebRTCLeg.Transport
        if let socket {
            transport = .socket(socket, receiveBatch)
        } else if let sharedPort {
            transport = .shared(sharedPort)
        } else {
            throw MediaError("no socket and no shared port for the leg")
        }
        let leg = WebRTCLeg(loop: loop, transport: transport, ice: ice, dtls: dtls)
        let browserSide = BridgeSide(audioPayloadType: audio.payloadType, telephoneEventPayloadType: audio.telephoneEventPayloadType, clockRate: audio.codec.clockRate,
                                     telephoneEventClockRate: audio.telephoneEventClockRate, ssrc: localSSRC)
        let sipSide = BridgeSide(audioPayloadType: sip.payloadType, telephoneEventPayloadType: sip.telephoneEventPayloadType, clockRate: sip.codec.clockRate,
                                 telephoneEventClockRate: 8000, ssrc: UInt32.random(in: 1...UInt32.max))
        let bridge = try makeBridge(browserCodec: audio.codec, browser: browserSide, sip: sipSide, sipCodec: sip.codec)
        let call = MediaCall(id: id, leg: leg, bridge: bridge, farEnd: farEnd, codec: audio.codec, core: self, onEnded: onEnded, onRelease: onRelease)
        call.onConnected = onConnected
        call.local = local
        call.local.codecs = [audio.codec]
        call.remoteICE = audio.remoteICE
        do {
            try leg.start()
            try farEnd.attach(loop: loop, receiveBatch: receiveBatch) { [unowned call] packet in call.fromSIP(packet) }
        } catch {
            leg.close()
            farEnd.close()
            throw error
        }
        calls[id] = call
        startTicking()
        metrics.legsStarted.increment()
        metrics.legs.record(metrics.liveLegs.add(1, ordering: .relaxed).newValue)
    }

    /// The bridge between a browser codec and a SIP codec: the same codec on both sides is
    /// passed through (only headers are rewritten), Opus toward G.711 is transcoded.
    func makeBridge(browserCodec: AudioCodec, browser: BridgeSide, sip: BridgeSide, sipCodec: SIPCodec) throws -> AudioBridge {
        switch (browserCodec, sipCodec.law) {
        case (.opus, nil):
            return try AudioBridge(mode: .passThrough, browser: browser, sip: sip)
        case (.opus, let law?):
            var opus = self.opus
            opus.complexity = governor.current  // a new call starts where the governor stands
            return try AudioBridge(mode: .transcode, browser: browser, sip: sip, law: law, opus: opus)
        case (.pcmu, .muLaw?), (.pcma, .aLaw?):
            return try AudioBridge(mode: .passThrough, browser: browser, sip: sip)
        default:
            throw MediaError("the browser's \(browserCodec.rawValue) cannot be bridged to \(sipCodec.rawValue) on the SIP leg")
        }
    }

    func remove(_ call: MediaCall, reason: String) {
        guard calls.removeValue(forKey: call.id) != nil else { return }
        metrics.released[reason]?.increment()
        metrics.legs.record(metrics.liveLegs.subtract(1, ordering: .relaxed).newValue)
    }

    func closeAll(reason: String) {
        for call in Array(calls.values) { call.end(reason: reason) }
    }
}

/// One call of the media engine: the browser's WebRTC leg, the audio bridge, and the far end.
/// ``end(reason:)`` releases all of it: the leg's socket, DTLS and SRTP contexts, the
/// codec states, the far end.
final class MediaCall {
    let id: String
    let leg: WebRTCLeg
    private(set) var bridge: AudioBridge
    let farEnd: any FarEnd
    let codec: AudioCodec
    unowned let core: MediaLoopCore
    private var onRelease: (() -> Void)?
    private var onEnded: (@Sendable (String) -> Void)?
    /// Told once, when the WebRTC leg first connects (DTLS done, SRTP keys in place).
    var onConnected: (@Sendable () -> Void)?
    private var ended = false
    private var reported = WebRTCLeg.Counters()

    init(id: String, leg: WebRTCLeg, bridge: AudioBridge, farEnd: any FarEnd, codec: AudioCodec, core: MediaLoopCore,
         onEnded: (@Sendable (String) -> Void)?, onRelease: @escaping () -> Void) {
        self.onEnded = onEnded
        self.id = id
        self.leg = leg
        self.bridge = bridge
        self.farEnd = farEnd
        self.codec = codec
        self.core = core
        self.onRelease = onRelease
        leg.onRTP = { [unowned self] packet in self.fromBrowser(UnsafeRawBufferPointer(packet)) }
        leg.onRTCP = { [unowned self] packet in self.rtcpFromBrowser(packet) }
        leg.onStateChange = { [unowned self] state in
            switch state {
            case .consentExpired: self.end(reason: "consent_expired")
            case .failed: self.end(reason: "dtls_failed")
            case .closed: self.end(reason: "peer_closed")
            case .connected:
                if let connected = self.onConnected {
                    self.onConnected = nil
                    connected()
                }
            case .connecting: break
            }
        }
    }

    private func fromBrowser(_ packet: UnsafeRawBufferPointer) {
        let now = DatapathLoop.monotonicMilliseconds()
        if packet.count >= 12 { lastBrowserSSRC = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) }
        bridge.fromBrowser(packet, now: now) { toFarEnd($0, now: now) }
    }

    /// A packet for the far end; what it sends back crosses to the browser in the same pass
    /// (the bridge's buffer is protected in place and queued), with no copy in between.
    private func toFarEnd(_ packet: UnsafeRawBufferPointer, now: Int64) {
        farEnd.receive(packet) { back in
            bridge.fromSIP(back, now: now) { buffer, length in leg.sendRTP(buffer, length: length) }
        }
    }

    /// A packet that arrived from the far end on its own (the SIP leg's socket).
    func fromSIP(_ packet: UnsafeRawBufferPointer) {
        guard !ended else { return }
        bridge.fromSIP(packet, now: DatapathLoop.monotonicMilliseconds()) { buffer, length in leg.sendRTP(buffer, length: length) }
    }

    private func rtcpFromBrowser(_ packet: UnsafeRawBufferPointer) {
        guard let packets = try? RTCPPacket.parseCompound(packet) else { return }
        let now = DatapathLoop.monotonicMilliseconds()
        let arrival = NTPTime.compact(NTPTime.now())
        for p in packets {
            let blocks: [ReportBlock]
            switch p {
            case .senderReport(_, let info, let reports):
                bridge.browserSenderReport(info, now: now)
                blocks = reports
            case .receiverReport(_, let reports):
                blocks = reports
            default:
                blocks = []
            }
            // The browser's report on our stream gives the round trip (RFC 3550 §6.4.1).
            for block in blocks where block.ssrc == bridge.browser.ssrc {
                if let rtt = NTPTime.roundTripMilliseconds(block: block, arrivalCompactNTP: arrival) { roundTripMilliseconds = rtt }
                bridge.browserReportedLoss(fractionLost: block.fractionLost)
            }
        }
    }

    func tick(now: Int64, sendReports: Bool) {
        leg.tick(now: now)
        guard !ended else { return }
        bridge.poll(now: now) { toFarEnd($0, now: now) }
        if sendReports, leg.maySend { sendReport(now: now) }
    }

    /// SR about what we sent to the browser, with a report block about what it sent us (RFC 3550 §6.4).
    private func sendReport(now: Int64) {
        let sent = bridge.sentToBrowser
        let block = bridge.reportBlockForBrowser(ssrc: lastBrowserSSRC, now: now)
        let ntp = NTPTime.now()
        let report: [RTCPPacket] = [
            .senderReport(ssrc: bridge.browser.ssrc, sender: SenderInfo(ntpTimestamp: ntp, rtpTimestamp: sent.lastTimestamp, packetCount: sent.packets, octetCount: sent.octets),
                          reports: bridge.fromBrowserStatistics.packets > 0 ? [block] : []),
            .sourceDescription([SDESChunk(ssrc: bridge.browser.ssrc, items: [.cname("tandem")])]),
        ]
        leg.sendRTCP(RTCPPacket.serializeCompound(report))
    }

    /// The SIP leg of a call whose browser sends Opus now speaks `codec` at `payloadType`: a
    /// new bridge when that is not what the bridge does (its SSRCs, payload types toward the
    /// browser and telephone-events are kept; reception statistics start afresh).
    func bridgeSIP(codec sipCodec: SIPCodec, payloadType: UInt8) throws {
        // From the browser's Opus, a pass-through bridge goes to Opus, a transcoding one to its law.
        let bridged: SIPCodec = bridge.mode == .transcode ? SIPCodec(bridge.law) : .opus
        guard sipCodec != bridged || payloadType != bridge.sip.audioPayloadType else { return }
        var side = bridge.sip
        side.audioPayloadType = payloadType
        side.clockRate = sipCodec.clockRate
        bridge = try core.makeBridge(browserCodec: codec, browser: bridge.browser, sip: side, sipCodec: sipCodec)
    }

    /// Our side of the negotiation (for answers to the browser's later offers).
    var local: LocalMediaParameters!
    var remoteICE: ICECredentials?

    /// Answers a new offer of the browser: an ICE restart gets new credentials of ours.
    func renegotiate(_ offer: SessionDescription) throws -> String {
        var parameters = local!
        parameters.sessionVersion += 1
        let offered = offer.media.first { $0.media == "audio" }.flatMap { offer.iceCredentials(of: $0) }
        let restart = offered.map { $0.usernameFragment != remoteICE?.usernameFragment || $0.password != remoteICE?.password } ?? false
        if restart { parameters.ice = .random() }
        let (answer, audio) = try WebRTCOfferAnswer.answer(offer, local: parameters)
        guard audio.codec == codec else { throw MediaError("the new offer lacks the call's codec \(codec.rawValue)") }
        if restart { leg.restartICE(local: parameters.ice, remote: audio.remoteICE) }
        remoteICE = audio.remoteICE
        local = parameters
        return answer.serialized
    }

    /// The browser's SSRC, learned from its RTP.
    var lastBrowserSSRC: UInt32 = 0
    /// The last round trip to the browser, from its reports on our stream.
    var roundTripMilliseconds: Double?

    /// The tick of the report period in which this call sends its RTCP report.
    let reportSlot = Int.random(in: 0..<MediaLoopCore.reportTicks)

    /// What the leg counted since the last call (RTP in and out, refused SRTP).
    func takeCounterDeltas() -> WebRTCLeg.Counters {
        let c = leg.counters
        var d = WebRTCLeg.Counters()
        d.rtpIn = c.rtpIn - reported.rtpIn
        d.rtpOut = c.rtpOut - reported.rtpOut
        d.srtpRefused = c.srtpRefused - reported.srtpRefused
        reported = c
        return d
    }

    var snapshot: CallSnapshot {
        let stats = bridge.fromBrowserStatistics
        let stateText: String
        switch leg.state {
        case .connecting: stateText = "connecting"
        case .connected(let p): stateText = "connected (\(p.openSSLName))"
        case .failed(let why): stateText = "failed: \(why)"
        case .consentExpired: stateText = "consent expired"
        case .closed: stateText = "closed"
        }
        return CallSnapshot(id: id, codec: codec.rawValue, mode: bridge.mode == .transcode ? "transcode" : "pass-through", state: stateText,
                            counters: leg.counters, jitterMilliseconds: stats.jitterMilliseconds, lossFraction: stats.lossFraction,
                            roundTripMilliseconds: roundTripMilliseconds,
                            concealedFrames: bridge.concealment.concealed, recoveredFrames: bridge.concealment.recovered)
    }

    func end(reason: String) {
        guard !ended else { return }
        ended = true
        core.pending.add(takeCounterDeltas())
        core.flushCounters()
        leg.close()
        farEnd.close()
        core.remove(self, reason: reason)
        onRelease?()
        onRelease = nil
        onEnded?(reason)
        onEnded = nil
    }
}

extension WebRTCLeg.Counters {
    /// Adds the media counts of `other` (RTP in and out, refused SRTP).
    mutating func add(_ other: WebRTCLeg.Counters) {
        rtpIn += other.rtpIn
        rtpOut += other.rtpOut
        srtpRefused += other.srtpRefused
    }
}
