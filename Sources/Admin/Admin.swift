// Admin — the administrators' web configuration under /cms.
//
// What it does: server-rendered pages (no third-party JavaScript, no build step) behind a
// sign-in: accounts in the Store with scrypt password hashes, a session cookie (HttpOnly,
// Secure, SameSite=Strict) with idle and absolute expiry, a CSRF token in every form,
// lock-out with a growing delay per account and per source address, an audit log. /cms
// answers only from the configured networks (404 elsewhere), never with CORS, always with a
// CSP that allows no inline script. Until an account exists it shows only how to create one.
//
// What it does not do: know the protocols. What the dashboard shows comes through
// ``AdminBackend`` closures that TandemKit builds from the running services.
//
// Used by: TandemKit, which mounts ``AdminRoutes`` on the HTTPS router and runs
// ``DashboardSampler`` as a service of `tandem serve`; the `tandem admin` commands.

import Foundation
import Logging
import Store

/// How `/cms` behaves.
public struct AdminConfiguration: Sendable {
    /// Whether a request from this remote IP may see `/cms` (`cms.allowed-networks`).
    public var isAllowedSource: @Sendable (String) -> Bool
    /// A session unused this long ends (seconds).
    public var sessionIdleTimeout: TimeInterval
    /// A session ends this long after sign-in, used or not (seconds).
    public var sessionLifetime: TimeInterval
    /// Mark cookies `Secure` (off only for the plain-HTTP listener of tests).
    public var secureCookies: Bool
    /// The scrypt cost of passwords set through the pages.
    public var passwordCost: PasswordHash.Cost
    /// Shown in the page footer and in diagnostics.
    public var version: String

    public init(isAllowedSource: @escaping @Sendable (String) -> Bool, sessionIdleTimeout: TimeInterval = 1800, sessionLifetime: TimeInterval = 12 * 3600,
                secureCookies: Bool = true, passwordCost: PasswordHash.Cost = .standard, version: String = "") {
        self.isAllowedSource = isAllowedSource
        self.sessionIdleTimeout = sessionIdleTimeout
        self.sessionLifetime = sessionLifetime
        self.secureCookies = secureCookies
        self.passwordCost = passwordCost
        self.version = version
    }
}

/// What the running gateway tells the dashboard.
public struct AdminBackend: Sendable {
    public var snapshot: @Sendable () async -> DashboardSnapshot
    /// Each extension's live state by number (`free`, `allocated`, `registered`, `in call` …).
    public var extensionStates: @Sendable () async -> [String: String]
    /// Ends a browser session that lost its extension: its calls end with BYE, its socket closes.
    public var endSession: @Sendable (String) async -> Void

    /// The TURN relay's page; nil when the backend has no relay to show.
    public var turn: TURNBackend?
    /// The SIP platform page; nil when the backend has no SIP side to show.
    public var sip: SIPBackend?
    /// The certificates page; nil when the backend serves no TLS to show.
    public var certificates: CertificateBackend?
    /// The payload page; nil when the backend has no SIP leg to configure.
    public var payload: PayloadBackend?
    /// The diagnostics page; nil when the backend has no logs to show.
    public var diagnostics: DiagnosticsBackend?
    /// "Restart service"; nil when the process cannot restart itself.
    public var restart: RestartBackend?

    public init(snapshot: @escaping @Sendable () async -> DashboardSnapshot, extensionStates: @escaping @Sendable () async -> [String: String] = { [:] },
                endSession: @escaping @Sendable (String) async -> Void = { _ in }, turn: TURNBackend? = nil, sip: SIPBackend? = nil,
                certificates: CertificateBackend? = nil, payload: PayloadBackend? = nil, diagnostics: DiagnosticsBackend? = nil,
                restart: RestartBackend? = nil) {
        self.snapshot = snapshot
        self.extensionStates = extensionStates
        self.endSession = endSession
        self.turn = turn
        self.sip = sip
        self.certificates = certificates
        self.payload = payload
        self.diagnostics = diagnostics
        self.restart = restart
    }
}

/// What "Restart service" needs: the process's state and the trigger.
public struct RestartBackend: Sendable {
    public var status: @Sendable () async -> RestartStatus
    /// Starts draining and restarting; false when a restart is under way already.
    public var begin: @Sendable () async -> Bool

    public init(status: @escaping @Sendable () async -> RestartStatus, begin: @escaping @Sendable () async -> Bool) {
        self.status = status
        self.begin = begin
    }
}

/// The process as the restart page shows it.
public struct RestartStatus: Sendable, Equatable, Codable {
    /// `running`, `draining` or `restarting`.
    public var phase: String
    public var calls: Int
    /// When this process started serving (ISO 8601); a restart changes it.
    public var startedAt: String
    public var drainTimeout: Int
    /// Seconds left before the calls left are ended, while draining.
    public var secondsLeft: Int?

