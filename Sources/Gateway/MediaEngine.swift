import Datapath
import G711
import Glibc
import Logging
import Media
import Metrics
import Opus
import SDP
import STUN
import Synchronization
import WebRTC

/// Settings of the media engine (the `media.*` keys).
public struct MediaConfiguration: Sendable {
    /// Addresses the media sockets bind to (the first family-matching one is used).
    public var bindAddress: String = "127.0.0.1"
    /// Addresses advertised as host candidates and in c= (a public or 1:1 NAT address); empty: the bind address.
    public var advertisedAddresses: [String] = []
    public var portRange: ClosedRange<UInt16> = 40000...49999
    /// Ports of the SIP legs' RTP sockets (one per call).
    public var sipPortRange: ClosedRange<UInt16> = 30000...39999
    /// The address put in the SIP legs' SDP (c=); nil: the first advertised (or the bind) address.
    public var sipAddress: String?
    /// One UDP port for every leg of a media thread (thread i serves `sharedPort + i`)
    /// instead of a port per leg from ``portRange``; 0: a port per leg.
    public var sharedPort: UInt16 = 0
    /// Media threads (0: one per core).
    public var threads: Int = 0
    /// Receive moderation of the media threads (``DatapathLoop/batchWindowMicroseconds``); 0: off.
    public var batchWindowMicroseconds: Int = 0
    public var opus = OpusEncoder.Configuration(bitrate: 24000, complexity: 5, expectedLossPercent: 0)
    /// Lower the Opus complexity under load (``ComplexityGovernor``); false keeps `opus.complexity`.
    public var governor = true
    /// The G.711 law used on the SIP side when the browser sends Opus.
    public var sipLaw: G711Law = .pcmu
    /// Answer a browser that offers G.711 with G.711 (pass-through) even when it prefers Opus.
    public var preferPassThrough = false
    /// Seconds without a valid ICE check before a leg ends (RFC 7675 says 30).
    public var consentTimeoutSeconds: Int = 30

    public enum G711Law: String, Sendable { case pcmu, pcma }

    public init() {}
}

/// Why a browser's offer was not taken.
public struct MediaError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The media engine: datapath threads each running many calls, the DTLS identity whose
/// fingerprint every answer carries, the port range, and the metrics of legs. A call lives
/// on one loop for its whole life (no locks on the media path); the engine picks the loop
/// with the fewest calls. Knows nothing of SIP: a call's far end is given to it.
public final class MediaEngine: Sendable {
    public let configuration: MediaConfiguration
    public let identity: DTLSIdentity
    let logger: Logger
    let loops: [DatapathLoop]
    let cores: [LoopBound<MediaLoopCore>]
    let load: Mutex<[Int]>
    let nextPort: Mutex<UInt16>
    let nextSIPPort: Mutex<UInt16>
    /// The loop of each live call, so an operation on one call goes straight to its loop.
    let callLoops = Mutex<[String: Int]>([:])
    let metrics = MediaMetrics()

    public init(configuration: MediaConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        identity = try DTLSIdentity(commonName: "tandem")
        let count = configuration.threads > 0 ? configuration.threads : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var loops: [DatapathLoop] = []
        for i in 0..<max(1, count) {
            loops.append(try DatapathLoop(name: "media-\(i)", batchWindowMicroseconds: configuration.batchWindowMicroseconds))
        }
        self.loops = loops
        load = Mutex(Array(repeating: 0, count: loops.count))
        nextPort = Mutex(configuration.portRange.lowerBound)
        nextSIPPort = Mutex(configuration.sipPortRange.lowerBound)
        let metrics = self.metrics
        // The shared ports are bound and registered before the loops' threads start.
        var shared: [SharedUDPPort?] = Array(repeating: nil, count: loops.count)
        if configuration.sharedPort > 0 {
            guard let ip = IPAddress(configuration.bindAddress) else { throw MediaError("media.bind-address \(configuration.bindAddress) is not an IP address") }
            guard Int(configuration.sharedPort) + loops.count - 1 <= Int(UInt16.max) else {
                throw MediaError("media.shared-port \(configuration.sharedPort) + \(loops.count) threads passes port 65535")
            }
            for (i, loop) in loops.enumerated() {
                let port = configuration.sharedPort + UInt16(i)
                do {
                    shared[i] = try SharedUDPPort(loop: loop, address: DatagramAddress(TransportAddress(ip: ip, port: port)))
                } catch {
                    throw MediaError("media.shared-port: cannot bind \(configuration.bindAddress):\(port): \(error)")
                }
            }
        }
        metrics.complexity.record(Int(configuration.opus.complexity))
        cores = loops.indices.map { i in
            LoopBound(MediaLoopCore(loop: loops[i], metrics: metrics, opus: configuration.opus, governs: configuration.governor, sharedPort: shared[i]), loop: loops[i])
        }
    }

