import Datapath
import Foundation
import G711
import Logging
import Metrics
import NIOCore
import SDP
import SIP
import SIPUA

/// A browser session as the gateway sees it: an agent holding an extension, or a guest
/// that may call one service's number.
public struct BrowserSession: Sendable, Equatable {
    public var id: String
    public var `extension`: String?
    public var guest: Guest?
    /// When the session ends (its socket is closed then, its extension unregistered at once).
    public var expiresAt: Date?

    public struct Guest: Sendable, Equatable {
        /// The caller's number, put in From.
        public var from: String
        /// The service's number on the platform.
        public var number: String
        public var serviceKey: String
        public init(from: String, number: String, serviceKey: String) {
            self.from = from
            self.number = number
            self.serviceKey = serviceKey
        }
    }

    public init(id: String, extension: String?, guest: Guest? = nil, expiresAt: Date? = nil) {
        self.id = id
        self.extension = `extension`
        self.guest = guest
        self.expiresAt = expiresAt
    }
}

/// One call of the gateway, for `GET /api/v1/calls`.
public struct BridgedCallInfo: Sendable, Equatable {
    public var session: String
    public var call: String
    public var direction: String
    public var `extension`: String?
    public var remote: String
    public var phase: String
    public var held: Bool
    public var startedAt: Date
    public var media: CallSnapshot?
}