    public init(phase: String, calls: Int, startedAt: String, drainTimeout: Int, secondsLeft: Int? = nil) {
        self.phase = phase
        self.calls = calls
        self.startedAt = startedAt
        self.drainTimeout = drainTimeout
        self.secondsLeft = secondsLeft
    }
}

/// What the diagnostics page needs: the log levels and retention in force, and the archive.
public struct DiagnosticsBackend: Sendable {
    /// The configuration file's `log.*`.
    public var configured: @Sendable () -> DiagnosticsSettings
    /// What is in force now (nil: logging was not set up by `tandem serve`).
    public var current: @Sendable () -> DiagnosticsSettings?
    /// Puts settings into effect at once (nil: the file's again).
    public var apply: @Sendable (DiagnosticsSettings?) -> Void
    /// The subsystems (swift-log sources) and what each covers.
    public var subsystems: [(String, String)]
    /// The packet capture tool when installed (nil: the page says so).
    public var captureTool: String?
    public var maximumCaptureSeconds: Int
    /// The archive (file name, gzip'd tar), with a capture of this many seconds first (0: none).
    public var archive: @Sendable (_ captureSeconds: Int) async throws -> (name: String, data: Data)

    public init(configured: @escaping @Sendable () -> DiagnosticsSettings, current: @escaping @Sendable () -> DiagnosticsSettings?,
                apply: @escaping @Sendable (DiagnosticsSettings?) -> Void, subsystems: [(String, String)], captureTool: String?,
                maximumCaptureSeconds: Int, archive: @escaping @Sendable (Int) async throws -> (name: String, data: Data)) {
        self.configured = configured
        self.current = current
        self.apply = apply
        self.subsystems = subsystems
        self.captureTool = captureTool
        self.maximumCaptureSeconds = maximumCaptureSeconds
        self.archive = archive
    }
}

/// What the payload page needs from the gateway.
public struct PayloadBackend: Sendable {
    /// The configuration file's `sip.srtp` and `media.sip-codec` (shown while none is set here).
    public var configured: @Sendable () -> PayloadSettings
    /// Puts settings into effect for new calls (nil: the file's again).
    public var apply: @Sendable (PayloadSettings?) async -> Void

    public init(configured: @escaping @Sendable () -> PayloadSettings, apply: @escaping @Sendable (PayloadSettings?) async -> Void) {
        self.configured = configured
        self.apply = apply
    }
}

/// What the certificates page needs from the TLS listeners.
public struct CertificateBackend: Sendable {
    /// The certificate presented now.
    public var current: @Sendable () -> CertificateStatus
    /// Checks an upload (PEM certificate, private key, CA chain) and, when good, stores it and
    /// presents it from the next handshake; else the form field at fault and why.
    public var install: @Sendable (_ certificate: String, _ privateKey: String, _ caCertificates: String) async -> (field: String, reason: String)?
    /// Drops the upload: the configured or self-signed certificate is presented again (nil), or why not.
    public var remove: @Sendable () async -> String?

    public init(current: @escaping @Sendable () -> CertificateStatus,
                install: @escaping @Sendable (String, String, String) async -> (field: String, reason: String)?,
                remove: @escaping @Sendable () async -> String?) {
        self.current = current
        self.install = install
        self.remove = remove
    }
}

/// The presented certificate as the page shows it.
public struct CertificateStatus: Sendable, Equatable {
    public var subject: String
    public var alternativeNames: [String]
    public var issuer: String
    public var notValidBefore: Date
    public var notValidAfter: Date
    public var fingerprint: String
    /// `uploaded`, `file` (tls.certificate) or `self-signed`.
    public var source: String
    /// The name the certificate must list (tls.host-name).
    public var hostName: String

    public init(subject: String, alternativeNames: [String], issuer: String, notValidBefore: Date, notValidAfter: Date, fingerprint: String,
                source: String, hostName: String) {
        self.subject = subject
        self.alternativeNames = alternativeNames
        self.issuer = issuer
        self.notValidBefore = notValidBefore
        self.notValidAfter = notValidAfter
        self.fingerprint = fingerprint
        self.source = source
        self.hostName = hostName
    }
}

/// What the SIP platform page needs from the gateway's SIP side.
public struct SIPBackend: Sendable {
    /// The SIP side now.
    public var status: @Sendable () -> SIPStatus
    /// The platform of the configuration file's `sip.*` keys (shown while no platform is set here);
    /// nil when the file names none.
    public var configured: @Sendable () -> SIPPlatformSettings?
    /// Why these settings cannot be used, as the form field and the reason (nil: they can;
    /// host names are resolved).
    public var validate: @Sendable (SIPPlatformSettings) async -> (field: String, reason: String)?
    /// Puts a platform into effect (nil: the configuration file's again): registrations move over.
    public var apply: @Sendable (SIPPlatformSettings?) async -> Void