    private let started = Mutex(false)

    /// Starts the media threads (once; also done by the first call).
    public func start() {
        let first = started.withLock { s in
            defer { s = true }
            return !s
        }
        guard first else { return }
        for core in cores { core.loop.start() }
    }

    /// The SHA-256 fingerprint every answer advertises.
    public var fingerprint: Fingerprint { Fingerprint(hashFunction: "sha-256", bytes: identity.fingerprintSHA256) }

    /// Socket buffer of a leg's own port: about a second of audio and video bursts (the kernel
    /// doubles it); a deeper queue only turns an overload into seconds of delay.
    static let legSocketBuffer = 128 << 10

    /// Binds a UDP socket on the next free port of the WebRTC range.
    func bindSocket() throws -> UDPSocket {
        try bindSocket(in: configuration.portRange, next: nextPort)
    }

    /// Binds the RTP socket of a SIP leg on the next free port of ``MediaConfiguration/sipPortRange``.
    public func bindSIPSocket() throws -> UDPSocket {
        try bindSocket(in: configuration.sipPortRange, next: nextSIPPort)
    }

    /// The address of the SIP legs' SDP.
    public var sipAddress: String {
        configuration.sipAddress ?? configuration.advertisedAddresses.first ?? configuration.bindAddress
    }

    private func bindSocket(in range: ClosedRange<UInt16>, next: borrowing Mutex<UInt16>) throws -> UDPSocket {
        guard let ip = IPAddress(configuration.bindAddress) else { throw MediaError("media.bind-address \(configuration.bindAddress) is not an IP address") }
        let span = Int(range.upperBound) - Int(range.lowerBound) + 1
        for _ in 0..<span {
            let port = next.withLock { p -> UInt16 in
                let current = p
                p = p >= range.upperBound ? range.lowerBound : p + 1
                return current
            }
            let attempt = Result { () throws(SocketError) -> UDPSocket in
                try UDPSocket(binding: DatagramAddress(TransportAddress(ip: ip, port: port)), options: .init(receiveBufferSize: Self.legSocketBuffer, sendBufferSize: Self.legSocketBuffer))
            }
            switch attempt {
            case .success(let socket): return socket
            case .failure(let error): if !error.isAddressInUse { throw error }
            }
        }
        throw MediaError("no free media port in \(range)")
    }

    /// The loop with the fewest calls, counted as taken.
    func pickLoop() -> Int {
        load.withLock { load in
            let i = load.indices.min { load[$0] < load[$1] } ?? 0
            load[i] += 1
            return i
        }
    }

    func released(loop index: Int) {
        load.withLock { $0[index] -= 1 }
    }

    /// A WebRTC leg's loop, socket (or shared port) and local parameters, held from before
    /// the SDP is built until its call starts or is given up.
    struct PreparedLeg: Sendable {
        let index: Int
        let socket: UDPSocket?
        let parameters: LocalMediaParameters
    }

    /// Takes the least loaded loop and a port on it.
    private func prepare() throws -> PreparedLeg {
        start()
        let index = pickLoop()
        // A socket of the leg's own, unless the loop serves every leg on its shared port.
        let socket: UDPSocket?
        let port: UInt16
        if configuration.sharedPort > 0 {
            socket = nil
            port = configuration.sharedPort + UInt16(index)
        } else {
            do {
                let s = try bindSocket()
                socket = s
                port = s.localAddress.port
            } catch {
                released(loop: index)
                throw error
            }
        }
        var parameters = LocalMediaParameters(ice: .random(), fingerprintSHA256: identity.fingerprintSHA256,
                                              addresses: configuration.advertisedAddresses.isEmpty ? [configuration.bindAddress] : configuration.advertisedAddresses,
                                              port: port)
        parameters.preferPassThrough = configuration.preferPassThrough
        return PreparedLeg(index: index, socket: socket, parameters: parameters)
    }

    private func discard(_ prepared: PreparedLeg) {
        prepared.socket?.close()
        released(loop: prepared.index)
    }

