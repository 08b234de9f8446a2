import Crypto
import Logging
import Metrics
import NIOCore
import SIP
import Synchronization

/// The platform (PBX or SIP trunk) the extensions register with: a primary and an optional
/// secondary registrar/proxy, already resolved to addresses, and the domain of the
/// addresses-of-record.
public struct SIPPlatform: Sendable {
    public var primary: SIPDestination
    public var secondary: SIPDestination?
    /// The host part of each address-of-record and of REGISTER's Request-URI (`sip:<domain>`).
    public var domain: String
    /// Seconds asked for in REGISTER (floor 300).
    public var registrationExpires: Int
    /// Seconds between OPTIONS keep-alives to each side (0 = none).
    public var keepAliveInterval: Int
    /// How long a keep-alive may go unanswered before the side counts as unreachable (ms).
    public var keepAliveTimeoutMilliseconds: Int64
    /// REGISTERs started per second when many extensions begin at once.
    public var registrationsPerSecond: Int
    /// Whether each Contact carries `+sip.instance` and `reg-id` (RFC 5626 §4.2): a registrar
    /// that supports outbound then replaces this node's binding instead of adding one after a
    /// restart; others ignore the parameters.
    public var instanceIDs: Bool

    public init(primary: SIPDestination, secondary: SIPDestination? = nil, domain: String, registrationExpires: Int = 600,
                keepAliveInterval: Int = 30, keepAliveTimeoutMilliseconds: Int64 = 4000, registrationsPerSecond: Int = 200, instanceIDs: Bool = true) {
        self.primary = primary
        self.secondary = secondary
        self.domain = domain
        self.registrationExpires = registrationExpires
        self.keepAliveInterval = keepAliveInterval
        self.keepAliveTimeoutMilliseconds = keepAliveTimeoutMilliseconds
        self.registrationsPerSecond = registrationsPerSecond
        self.instanceIDs = instanceIDs
    }

    public func destination(_ side: PlatformSide) -> SIPDestination? { side == .primary ? primary : secondary }
}

/// One extension's digest credentials (RFC 8760): the user part of its address-of-record,
/// the digest username and password, and the realm they belong to (empty: any).
public struct SIPExtensionCredentials: Hashable, Sendable {
    public var user: String
    public var username: String
    public var password: String
    public var realm: String

    public init(user: String, username: String, password: String, realm: String = "") {
        self.user = user
        self.username = username
        self.password = password
        self.realm = realm
    }
}

/// Where each extension stands, counted.
public struct RegistrationSummary: Hashable, Sendable {
    public var registered: [PlatformSide: Int] = [:]
    public var registering = 0
    public var failed = 0
    public var unregistered = 0
    /// Failure reasons by extension (user part).
    public var failures: [String: String] = [:]

    public var registeredCount: Int { registered.values.reduce(0, +) }
}

/// Registers every extension with the platform and keeps it registered (RFC 3261 §10.2):
/// one ``RegistrationClient`` per extension, refreshed before expiry, with failover between
/// the primary and the secondary paced by ``FailoverBackoff``; OPTIONS keep-alives to both
/// sides say which is reachable (``isPlatformReachable`` feeds `/readyz`), a side that stops
/// answering moves its extensions to the other at once, and when the primary answers again
/// the extensions on the secondary move back, spread over 0…N/10 s.
///
/// Runs on the endpoint's loop.
public final class RegistrationAgent: @unchecked Sendable {
    public let endpoint: SIPEndpoint
    /// The platform the extensions register with now; read and changed (``reconfigure(_:)``) on the loop.
    public private(set) var platform: SIPPlatform
    let logger: Logger
    private var loop: any EventLoop { endpoint.loop }

    private enum Status: String {
        case unregistered, registering, registered, failed
    }