    public init(status: @escaping @Sendable () -> SIPStatus, configured: @escaping @Sendable () -> SIPPlatformSettings?,
                validate: @escaping @Sendable (SIPPlatformSettings) async -> (field: String, reason: String)?,
                apply: @escaping @Sendable (SIPPlatformSettings?) async -> Void) {
        self.status = status
        self.configured = configured
        self.validate = validate
        self.apply = apply
    }
}

/// The SIP side's state as the page shows it.
public struct SIPStatus: Sendable, Equatable {
    /// Whether the SIP side runs (it starts with a platform; turning it on needs a restart).
    public var running: Bool
    /// `sip.listen-addresses`, ports and transports, as `udp 0.0.0.0:5060`.
    public var listeners: [String]
    /// Resolved primary and secondary (`udp 192.0.2.1:5060`), empty when none.
    public var primary: String
    public var secondary: String
    /// Whether each side answered its last keep-alive (nil: not known yet).
    public var primaryReachable: Bool?
    public var secondaryReachable: Bool?
    public var registered: Int
    public var registering: Int
    public var failed: Int

    public init(running: Bool, listeners: [String] = [], primary: String = "", secondary: String = "", primaryReachable: Bool? = nil,
                secondaryReachable: Bool? = nil, registered: Int = 0, registering: Int = 0, failed: Int = 0) {
        self.running = running
        self.listeners = listeners
        self.primary = primary
        self.secondary = secondary
        self.primaryReachable = primaryReachable
        self.secondaryReachable = secondaryReachable
        self.registered = registered
        self.registering = registering
        self.failed = failed
    }
}

/// What the TURN page needs from the running relay.
public struct TURNBackend: Sendable {
    /// The relay now.
    public var status: @Sendable () -> TURNStatus
    /// Why these relay and external addresses cannot be used (nil: they can).
    public var validateAddresses: @Sendable (_ relay: [String], _ external: [String]) -> String?
    /// Puts stored settings into effect: secrets at once, addresses for new allocations.
    public var apply: @Sendable (TURNSettings) async -> Void

    public init(status: @escaping @Sendable () -> TURNStatus, validateAddresses: @escaping @Sendable ([String], [String]) -> String?,
                apply: @escaping @Sendable (TURNSettings) async -> Void) {
        self.status = status
        self.validateAddresses = validateAddresses
        self.apply = apply
    }
}

/// The TURN relay's state as the page shows it.
public struct TURNStatus: Sendable, Equatable {
    /// `turn.enabled` (changing it needs a restart).
    public var enabled: Bool
    public var realm: String
    /// `udp 0.0.0.0:3478`, `tls [::]:5349` …
    public var listeners: [String]
    public var allocations: Int

    public init(enabled: Bool, realm: String, listeners: [String], allocations: Int) {
        self.enabled = enabled
        self.realm = realm
        self.listeners = listeners
        self.allocations = allocations
    }
}

/// The gateway at one moment, as the dashboard shows it.
public struct DashboardSnapshot: Sendable, Equatable {
    /// Extensions by state (`free`, `allocated`, `registering`, `registered`, `failed`, `in call`).
    public var extensionsByState: [String: Int]
    public var calls: [Call]
    public var turnAllocations: Int
    /// Bytes relayed by TURN since start, both directions.
    public var turnRelayedBytes: Int
    /// The process's CPU time since start (user + system), seconds.
    public var cpuSeconds: Double
    public var residentBytes: Int
    public var uptimeSeconds: Double

    /// One call, with its media quality when media flows.
    public struct Call: Sendable, Equatable {
        public var id: String
        public var direction: String
        public var `extension`: String?
        public var remote: String
        public var state: String
        public var codec: String?
        /// `transcode` or `pass-through`.
        public var mode: String?
        public var jitterMs: Double?
        public var lossPercent: Double?
        public var rttMs: Double?
        public var mos: Double?

        public init(id: String, direction: String, extension number: String?, remote: String, state: String, codec: String? = nil, mode: String? = nil,
                    jitterMs: Double? = nil, lossPercent: Double? = nil, rttMs: Double? = nil, mos: Double? = nil) {
            self.id = id
            self.direction = direction
            self.extension = number
            self.remote = remote
            self.state = state
            self.codec = codec
            self.mode = mode
            self.jitterMs = jitterMs
            self.lossPercent = lossPercent
            self.rttMs = rttMs
            self.mos = mos
        }
    }

    public init(extensionsByState: [String: Int] = [:], calls: [Call] = [], turnAllocations: Int = 0, turnRelayedBytes: Int = 0,
                cpuSeconds: Double = 0, residentBytes: Int = 0, uptimeSeconds: Double = 0) {
        self.extensionsByState = extensionsByState
        self.calls = calls
        self.turnAllocations = turnAllocations
        self.turnRelayedBytes = turnRelayedBytes
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
        self.uptimeSeconds = uptimeSeconds
    }
}