    /// The SIP side of a call's bridge: a browser's G.711 passes through in its own law; the
    /// browser's Opus goes to the SIP leg's codec (untranscoded when that is Opus, else
    /// transcoded), or to the configured law while the SIP leg has not said.
    func sipSide(for codec: AudioCodec, sip: SIPAudio?) -> SIPAudio {
        var side = sip ?? SIPAudio(law: configuration.sipLaw == .pcmu ? .muLaw : .aLaw)
        switch codec {
        case .pcmu, .pcma:
            let own: SIPCodec = codec == .pcmu ? .pcmu : .pcma
            if side.codec != own {
                side.codec = own
                side.payloadType = own.offeredPayloadType
            }
        case .opus:
            break
        }
        return side
    }

    /// Starts the call of a prepared leg on its loop.
    private func start(_ prepared: PreparedLeg, audio: NegotiatedAudio, sip: SIPAudio?, farEnd: @escaping @Sendable () -> any FarEnd,
                       onEnded: (@Sendable (String) -> Void)?, onConnected: (@Sendable () -> Void)? = nil) async throws -> String {
        let id = CallID.make()
        let configuration = self.configuration
        let identity = self.identity
        let core = cores[prepared.index]
        let index = prepared.index
        let sipSide = self.sipSide(for: audio.codec, sip: sip)
        // Known before the call can end (its release forgets it).
        callLoops.withLock { $0[id] = index }
        do {
            try await core.loop.submit {
                try core.value.startCall(id: id, loopIndex: index, socket: prepared.socket, audio: audio, sip: sipSide, local: prepared.parameters,
                                         identity: identity, configuration: configuration, farEnd: farEnd(),
                                         onEnded: onEnded, onConnected: onConnected) { [weak self] in
                    self?.callLoops.withLock { _ = $0.removeValue(forKey: id) }
                    self?.released(loop: index)
                }
            }
        } catch {
            callLoops.withLock { _ = $0.removeValue(forKey: id) }
            discard(prepared)
            throw error
        }
        logger.info("media call started", metadata: ["call": "\(id)", "codec": "\(audio.codec.rawValue)", "port": "\(prepared.parameters.port)"])
        return id
    }

    /// A call whose WebRTC leg runs: its id, the browser's codec and the codec of its SIP side.
    public struct StartedCall: Sendable {
        public let id: String
        public let codec: AudioCodec
        public let sipCodec: SIPCodec
        /// The SDP answer for the browser (when the browser offered).
        public let answer: String?
    }

    /// Answers a browser's offer with a call whose far end is `farEnd`, created on a media
    /// loop; returns the answer SDP and the call's id. `onEnded` hears the reason when the
    /// call ends (on the media loop).
    public func answer(offer text: String, farEnd: @escaping @Sendable () -> any FarEnd) async throws -> (answer: String, callID: String) {
        let call = try await start(offer: text, farEnd: farEnd)
        return (call.answer ?? "", call.id)
    }

    /// Answers a browser's offer (see ``answer(offer:farEnd:)``) with the details of the started call.
    /// `sipCodecs`: the codecs the SIP leg may use, preferred first (nil: G.711, the configured
    /// law for Opus); a browser's G.711 outside them is not passed through, and the bridge
    /// starts toward the first (``updateSIP(of:_:)`` follows the SIP leg's answer).
    public func start(offer text: String, sipCodecs: [SIPCodec]? = nil, farEnd: @escaping @Sendable () -> any FarEnd,
                      onEnded: (@Sendable (String) -> Void)? = nil) async throws -> StartedCall {
        let offer: SessionDescription
        do { offer = try SessionDescription(parsing: text) } catch { throw MediaError("offer: \(error)") }
        var prepared = try prepare()
        let sip = sipCodecs?.first.map { SIPAudio(codec: $0) }
        if let sipCodecs, !sipCodecs.isEmpty {
            var parameters = prepared.parameters
            parameters.codecs = [.opus] + sipCodecs.compactMap { $0.law.map { $0 == .muLaw ? .pcmu : .pcma } }
            if sipCodecs.first == .opus { parameters.opusParameters = Self.passThroughOpusParameters }
            prepared = PreparedLeg(index: prepared.index, socket: prepared.socket, parameters: parameters)
        }
        let answer: SessionDescription, audio: NegotiatedAudio
        do {
            (answer, audio) = try WebRTCOfferAnswer.answer(offer, local: prepared.parameters)
        } catch {
            discard(prepared)
            throw MediaError("offer: \(error)")
        }
        let id = try await start(prepared, audio: audio, sip: sip, farEnd: farEnd, onEnded: onEnded)
        return StartedCall(id: id, codec: audio.codec, sipCodec: sipSide(for: audio.codec, sip: sip).codec, answer: answer.serialized)
    }