    private struct Extension {
        var credentials: SIPExtensionCredentials
        var client: RegistrationClient
        var side: PlatformSide
        var backoff: FailoverBackoff
        var status: Status = .unregistered
        var timer: Scheduled<Void>?
        /// Bumped with each new attempt, so a late answer of an older one is ignored.
        var generation = 0
        var released = false
    }

    private var extensions: [String: Extension] = [:]
    /// Extensions by status and side, kept as they change (publishing must not walk them all).
    private var counts: [Status: Int] = [:]
    private var registeredBySide: [PlatformSide: Int] = [:]
    private var failures: [String: String] = [:]
    private let gauges: [(Status, Gauge)] = [Status.unregistered, .registering, .registered, .failed].map {
        ($0, Gauge(label: "tandem_sip_registrations", dimensions: [("state", $0.rawValue)]))
    }
    private var reachable: [PlatformSide: Bool] = [:]
    private var keepAliveTimer: RepeatedTask?
    private var generator = SystemRandomNumberGenerator()
    private let snapshot = Mutex<(summary: RegistrationSummary, reachable: [PlatformSide: Bool])>((RegistrationSummary(), [:]))
    /// Each extension's state by user part, for readers on other threads.
    private let states = Mutex<[String: String]>([:])
    /// `platform`, for readers on other threads.
    private let shared: Mutex<SIPPlatform>

    public init(endpoint: SIPEndpoint, platform: SIPPlatform, logger: Logger) {
        self.endpoint = endpoint
        self.platform = platform
        self.shared = Mutex(platform)
        self.logger = logger
    }

    // MARK: what others read (any thread)

    /// Whether either side answered its last keep-alive (or, with keep-alives off, whether any
    /// extension is registered).
    public var isPlatformReachable: Bool {
        let keepAlives = currentPlatform.keepAliveInterval > 0
        return snapshot.withLock { s in
            keepAlives ? s.reachable.values.contains(true) : s.summary.registeredCount > 0
        }
    }

    public var summary: RegistrationSummary { snapshot.withLock { $0.summary } }
    /// `unregistered`, `registering`, `registered` or `failed` for each extension.
    public var extensionStates: [String: String] { states.withLock { $0 } }
    public var reachability: [PlatformSide: Bool] { snapshot.withLock { $0.reachable } }
    /// The platform in use (any thread).
    public var currentPlatform: SIPPlatform { shared.withLock { $0 } }

    // MARK: control (on the loop)

    /// The platform side an extension registers on (nil: not one of ours). On the loop.
    public func destination(for user: String) -> SIPDestination? {
        loop.preconditionInEventLoop()
        return extensions[user].flatMap { platform.destination($0.side) }
    }

    /// Starts the keep-alives and registers `extensions` (paced at `registrationsPerSecond`).
    public func start(_ credentials: [SIPExtensionCredentials]) {
        loop.preconditionInEventLoop()
        startKeepAlives()
        update(credentials)
    }

    /// Moves every extension to `new` (the administrator changed the platform): each binding
    /// on the old platform is removed (REGISTER with `Expires: 0`, answering its challenge,
    /// RFC 3261 §10.2.2), and each extension registers on the new primary, paced at
    /// `registrationsPerSecond`; keep-alives restart with the new interval and reachability
    /// is learnt again. Calls in progress keep their dialogs' routes.
    public func reconfigure(_ new: SIPPlatform) {
        loop.preconditionInEventLoop()
        let old = platform
        keepAliveTimer?.cancel()
        keepAliveTimer = nil
        for (user, ext) in extensions {
            ext.timer?.cancel()
            if ext.released {
                forget(user)  // its unregister is under way to the old platform
            } else if ext.status == .registered, let destination = old.destination(ext.side) {
                unbind(ext.client, at: destination)
            }
        }
        platform = new
        shared.withLock { $0 = new }
        reachable = [:]
        let users = extensions.keys.sorted()
        let perSecond = Int64(max(1, new.registrationsPerSecond))
        for (index, user) in users.enumerated() {
            guard let ext = extensions[user] else { continue }
            tally(ext, -1)
            failures[user] = nil
            enroll(ext.credentials, extensionsOnNode: users.count, afterMilliseconds: Int64(index) * 1000 / perSecond, generation: ext.generation + 1)
        }
        logger.notice("SIP platform changed; extensions register again", metadata: [
            "primary": "\(new.primary)", "secondary": "\(new.secondary.map(\.description) ?? "none")", "domain": "\(new.domain)",
            "extensions": "\(users.count)"])
        startKeepAlives()
        publish()
    }