/// The back-to-back user agent: joins browser sessions (signalling frames in and out) to
/// SIP calls of their extensions and the media engine's bridges. Registration follows the
/// sessions: an extension is registered while a browser holds it and for a grace period
/// after the browser goes, unless every extension is to stay registered.
///
/// Runs on the SIP endpoint's event loop (it is the actor's executor), so SIP calls are
/// touched on their own loop; media calls are reached through the engine.
public actor CallController {
    public struct Configuration: Sendable {
        /// Seconds an extension stays registered after its browser disconnects.
        public var graceSeconds: Int = 30
        /// The heartbeat interval announced in `welcome` (s); three missed close the socket.
        public var heartbeatSeconds: Int = 20
        /// Register every extension of the database, browser or not.
        public var registerAll = false
        /// Codecs offered and preferred on the SIP side (Opus first: passed through untranscoded
        /// when the platform takes it).
        public var codecs: [SIPCodec] = [.pcmu, .pcma]
        /// The domain of request URIs built from dialled numbers.
        public var sipDomain: String = ""
        /// SRTP (SDES) on the SIP leg of new calls.
        public var srtpMode: SIPSRTPMode = .off
        /// The extension whose credentials answer the platform's challenges to guest calls
        /// (nil: guest calls go out with the caller's number only).
        public var guestAccount: String?
        /// DTMF from the browser (its RFC 4733 events) goes to the SIP leg as SIP INFO
        /// (`application/dtmf-relay`, RFC 6086) instead of RFC 4733 events in the RTP.
        public var dtmfByInfo = false
        /// A number answered inside Tandem by the echo service (the media comes straight
        /// back: a first call needs no platform); nil: none.
        public var echoNumber: String?
        /// How long an answered incoming call waits for the browser's leg to connect before
        /// the platform's INVITE is refused.
        public var mediaConnectTimeoutSeconds = 10
        public init() {}
    }

    final class Connection {
        let id: Int
        let session: BrowserSession
        private let sink: @Sendable (GatewayMessage?) -> Void
        var calls: [String: BridgedCall] = [:]
        var registration: String?
        var expiry: Scheduled<Void>?
        init(id: Int, session: BrowserSession, sink: @escaping @Sendable (GatewayMessage?) -> Void) {
            self.id = id
            self.session = session
            self.sink = sink
        }
        func send(_ message: GatewayMessage) { sink(message) }
        /// Tells the socket to close after what was sent.
        func close() { sink(nil) }
    }

    final class BridgedCall {
        var state: BridgedCallState
        var sip: SIPCall?
        /// The SIP leg's RTP socket (none for the echo).
        let socket: UDPSocket?
        var mediaID: String?
        var offer: MediaEngine.BrowserOffer?
        var sipAudio: SIPAudio?
        var local: SIPOfferAnswer.Local
        /// What our offers on the SIP leg carry (and its answers may pick).
        var codecs: [SIPCodec] = []
        /// The direction of our re-INVITE whose answer is awaited.
        var pendingReinvite: Direction?
        let remote: String
        let started = Date()
        init(state: BridgedCallState, socket: UDPSocket?, local: SIPOfferAnswer.Local, remote: String) {
            self.state = state
            self.socket = socket
            self.local = local
            self.remote = remote
        }
    }

    nonisolated let loop: any EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }

    /// The SIP side; nil when no platform is configured (then only the echo number answers).
    let manager: SIPCallManager?
    let agent: RegistrationAgent?
    let engine: MediaEngine
    private(set) var configuration: Configuration
    let logger: Logger
    private var connections: [Int: Connection] = [:]
    private var nextConnection = 0
    private var extensions: [String: SIPExtensionCredentials] = [:]
    /// Extensions kept registered after their browser left, until the timer fires.
    private var grace: [String: Scheduled<Void>] = [:]
    private var registered: Set<String> = []
    private var registrationPoll: RepeatedTask?
    private let bridged = Counter(label: "tandem_gateway_calls_total")

    /// With a SIP side, the actor runs on its endpoint's loop; without one, on `loop`.
    public init(manager: SIPCallManager?, agent: RegistrationAgent?, engine: MediaEngine, configuration: Configuration, logger: Logger,
                loop: (any EventLoop)? = nil) {
        guard let actorLoop = manager?.endpoint.loop ?? loop else { preconditionFailure("a CallController without SIP needs a loop") }
        self.loop = actorLoop
        self.manager = manager
        self.agent = agent
        self.engine = engine
        self.configuration = configuration
        self.logger = logger
    }

    /// Takes the calls coming in for the extensions, and starts following registration
    /// states. Call once, on the loop.
    public nonisolated func install() {
        loop.preconditionInEventLoop()
        manager?.onIncomingCall = { [unowned self] call in self.assumeIsolated { $0.incoming(call) } }
        assumeIsolated { controller in
            controller.registrationPoll = controller.loop.scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) { [unowned controller] _ in
                controller.assumeIsolated { $0.publishRegistrations() }
            }
        }
    }

    /// Whether new calls are refused (a restart is draining the calls in progress).
    public private(set) var draining = false

    /// Refuses new calls from now on (browsers get an error, the platform 503) while the
    /// calls in progress go on.
    public func startDraining() {
        draining = true
        logger.notice("Draining: new calls are refused", metadata: ["calls": "\(callCount)"])
    }

    /// Bridged calls in progress.
    public var callCount: Int { connections.values.reduce(0) { $0 + $1.calls.count } }

    /// Set once the process shuts down: no browser connects any more.
    private var closing = false

    /// Tells every browser `reason` and closes its socket (the SDK reconnects when Tandem is
    /// back); later connections are refused.
    public func closeAllConnections(code: String, reason: String) {
        closing = true
        for connection in Array(connections.values) {
            connection.send(.error(SignallingError(code, reason)))
            connection.close()
            disconnect(connection.id)
        }
    }

    /// Ends every call: BYE to the platform (503 to unanswered incoming calls), the browser told `reason`.
    public func endAllCalls(reason: String) {
        for connection in connections.values {
            for call in Array(connection.calls.values) { feed(.serviceEnding(reason: reason), call, connection) }
        }
    }

    /// The payload settings changed: new calls offer and accept `codecs` in this order with
    /// `srtpMode` (calls in progress keep theirs).
    public func setPayload(codecs: [SIPCodec], srtpMode: SIPSRTPMode) {
        configuration.codecs = codecs
        configuration.srtpMode = srtpMode
    }

    /// The platform's domain changed: new calls use it (calls in progress keep theirs).
    public func setSIPDomain(_ domain: String) {
        configuration.sipDomain = domain
        manager?.domain = domain
    }

    // MARK: registration

    /// The extensions of the database (their credentials); registered as the policy says.
    public func setExtensions(_ list: [SIPExtensionCredentials]) {
        extensions = Dictionary(list.map { ($0.user, $0) }, uniquingKeysWith: { a, _ in a })
        updateRegistrations()
    }

    private func updateRegistrations() {
        let wanted: Set<String>
        if configuration.registerAll {
            wanted = Set(extensions.keys)
        } else {
            wanted = Set(connections.values.compactMap(\.session.extension)).union(grace.keys).intersection(extensions.keys)
        }
        guard let agent, wanted != registered else { return }
        registered = wanted
        agent.update(wanted.sorted().compactMap { extensions[$0] })
    }

    private func publishRegistrations() {
        let states = agent?.extensionStates ?? [:]
        let failures = agent?.summary.failures ?? [:]
        for connection in connections.values {
            guard let ext = connection.session.extension else { continue }
            let state = states[ext] ?? "unregistered"
            guard state != connection.registration else { continue }
            connection.registration = state
            let reason = agent == nil ? "no SIP platform is configured" : state == "failed" ? failures[ext] : nil
            connection.send(.registration(state: state, reason: reason))
        }
    }

    /// Whether an extension is held by a connected browser.
    public func isConnected(_ ext: String) -> Bool {
        connections.values.contains { $0.session.extension == ext }
    }

    // MARK: connections

    /// A browser connected with `session`; `send` carries frames to it (nil: close the
    /// socket). Returns the id of the connection for ``receive(_:from:)`` and ``disconnect(_:)``.
    public func connect(_ session: BrowserSession, send: @escaping @Sendable (GatewayMessage?) -> Void) -> Int? {
        // Shutting down: the browser reconnects to the next process.
        guard !closing else { return nil }
        // One socket per session: a newer one replaces the older.
        for old in connections.values where old.session.id == session.id {
            old.send(.error(SignallingError("replaced", "another connection took this session")))
            old.close()
            disconnect(old.id)
        }
        nextConnection += 1
        let connection = Connection(id: nextConnection, session: session, sink: send)
        connections[connection.id] = connection
        if let ext = session.extension {
            grace.removeValue(forKey: ext)?.cancel()
        }
        if let expiry = session.expiresAt {
            let id = connection.id
            connection.expiry = loop.scheduleTask(in: .milliseconds(Int64(max(0, expiry.timeIntervalSinceNow) * 1000))) { [unowned self] in
                self.assumeIsolated { $0.expire(id) }
            }
        }
        send(.welcome(session: session.id, extension: session.extension, guest: session.guest != nil, heartbeat: configuration.heartbeatSeconds))
        updateRegistrations()
        publishRegistrations()
        logger.info("Browser connected", metadata: ["session": "\(session.id)", "extension": "\(session.extension ?? "guest")"])
        return connection.id
    }

    /// The session's lifetime is over: its calls end, the socket closes with a reason, the
    /// extension unregisters at once (it may be handed to another session now).
    private func expire(_ id: Int) {
        guard let connection = connections[id] else { return }
        connection.send(.error(SignallingError("session-ended", "the session expired")))
        connection.close()
        disconnect(id)
        if let ext = connection.session.extension { grace.removeValue(forKey: ext)?.cancel() }
        updateRegistrations()
    }

    /// The socket closed: its calls end, its extension stays registered for the grace period.
    public func disconnect(_ id: Int) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        connection.expiry?.cancel()
        for call in Array(connection.calls.values) { feed(.browserGone, call, connection) }
        if let ext = connection.session.extension, !isConnected(ext), extensions[ext] != nil, !configuration.registerAll {
            grace[ext]?.cancel()
            grace[ext] = loop.scheduleTask(in: .seconds(Int64(configuration.graceSeconds))) { [unowned self] in
                self.assumeIsolated { controller in
                    controller.grace[ext] = nil
                    controller.updateRegistrations()
                }
            }
        }
        logger.info("Browser disconnected", metadata: ["session": "\(connection.session.id)"])
    }

    /// A session was deleted or expired: its browser is told and disconnected, its extension unregistered at once.
    public func endSession(_ sessionID: String) {
        for connection in connections.values where connection.session.id == sessionID {
            connection.send(.error(SignallingError("session-ended", "the session was deleted")))
            connection.close()
            disconnect(connection.id)
            if let ext = connection.session.extension { grace.removeValue(forKey: ext)?.cancel() }
        }
        updateRegistrations()
    }

    /// A text frame from a browser.
    public func receive(_ text: String, from id: Int) async {
        guard let connection = connections[id] else { return }
        let message: BrowserMessage
        do throws(SignallingError) {
            message = try BrowserMessage.parse(text)
        } catch {
            connection.send(.error(error))
            return
        }
        switch message {
        case .ping(let time):
            connection.send(.pong(time: time))
        case .call(let callID, let to, let sdp):
            await placeCall(connection, callID: callID, to: to, sdp: sdp)
        case .answer(let callID, let sdp):
            await answerCall(connection, callID: callID, sdp: sdp)
        case .hangup(let callID, let code):
            guard let call = connection.calls[callID] else { return unknown(connection, callID) }
            feed(.browserHangup(code: code), call, connection)
        case .hold(let callID), .resume(let callID):
            guard let call = connection.calls[callID] else { return unknown(connection, callID) }
            if case .hold = message { feed(.hold, call, connection) } else { feed(.resume, call, connection) }
        case .dtmf(let callID, let digits):
            guard let call = connection.calls[callID], call.state.phase == .confirmed, call.sip != nil else { return unknown(connection, callID) }
            // RFC 4733 events travel in the media; this frame is the SIP INFO fallback.
            sendDTMFInfo(connection.id, callID, digits: digits)
        case .renegotiate(let callID, let sdp):
            guard let call = connection.calls[callID], let id = call.mediaID else { return unknown(connection, callID) }
            do {
                connection.send(.answer(call: callID, sdp: try await engine.renegotiate(callID: id, offer: sdp)))
            } catch {
                connection.send(.error(SignallingError("bad-sdp", "renegotiation refused: \(error)", call: callID)))
            }
        }
    }

    private func unknown(_ connection: Connection, _ callID: String) {
        connection.send(.error(SignallingError("unknown-call", "no call \(callID) in this session", call: callID)))
    }

    // MARK: outgoing

    private func placeCall(_ connection: Connection, callID: String, to: String?, sdp: String) async {
        guard connection.calls[callID] == nil else {
            return connection.send(.error(SignallingError("call-exists", "call \(callID) exists", call: callID)))
        }
        guard !draining else {
            return connection.send(.error(SignallingError("restarting", "Tandem is restarting: no new calls until it is back", call: callID)))
        }
        // A guest reaches its service's number only, one call at a time.
        if let guest = connection.session.guest {
            guard to == nil || to == guest.serviceKey || to == guest.number else {
                return connection.send(.error(SignallingError("not-allowed", "a guest session calls its service only", call: callID)))
            }
            guard connection.calls.isEmpty else {
                return connection.send(.error(SignallingError("not-allowed", "a guest session has one call at a time", call: callID)))
            }
        }
        if let echo = configuration.echoNumber, (connection.session.guest?.number ?? to) == echo {
            return await placeEchoCall(connection, callID: callID, sdp: sdp)
        }
        guard let manager, let agent else {
            return connection.send(.error(SignallingError("not-registered", "no SIP platform is configured; only \(configuration.echoNumber ?? "nothing") answers", call: callID)))
        }
        let user: String, target: String
        var caller: String?
        var headers: [(String, String)] = []
        if let guest = connection.session.guest {
            // Through the trunk with the caller's number as caller id (From and P-Asserted-Identity, RFC 3325).
            user = configuration.guestAccount ?? guest.from
            caller = guest.from
            target = guest.number
            headers.append(("P-Asserted-Identity", "<sip:\(guest.from)@\(configuration.sipDomain)>"))
        } else {
            guard let ext = connection.session.extension, let to, !to.isEmpty else {
                return connection.send(.error(SignallingError("bad-message", "call needs \"to\"", call: callID)))
            }
            guard agent.destination(for: ext) != nil else {
                return connection.send(.error(SignallingError("not-registered", "extension \(ext) is not registered", call: callID)))
            }
            user = ext
            target = to
        }
        let socket: UDPSocket
        do { socket = try engine.bindSIPSocket() } catch {
            return connection.send(.error(SignallingError("internal", "\(error)", call: callID)))
        }
        let call = BridgedCall(state: BridgedCallState(call: callID, direction: .outgoing), socket: socket,
                               local: SIPOfferAnswer.Local(address: engine.sipAddress, port: socket.localAddress.port, srtpMode: configuration.srtpMode), remote: target)
        connection.calls[callID] = call
        let connectionID = connection.id
        let started: MediaEngine.StartedCall
        let dtmf = dtmfRelay(connectionID, callID)
        do {
            started = try await engine.start(offer: sdp, sipCodecs: configuration.codecs, farEnd: { Self.sipLeg(socket, SIPAudio(law: .muLaw), dtmf) },
                                             onEnded: mediaEndedHandler(connectionID, callID))
        } catch {
            socket.close()
            connection.calls[callID] = nil
            return connection.send(.error(SignallingError("bad-sdp", "\(error)", call: callID)))
        }
        call.mediaID = started.id
        guard !call.state.isEnded, connections[connectionID] != nil else {
            await engine.end(callID: started.id)
            return
        }
        connection.send(.answer(call: callID, sdp: started.answer ?? ""))
        // The browser's Opus may go to any enabled codec (the bridge follows the answer); its G.711 only to the same law.
        call.codecs = started.codec == .opus ? configuration.codecs : [started.sipCodec]
        let offer = SIPOfferAnswer.offer(local: call.local, codecs: call.codecs, telephoneEvents: !configuration.dtmfByInfo)
        let uri = target.hasPrefix("sip:") || target.hasPrefix("sips:") ? target : "sip:\(target)@\(configuration.sipDomain)"
        guard let sip = manager.call(from: user, caller: caller, to: uri, body: Array(offer.serialized.utf8), headers: headers) else {
            feed(.mediaFailed(reason: "extension \(user) has no platform route"), call, connection)
            return
        }
        call.sip = sip
        bridged.increment()
        sip.onEvent = { [unowned self] event in self.assumeIsolated { $0.sipEvent(event, connectionID, callID) } }
    }

    /// A call to the echo number: the WebRTC leg's media comes straight back, no SIP leg.
    private func placeEchoCall(_ connection: Connection, callID: String, sdp: String) async {
        let call = BridgedCall(state: BridgedCallState(call: callID, direction: .outgoing), socket: nil,
                               local: SIPOfferAnswer.Local(address: engine.sipAddress, port: 0), remote: configuration.echoNumber ?? "echo")
        connection.calls[callID] = call
        let connectionID = connection.id
        do {
            let started = try await engine.start(offer: sdp, farEnd: { EchoFarEnd() }, onEnded: mediaEndedHandler(connectionID, callID))
            call.mediaID = started.id
            connection.send(.answer(call: callID, sdp: started.answer ?? ""))
            bridged.increment()
            feed(.sipAnswered, call, connection)
        } catch {
            connection.calls[callID] = nil
            connection.send(.error(SignallingError("bad-sdp", "\(error)", call: callID)))
        }
    }

    // MARK: incoming

    private func incoming(_ sip: SIPCall) {
        guard !draining else { return sip.reject(503, "Service Unavailable") }
        guard let connection = connections.values.first(where: { $0.session.extension == sip.user }) else {
            return sip.reject(480, "Temporarily Unavailable")
        }
        let socket: UDPSocket
        do { socket = try engine.bindSIPSocket() } catch { return sip.reject(503, "Service Unavailable") }
        let local = SIPOfferAnswer.Local(address: engine.sipAddress, port: socket.localAddress.port, srtpMode: configuration.srtpMode)
        let answer: SessionDescription, audio: SIPAudio
        do throws(SIPOfferAnswerError) {
            (answer, audio) = try SIPOfferAnswer.answer(text: String(decoding: sip.remoteBody ?? [], as: UTF8.self), local: local, preference: configuration.codecs,
                                                        telephoneEvents: !configuration.dtmfByInfo)
        } catch {
            socket.close()
            logger.info("Incoming call refused", metadata: ["extension": "\(sip.user)", "reason": "\(error)"])
            return sip.reject(488, "Not Acceptable Here")
        }
        let offer: MediaEngine.BrowserOffer
        do { offer = try engine.offer(sip: audio) } catch {
            socket.close()
            return sip.reject(503, "Service Unavailable")
        }
        let callID = "in-" + String(UInt64.random(in: 1...UInt64.max), radix: 36)
        let call = BridgedCall(state: BridgedCallState(call: callID, direction: .incoming), socket: socket, local: local, remote: sip.remoteURI)
        call.sip = sip
        call.offer = offer
        call.sipAudio = audio
        call.codecs = [audio.codec]
        sip.localBody = Array(answer.serialized.utf8)
        connection.calls[callID] = call
        bridged.increment()
        let connectionID = connection.id
        sip.onEvent = { [unowned self] event in self.assumeIsolated { $0.sipEvent(event, connectionID, callID) } }
        sip.ring()
        connection.send(.incoming(call: callID, from: Self.user(of: sip.remoteURI), display: nil, sdp: offer.sdp))
    }

    private func answerCall(_ connection: Connection, callID: String, sdp: String) async {
        guard let call = connection.calls[callID], call.state.direction == .incoming, let offer = call.offer, let audio = call.sipAudio,
              let socket = call.socket else {
            return unknown(connection, callID)
        }
        feed(.browserAnswered, call, connection)
        guard call.state.phase == .answering else { return }
        call.offer = nil
        let connectionID = connection.id
        // The bridge marks the browser's events with Tandem's payload type even when the SIP leg
        // has none: the RTP leg turns them into INFO then.
        var bridgeAudio = audio
        if configuration.dtmfByInfo { bridgeAudio.telephoneEventPayloadType = SIPOfferAnswer.telephoneEventPayloadType }
        let dtmf = dtmfRelay(connectionID, callID)
        do {
            // The platform gets its 200 once the browser's leg is connected (DTLS done), not
            // before: audio the caller sends after the answer then reaches the browser from
            // its first packet.
            let started = try await engine.accept(offer, answer: sdp, sip: bridgeAudio, farEnd: { Self.sipLeg(socket, audio, dtmf) },
                                                  onEnded: mediaEndedHandler(connectionID, callID),
                                                  onConnected: { [weak self] in Task { await self?.mediaConnected(connectionID, callID) } })
            call.mediaID = started.id
            if call.state.isEnded {
                await engine.end(callID: started.id)
            } else if call.state.phase == .answering {
                let seconds = configuration.mediaConnectTimeoutSeconds
                loop.scheduleTask(in: .seconds(Int64(seconds))) { [unowned self] in
                    self.assumeIsolated { $0.mediaConnectTimedOut(connectionID, callID, seconds: seconds) }
                }
            }
        } catch {
            connection.send(.error(SignallingError("bad-sdp", "\(error)", call: callID)))
            feed(.mediaFailed(reason: "answer refused: \(error)"), call, connection)
        }
    }

    // MARK: events

    private func sipEvent(_ event: SIPCall.Event, _ connectionID: Int, _ callID: String) {
        guard let connection = connections[connectionID], let call = connection.calls[callID] else { return }
        switch event {
        case .progress(let code, let body):
            let early = body.map { applyAnswer($0, call) == nil } ?? false
            feed(.sipProgress(code: code, earlyMedia: early), call, connection)
        case .answered(let body):
            if call.state.direction == .outgoing {
                if let problem = applyAnswer(body, call) {
                    feed(.mediaFailed(reason: "the platform's answer is not usable: \(problem)"), call, connection)
                    return
                }
                feed(.sipAnswered, call, connection)
            }
        case .updated(let body):
            remoteUpdate(body, call, connection)
        case .info(let message):
            if message.headers.first("Content-Type")?.lowercased().hasPrefix("application/dtmf-relay") == true,
               let digit = Self.dtmfRelayDigit(message.body) {
                connection.send(.dtmf(call: callID, digit: digit))
            }
        case .ended(let reason, let code):
            feed(.sipEnded(code: code, reason: reason), call, connection)
        }
    }

    /// The SIP leg's RTP, reporting the browser's DTMF to `dtmf` when it goes by INFO.
    static func sipLeg(_ socket: UDPSocket, _ audio: SIPAudio, _ dtmf: (@Sendable (String) -> Void)?) -> SIPRTPLeg {
        let leg = SIPRTPLeg(socket: socket, audio: audio)
        leg.onTelephoneEvent = dtmf
        return leg
    }

    /// With DTMF by INFO: a digit from the media loop, sent as an INFO in the call's dialog.
    private func dtmfRelay(_ connectionID: Int, _ callID: String) -> (@Sendable (String) -> Void)? {
        guard configuration.dtmfByInfo else { return nil }
        return { [weak self] digit in
            guard let self else { return }
            Task { await self.sendDTMFInfo(connectionID, callID, digits: digit) }
        }
    }

    private func sendDTMFInfo(_ connectionID: Int, _ callID: String, digits: String) {
        guard let call = connections[connectionID]?.calls[callID], call.state.phase == .confirmed, let sip = call.sip else { return }
        for digit in digits {
            sip.sendInfo(body: Array("Signal=\(digit)\r\nDuration=160\r\n".utf8), contentType: "application/dtmf-relay")
        }
    }

    /// The peer's SDP answer (or early-media description): its address and direction go to the RTP leg.
    /// Nil when taken, else why not.
    private func applyAnswer(_ body: [UInt8], _ call: BridgedCall) -> SIPOfferAnswerError? {
        guard !body.isEmpty else { return .noAudio }
        let ours: Direction = call.state.held ? .sendonly : .sendrecv
        do throws(SIPOfferAnswerError) {
            setSIPAudio(try SIPOfferAnswer.apply(answer: String(decoding: body, as: UTF8.self), offered: call.codecs, direction: ours, local: call.local), call)
            return nil
        } catch {
            return error
        }
    }

    private func setSIPAudio(_ audio: SIPAudio, _ call: BridgedCall) {
        call.sipAudio = audio
        guard let id = call.mediaID else { return }
        let engine = self.engine
        Task { await engine.updateSIP(of: id, audio) }
    }

    /// A re-INVITE/UPDATE from the peer (an offer: answered with what it allows), or the
    /// answer to our own re-INVITE.
    private func remoteUpdate(_ body: [UInt8], _ call: BridgedCall, _ connection: Connection) {
        guard let sip = call.sip else { return }
        let text = String(decoding: body, as: UTF8.self)
        let ours: Direction = call.state.held ? .sendonly : .sendrecv
        if let reinviting = call.pendingReinvite {
            call.pendingReinvite = nil
            if let audio = try? SIPOfferAnswer.apply(answer: text, offered: call.codecs, direction: reinviting, local: call.local) { setSIPAudio(audio, call) }
            return
        }
        call.local.sessionVersion += 1
        guard let (answer, audio) = try? SIPOfferAnswer.answer(text: text, local: call.local, preference: call.codecs, wanting: ours) else { return }
        sip.localBody = Array(answer.serialized.utf8)
        let wasHeld = call.sipAudio.map { !$0.direction.receives } ?? false
        setSIPAudio(audio, call)
        let remoteHold = !audio.direction.receives
        if remoteHold != wasHeld { connection.send(.held(call: call.state.call, local: call.state.held, remote: remoteHold)) }
    }

    /// What the media loop calls when a call's WebRTC leg ends: a hop to the controller.
    private func mediaEndedHandler(_ connectionID: Int, _ callID: String) -> @Sendable (String) -> Void {
        { [weak self] reason in
            guard let self else { return }
            Task { await self.mediaEnded(connectionID, callID, reason: reason) }
        }
    }

    /// The answered call's WebRTC leg connected: the SIP side is answered now.
    private func mediaConnected(_ connectionID: Int, _ callID: String) {
        guard let connection = connections[connectionID], let call = connection.calls[callID] else { return }
        feed(.mediaStarted, call, connection)
    }

    private func mediaConnectTimedOut(_ connectionID: Int, _ callID: String, seconds: Int) {
        guard let connection = connections[connectionID], let call = connection.calls[callID], call.state.phase == .answering else { return }
        feed(.mediaFailed(reason: "the browser's media did not connect within \(seconds) s"), call, connection)
    }

    private func mediaEnded(_ connectionID: Int, _ callID: String, reason: String) {
        guard let connection = connections[connectionID], let call = connection.calls[callID] else { return }
        call.mediaID = nil
        feed(.mediaEnded(reason: reason), call, connection)
    }

    /// Feeds the call's state machine and carries out its actions.
    @discardableResult
    private func feed(_ event: BridgedCallState.Event, _ call: BridgedCall, _ connection: Connection) -> [BridgedCallState.Action] {
        let actions = call.state.handle(event)
        for action in actions {
            switch action {
            case .toBrowser(let message): connection.send(message)
            case .hangUpSIP: call.sip?.hangUp()
            case .rejectSIP(let code, let reason): call.sip?.reject(code, reason)
            case .acceptSIP: call.sip?.accept(body: call.sip?.localBody ?? [])
            case .endMedia:
                if let offer = call.offer {
                    engine.discard(offer)
                    call.offer = nil
                }
                if let id = call.mediaID {
                    let engine = self.engine
                    Task { await engine.end(callID: id) }
                } else {
                    call.socket?.close()
                }
            case .reinviteSIP(let direction):
                call.local.sessionVersion += 1
                call.pendingReinvite = direction
                let offer = SIPOfferAnswer.offer(local: call.local, codecs: call.codecs, direction: direction, telephoneEvents: call.sipAudio?.telephoneEventPayloadType != nil && !configuration.dtmfByInfo)
                call.sip?.update(body: Array(offer.serialized.utf8))
            }
        }
        if call.state.isEnded {
            connection.calls[call.state.call] = nil
            logger.info("Bridged call ended", metadata: ["call": "\(call.state.call)", "event": "\(event)"])
        }
        return actions
    }

    // MARK: reading

    /// The extensions with a bridged call in progress.
    public func extensionsInCall() -> Set<String> {
        Set(connections.values.filter { !$0.calls.isEmpty }.compactMap(\.session.extension))
    }

    /// Every bridged call with its media statistics.
    public func calls() async -> [BridgedCallInfo] {
        var out: [BridgedCallInfo] = []
        for connection in connections.values {
            for call in connection.calls.values {
                var media: CallSnapshot?
                if let id = call.mediaID { media = await engine.snapshot(of: id) }
                out.append(BridgedCallInfo(session: connection.session.id, call: call.state.call, direction: call.state.direction.rawValue,
                                           extension: connection.session.extension, remote: call.remote, phase: call.state.phase.rawValue,
                                           held: call.state.held, startedAt: call.started, media: media))
            }
        }
        return out
    }

    /// The user part of a SIP URI in a From/To value.
    static func user(of uri: String) -> String {
        guard let parsed = SIPURI(uri) else { return uri }
        return parsed.user ?? parsed.host
    }

    /// The digit of an application/dtmf-relay body (`Signal=5`).
    static func dtmfRelayDigit(_ body: [UInt8]) -> String? {
        for line in String(decoding: body.prefix(1024), as: UTF8.self).split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0].lowercased() == "signal", let d = parts[1].first, BrowserMessage.dtmfDigits.contains(d) {
                return String(d).uppercased()
            }
        }
        return nil
    }
}