    /// An offer toward a browser for a call that came from SIP: the leg's loop and port are
    /// held until ``accept(_:answer:sip:farEnd:onEnded:)`` or ``discard(_:)``.
    public struct BrowserOffer: Sendable {
        public let sdp: String
        let description: SessionDescription
        let prepared: PreparedLeg
    }

    /// The browser's Opus parameters when the SIP leg may take Opus untranscoded: in-band FEC,
    /// and no narrowband limit (the far end is not 8 kHz G.711 then).
    static let passThroughOpusParameters = "minptime=10;useinbandfec=1"

    /// Offers Opus to a browser: alone when the SIP leg speaks Opus (passed through), else
    /// with the SIP leg's law for pass-through (first when `media.prefer-pass-through`).
    public func offer(sip: SIPAudio) throws -> BrowserOffer {
        var prepared = try prepare()
        var parameters = prepared.parameters
        switch sip.codec {
        case .opus:
            parameters.codecs = [.opus]
            parameters.opusParameters = Self.passThroughOpusParameters
        case .pcmu, .pcma:
            let g711: AudioCodec = sip.codec == .pcmu ? .pcmu : .pcma
            parameters.codecs = configuration.preferPassThrough ? [g711, .opus] : [.opus, g711]
        }
        prepared = PreparedLeg(index: prepared.index, socket: prepared.socket, parameters: parameters)
        let description = WebRTCOfferAnswer.offer(local: parameters)
        return BrowserOffer(sdp: description.serialized, description: description, prepared: prepared)
    }

    /// Starts the call of an offer with the browser's answer.
    public func accept(_ offer: BrowserOffer, answer text: String, sip: SIPAudio, farEnd: @escaping @Sendable () -> any FarEnd,
                       onEnded: (@Sendable (String) -> Void)? = nil, onConnected: (@Sendable () -> Void)? = nil) async throws -> StartedCall {
        let audio: NegotiatedAudio
        do {
            audio = try WebRTCOfferAnswer.apply(answer: try SessionDescription(parsing: text), to: offer.description)
        } catch {
            discard(offer.prepared)
            throw MediaError("answer: \(error)")
        }
        let id = try await start(offer.prepared, audio: audio, sip: sip, farEnd: farEnd, onEnded: onEnded, onConnected: onConnected)
        return StartedCall(id: id, codec: audio.codec, sipCodec: sipSide(for: audio.codec, sip: sip).codec, answer: nil)
    }

    /// Gives up an offer the browser did not answer.
    public func discard(_ offer: BrowserOffer) { discard(offer.prepared) }

    /// Runs `body` with call `callID` on its loop; nil when there is no such call.
    private func onCall<T: Sendable>(_ callID: String, _ body: @escaping @Sendable (MediaCall) throws -> T) async throws -> T? {
        guard let index = callLoops.withLock({ $0[callID] }) else { return nil }
        let core = cores[index]
        return try await core.loop.submit { try core.value.calls[callID].map(body) }
    }

    /// The SIP leg's description changed (its answer, early media, a re-INVITE): the RTP leg
    /// takes the new address, direction and keys, and the bridge follows its codec (Opus
    /// passes through; a change between Opus and G.711 switches transcoding on or off).
    /// False: no such call.
    @discardableResult
    public func updateSIP(of callID: String, _ audio: SIPAudio) async -> Bool {
        let found = try? await onCall(callID) { call -> Bool in
            (call.farEnd as? SIPRTPLeg)?.update(audio)
            if call.codec == .opus { try call.bridgeSIP(codec: audio.codec, payloadType: audio.payloadType) }
            return true
        }
        return found == true
    }

    /// A new offer from the browser of a running call (RFC 8829 §5.2; an ICE restart when its
    /// ufrag changed): answered with the call's parameters, new ICE credentials of ours when
    /// the browser restarts ICE, the same codec and DTLS association.
    public func renegotiate(callID: String, offer text: String) async throws -> String {
        let offer: SessionDescription
        do { offer = try SessionDescription(parsing: text) } catch { throw MediaError("offer: \(error)") }
        guard let answer = try await onCall(callID, { try $0.renegotiate(offer) }) else { throw MediaError("no call \(callID)") }
        return answer
    }