    private func startKeepAlives() {
        guard platform.keepAliveInterval > 0 else { return }
        keepAliveTimer = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(Int64(platform.keepAliveInterval))) { [weak self] _ in
            self?.sendKeepAlives()
        }
    }

    /// Makes the registered set `credentials`: new extensions register, removed ones unregister,
    /// changed credentials register again.
    public func update(_ credentials: [SIPExtensionCredentials]) {
        loop.preconditionInEventLoop()
        let wanted = Dictionary(credentials.map { ($0.user, $0) }, uniquingKeysWith: { first, _ in first })
        for (user, ext) in extensions where wanted[user] == nil || wanted[user] != ext.credentials {
            release(user)
        }
        let perSecond = Int64(max(1, platform.registrationsPerSecond))
        var started: Int64 = 0
        for item in credentials where extensions[item.user] == nil {
            enroll(item, extensionsOnNode: max(wanted.count, 1), afterMilliseconds: started * 1000 / perSecond)
            started += 1
        }
        publish()
    }

    /// Starts registering `credentials` afresh, after `delay` ms, on the side its new back-off
    /// starts with. `generation` carries an extension's count on, so that answers to its
    /// previous client are ignored.
    private func enroll(_ credentials: SIPExtensionCredentials, extensionsOnNode n: Int, afterMilliseconds delay: Int64, generation: Int = 0) {
        let user = credentials.user
        var ext = Extension(credentials: credentials, client: makeClient(credentials), side: .primary, backoff: FailoverBackoff(extensionsOnNode: n))
        let first = ext.backoff.start()
        ext.side = first.side
        ext.generation = generation
        extensions[user] = ext
        tally(ext, +1)
        schedule(user, afterMilliseconds: delay) { $0.attempt(user, on: first.side) }
    }

    /// Unregisters every extension (waiting up to `timeout` for the answers) and stops.
    public func stop(timeout: TimeAmount = .seconds(2)) async {
        let pending: Int = (try? await loop.submit {
            self.keepAliveTimer?.cancel()
            self.keepAliveTimer = nil
            for user in Array(self.extensions.keys) { self.release(user) }
            return self.extensions.count
        }.get()) ?? 0
        guard pending > 0 else { return }
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            let left = (try? await loop.submit { self.extensions.count }.get()) ?? 0
            if left == 0 { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: registering

    private func makeClient(_ credentials: SIPExtensionCredentials) -> RegistrationClient {
        let transport = platform.primary.transport
        let configuration = RegistrationConfiguration(
            addressOfRecord: "sip:\(credentials.user)@\(platform.domain)",
            registrar: "sip:\(platform.domain)",
            contact: endpoint.contactURI(user: credentials.user, transport: transport),
            via: "\(transport.viaToken) \(endpoint.sentBy(transport))",
            expires: platform.registrationExpires,
            instanceID: platform.instanceIDs ? "<urn:uuid:\(InstanceID.uuid(for: "\(endpoint.sentBy(transport))/\(credentials.user)"))>" : nil,
            registrationID: platform.instanceIDs ? 1 : nil,
            username: credentials.username,
            password: credentials.password,
            realm: credentials.realm.isEmpty ? nil : credentials.realm)
        return RegistrationClient(configuration, callID: SIPEndpoint.newCallID(), fromTag: SIPEndpoint.newTag())
    }

    /// Registers `user` on `side` (a new registration when the side changed).
    private func attempt(_ user: String, on side: PlatformSide) {
        guard var ext = extensions[user], !ext.released else { return }
        guard platform.destination(side) != nil else {
            // No secondary: the primary again, on the back-off's pacing.
            let next = ext.backoff.failed(on: side, using: &generator)
            extensions[user] = ext
            reschedule(user, next, reason: "no \(side.rawValue) configured")
            return
        }
        if side != ext.side {
            tally(ext, -1)
            ext.client = makeClient(ext.credentials)
            ext.side = side
            tally(ext, +1)
        }
        ext.generation += 1
        setStatus(&ext, .registering)
        let events = ext.client.register(using: &generator)
        extensions[user] = ext
        handle(user, events)
    }

    private func handle(_ user: String, _ events: [RegistrationClient.Event]) {
        for event in events {
            guard var ext = extensions[user] else { return }
            switch event {
            case .send(let request):
                guard let destination = platform.destination(ext.side) else { return }
                let generation = ext.generation
                let released = ext.released
                endpoint.send(request, to: destination) { [weak self] result in
                    self?.completed(user, generation: generation, released: released, result)
                }
            case .registered(let expires, let refreshAfter):
                let wasRegistered = ext.status == .registered
                setStatus(&ext, .registered)
                ext.backoff.succeeded(on: ext.side)
                extensions[user] = ext
                if !wasRegistered {
                    logger.info("Registered", metadata: ["extension": "\(user)", "side": "\(ext.side.rawValue)", "expires": "\(expires)"])
                }
                schedule(user, afterMilliseconds: Int64(refreshAfter) * 1000) { $0.attempt(user, on: $0.extensions[user]?.side ?? .primary) }
                if ext.side == .secondary, reachable[.primary] == true, platform.secondary != nil {
                    scheduleMoveBack(user)
                }
            case .unregistered:
                if ext.released { forget(user) }
            case .failed(let reason, let statusCode, let retryAfter):
                if ext.released {
                    forget(user)
                    return
                }
                let lost = ext.status == .registered
                setStatus(&ext, .failed)
                let side = ext.side
                let next = lost ? ext.backoff.lost(side) : ext.backoff.failed(on: side, retryAfterSeconds: retryAfter, using: &generator)
                extensions[user] = ext
                failures[user] = statusCode.map { "\($0) \(reason)" } ?? reason
                reschedule(user, next, reason: statusCode.map { "\($0) \(reason)" } ?? reason)
            }
        }
        publish()
    }

    private func completed(_ user: String, generation: Int, released: Bool, _ result: SIPClientEvent) {
        guard var ext = extensions[user], ext.generation == generation || released else { return }
        let events: [RegistrationClient.Event]
        switch result {
        case .response(let response):
            guard let code = response.statusCode, code >= 200 else { return }
            events = ext.client.receive(response, using: &generator)
        case .timeout(let reason):
            logger.debug("REGISTER timed out", metadata: ["extension": "\(user)", "reason": "\(reason)"])
            events = ext.client.timedOut()
        }
        extensions[user] = ext
        handle(user, events)
    }

    private func reschedule(_ user: String, _ next: FailoverBackoff.Attempt, reason: String) {
        guard let ext = extensions[user] else { return }
        logger.warning(
            "Registration failed; next attempt",
            metadata: [
                "extension": "\(user)", "side": "\(ext.side.rawValue)", "reason": "\(reason)",
                "next-side": "\(next.side.rawValue)", "back-off-ms": "\(next.delayMilliseconds)", "failures": "\(ext.backoff.failures)",
            ])
        if next.side != ext.side { Counter(label: "tandem_sip_failovers_total", dimensions: [("to", next.side.rawValue)]).increment() }
        schedule(user, afterMilliseconds: next.delayMilliseconds) { $0.attempt(user, on: next.side) }
    }

    /// The primary answers again: `user`, registered on the secondary, moves back after a
    /// random 0…N/10 s.
    private func scheduleMoveBack(_ user: String) {
        let spread = Int64(max(extensions.count, 1)) * 100
        let delay = Int64.random(in: 0...spread, using: &generator)
        schedule(user, afterMilliseconds: delay) { agent in
            guard let ext = agent.extensions[user], ext.side == .secondary, ext.status == .registered, agent.reachable[.primary] == true else { return }
            agent.logger.info("Primary reachable again; moving back", metadata: ["extension": "\(user)"])
            Counter(label: "tandem_sip_failovers_total", dimensions: [("to", "primary")]).increment()
            if let destination = agent.platform.destination(ext.side) { agent.unbind(ext.client, at: destination) }
            agent.attempt(user, on: .primary)
        }
    }

    /// Removes the binding `client` holds at `destination`, on its own: the extension goes on
    /// with a new client. A digest challenge is answered; other outcomes are only logged.
    private func unbind(_ client: RegistrationClient, at destination: SIPDestination) {
        var client = client
        sendUnbinding(client.unregister(using: &generator), client, to: destination)
    }

    private func sendUnbinding(_ events: [RegistrationClient.Event], _ client: RegistrationClient, to destination: SIPDestination) {
        for event in events {
            switch event {
            case .send(let request):
                endpoint.send(request, to: destination) { [weak self] result in
                    guard let self, case .response(let response) = result, let code = response.statusCode, code >= 200 else { return }
                    var client = client
                    let next = client.receive(response, using: &self.generator)
                    self.sendUnbinding(next, client, to: destination)
                }
            case .failed(let reason, let statusCode, _):
                logger.debug("Removing an old binding failed", metadata: ["to": "\(destination)", "reason": "\(statusCode.map { "\($0) " } ?? "")\(reason)"])
            case .registered, .unregistered:
                break
            }
        }
    }

    /// Unregisters `user` (when registered) and forgets it once answered.
    private func release(_ user: String) {
        guard var ext = extensions[user] else { return }
        ext.timer?.cancel()
        ext.timer = nil
        ext.released = true
        ext.generation += 1
        guard ext.status == .registered else {
            extensions[user] = ext
            forget(user)
            return
        }
        let events = ext.client.unregister(using: &generator)
        extensions[user] = ext
        handle(user, events)
    }

    private func forget(_ user: String) {
        guard let ext = extensions.removeValue(forKey: user) else { return }
        ext.timer?.cancel()
        tally(ext, -1)
        failures[user] = nil
        publish()
    }

    private func schedule(_ user: String, afterMilliseconds milliseconds: Int64, _ body: @escaping @Sendable (RegistrationAgent) -> Void) {
        guard var ext = extensions[user] else { return }
        ext.timer?.cancel()
        ext.timer = loop.scheduleTask(in: .milliseconds(max(0, milliseconds))) { [weak self] in
            guard let self else { return }
            self.extensions[user]?.timer = nil
            body(self)
        }
        extensions[user] = ext
    }

    // MARK: keep-alive

    private func sendKeepAlives() {
        for side in [PlatformSide.primary, .secondary] {
            guard let destination = platform.destination(side) else { continue }
            var request = SIPMessage(startLine: .request(method: .options, requestURI: "sip:\(platform.domain)"))
            request.headers.append("Via", endpoint.newVia(destination.transport))
            request.headers.append("Max-Forwards", "70")
            request.headers.append("From", "<sip:keepalive@\(platform.domain)>;tag=\(SIPEndpoint.newTag())")
            request.headers.append("To", "<sip:\(platform.domain)>")
            request.headers.append("Call-ID", SIPEndpoint.newCallID())
            request.headers.append("CSeq", "1 OPTIONS")
            request.headers.append("Accept", "application/sdp")
            var answered = false
            let deadline = loop.scheduleTask(in: .milliseconds(platform.keepAliveTimeoutMilliseconds)) { [weak self] in
                self?.keepAliveResult(side, reachable: false, reason: "no answer")
            }
            endpoint.send(request, to: destination) { [weak self] event in
                guard let self, !answered else { return }
                switch event {
                case .response(let response):
                    guard let code = response.statusCode, code >= 200 else { return }
                    answered = true
                    deadline.cancel()
                    // 503 and 408 say the side cannot serve now (RFC 3261 §21.5.4); any other answer means it is there.
                    self.keepAliveResult(side, reachable: code != 503 && code != 408, reason: "\(code) \(response.reasonPhrase)")
                case .timeout(let reason):
                    answered = true
                    deadline.cancel()
                    self.keepAliveResult(side, reachable: false, reason: reason)
                }
            }
        }
    }

    private func keepAliveResult(_ side: PlatformSide, reachable now: Bool, reason: String) {
        let before = reachable[side]
        guard before != now else { return }
        reachable[side] = now
        Gauge(label: "tandem_sip_platform_reachable", dimensions: [("side", side.rawValue)]).record(now ? 1 : 0)
        publish()
        if now {
            logger.info("Platform side reachable", metadata: ["side": "\(side.rawValue)"])
            if side == .primary, platform.secondary != nil {
                for (user, ext) in extensions where ext.side == .secondary && ext.status == .registered { scheduleMoveBack(user) }
            }
            return
        }
        logger.warning("Platform side unreachable", metadata: ["side": "\(side.rawValue)", "reason": "\(reason)"])
        guard before == true else { return }  // never reached yet: REGISTER's own failures drive the back-off
        // Extensions registered there have lost it: each moves to the other side now.
        for (user, var ext) in extensions where ext.side == side && ext.status == .registered {
            setStatus(&ext, .failed)
            ext.generation += 1
            let next = ext.backoff.lost(side)
            extensions[user] = ext
            reschedule(user, next, reason: "keep-alive: \(reason)")
        }
        publish()
    }

    // MARK: counts

    private func setStatus(_ ext: inout Extension, _ status: Status) {
        tally(ext, -1)
        ext.status = status
        if status != .failed { failures[ext.credentials.user] = nil }
        tally(ext, +1)
    }

    private func tally(_ ext: Extension, _ delta: Int) {
        let user = ext.credentials.user, status = ext.status.rawValue
        states.withLock { if delta > 0 { $0[user] = status } else { $0[user] = nil } }
        counts[ext.status, default: 0] += delta
        if ext.status == .registered { registeredBySide[ext.side, default: 0] += delta }
    }

    private func publish() {
        var summary = RegistrationSummary()
        summary.registered = registeredBySide.filter { $0.value > 0 }
        summary.registering = counts[.registering] ?? 0
        summary.failed = counts[.failed] ?? 0
        summary.unregistered = counts[.unregistered] ?? 0
        summary.failures = failures
        for (status, gauge) in gauges { gauge.record(counts[status] ?? 0) }
        let reachable = self.reachable
        snapshot.withLock {
            $0.summary = summary
            $0.reachable = reachable
        }
    }
}

/// A `+sip.instance` URN that stays the same across restarts (RFC 5626 §4.1): a name-based
/// UUID (RFC 9562 §5.5, version 5) of this node's address and the extension.
enum InstanceID {
    /// The namespace of Tandem's instance names (a fixed random UUID).
    static let namespace: [UInt8] = [0x6e, 0x1f, 0x2a, 0x4c, 0x93, 0x0b, 0x4e, 0x57, 0xa4, 0x71, 0x0c, 0x3d, 0x8b, 0x52, 0xe6, 0x19]

    static func uuid(for name: String) -> String {
        var digest = Array(Insecure.SHA1.hash(data: namespace + Array(name.utf8)).prefix(16))
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        let hex = digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let h = Array(hex)
        return [h[0..<8], h[8..<12], h[12..<16], h[16..<20], h[20..<32]].map { String($0) }.joined(separator: "-")
    }
}