    /// Ends a call (its `onEnded` hears "closed").
    public func end(callID: String, reason: String = "closed") async {
        _ = try? await onCall(callID) { $0.end(reason: reason) }
    }

    /// The snapshot of one call.
    public func snapshot(of callID: String) async -> CallSnapshot? {
        (try? await onCall(callID) { $0.snapshot }) ?? nil
    }

    /// Ends every call and stops the loops.
    public func shutdown() async {
        guard started.withLock({ $0 }) else { return }
        for core in cores {
            try? await core.loop.submit { core.value.closeAll(reason: "shutdown") }
            await core.loop.stop()
        }
    }

    /// Calls now, summed over loops.
    public func activeCalls() async -> Int {
        var n = 0
        for core in cores { n += (try? await core.loop.submit { core.value.calls.count }) ?? 0 }
        return n
    }

    /// A snapshot of every call, for the API and tests.
    public func callSnapshots() async -> [CallSnapshot] {
        var out: [CallSnapshot] = []
        for core in cores { out += (try? await core.loop.submit { core.value.calls.values.map(\.snapshot) }) ?? [] }
        return out
    }
}

enum CallID {
    static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(rng.next() as UInt32, radix: 16) }.joined()
    }
}

/// What sits at the G.711 end of a call: the SIP leg's RTP (``SIPRTPLeg``) or the echo service.
public protocol FarEnd: AnyObject {
    /// Called once on the call's loop before media flows: `toBrowser` carries RTP packets
    /// that arrive on their own (from a socket) into the bridge; `receiveBatch` is the loop's
    /// (for reads on the loop's thread, between its wake-ups).
    func attach(loop: DatapathLoop, receiveBatch: ReceiveBatch, toBrowser: @escaping (UnsafeRawBufferPointer) -> Void) throws
    /// A G.711 RTP packet from the bridge (valid during the call only); `send` carries RTP
    /// packets back into the bridge at once.
    func receive(_ packet: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) -> Void)
    func close()
}

extension FarEnd {
    public func attach(loop: DatapathLoop, receiveBatch: ReceiveBatch, toBrowser: @escaping (UnsafeRawBufferPointer) -> Void) throws {}
}

/// The in-process echo far end: every G.711 RTP packet (and telephone-event) goes straight back.
public final class EchoFarEnd: FarEnd {
    public private(set) var echoed = 0
    public init() {}
    public func receive(_ packet: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) -> Void) {
        echoed += 1
        send(packet)
    }
    public func close() {}
}

/// A read-only view of one call.
public struct CallSnapshot: Sendable, Equatable {
    public var id: String
    public var codec: String
    public var mode: String
    public var state: String
    public var counters: WebRTCLeg.Counters
    public var jitterMilliseconds: Double
    public var lossFraction: Double
    /// From the browser's receiver reports (LSR/DLSR), once it sent one.
    public var roundTripMilliseconds: Double?
    public var concealedFrames: Int
    public var recoveredFrames: Int
}

/// Metrics of the media engine.
final class MediaMetrics: Sendable {
    let legs = Gauge(label: "tandem_media_legs")
    let legsStarted = Counter(label: "tandem_media_legs_started_total")
    let rtpIn = Counter(label: "tandem_media_rtp_packets_total", dimensions: [("direction", "in")])
    let rtpOut = Counter(label: "tandem_media_rtp_packets_total", dimensions: [("direction", "out")])
    let srtpRefused = Counter(label: "tandem_media_srtp_refused_total")
    /// Busy share of a media thread over the last second (the governor's input).
    let utilization = Gauge(label: "tandem_media_thread_utilization")
    /// The Opus complexity the governor set last.
    let complexity = Gauge(label: "tandem_media_opus_complexity")
    let released: [String: Counter]
    let liveLegs = Atomic<Int>(0)
    static let releaseReasons = ["consent_expired", "dtls_failed", "closed", "shutdown", "peer_closed"]

    init() {
        released = Dictionary(uniqueKeysWithValues: Self.releaseReasons.map { ($0, Counter(label: "tandem_media_legs_released_total", dimensions: [("reason", $0)])) })
    }
}
