// TandemKit — the parts every Tandem command shares, and the wiring of `tandem serve`.
//
// What it does: loads and validates the configuration (YAML + `TANDEM_*` environment),
// bootstraps logging (stdout + rotating file) and metrics (Prometheus), loads or generates
// the TLS certificate, opens the Store, and runs the services in one ServiceGroup:
// Store → TURN → media → HTTPS at start, the reverse on SIGTERM/SIGINT.
//
// What it does not do: protocol work. The TURN server lives in `turn/TURN`, the HTTPS
// routes in ControlAPI; this module only builds and orders them.
//
// Used by: the `tandem` executable, and tests that run a whole server.

import Admin
import ControlAPI
import Foundation
import Gateway
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import UnixSignals
import Store

/// What the services of `tandem serve` are built from.
public struct ServeContext: Sendable {
    public let configuration: TandemConfiguration
    public let store: Store
    /// The certificate of HTTPS, TURN over TLS and SIP over TLS (replaced live by an upload in /cms).
    public let tls: LiveCertificate
    /// Register a named check here to take part in `/readyz` (TURN registers "turn").
    public let readiness: Readiness
    /// The registry `/metrics` exposes (swift-metrics is bootstrapped onto it by the CLI).
    public let metrics: PrometheusCollectorRegistry
    public let logger: Logger
    /// The process's logging, when `tandem serve` bootstrapped it (levels and retention change live).
    public var logging: LoggingControl?
    /// "Restart service" of /cms.
    public var restart: RestartCoordinator
}

/// `tandem serve`: prepares the shared pieces, then runs every service in one group.
public struct TandemServer: Sendable {
    public let configuration: TandemConfiguration
    public let metrics: PrometheusCollectorRegistry
    public let logger: Logger
    public let logging: LoggingControl?

    public init(configuration: TandemConfiguration, metrics: PrometheusCollectorRegistry, logger: Logger, logging: LoggingControl? = nil) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.logging = logging
    }

    /// Opens the Store (seeding it on first start) and loads the TLS material.
    public func prepare() throws -> ServeContext {
        let store = try Store.open(
            directory: configuration.storage.dataDirectory,
            seed: configuration.storeSeed(logger: logger),
            logger: logger)
        Self.reportInitialCredentials(of: store, logger: logger)
        let tls: TLSMaterial
        do {
            tls = try TLSMaterial.load(configuration.tls, dataDirectory: configuration.storage.dataDirectory, hostname: configuration.tls.effectiveHostName, logger: logger)
        } catch {
            try? store.close()
            throw error
        }
        let readiness = Readiness()
        readiness.register("database", reason: "the database does not answer") { await store.isHealthy() }
        return ServeContext(configuration: configuration, store: store, tls: LiveCertificate(tls), readiness: readiness, metrics: metrics, logger: logger,
                            logging: logging, restart: RestartCoordinator(logger: logger))
    }

    /// Every service of `tandem serve`, in start order (Store → TURN → HTTPS); the group
    /// shuts them down in reverse, so HTTPS stops first and the Store closes last.
    /// `onHTTPSRunning` receives the HTTPS channel once it listens (tests read its port).
    public func makeServices(
        _ context: ServeContext,
        onHTTPSRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: StoreService(store: context.store, logger: context.logger),
                successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup,
                serviceName: "store")
        ]
        if let logging {
            services.append(.init(
                service: DiagnosticsFollower(store: context.store, logging: logging, configured: Self.configuredDiagnostics(context.configuration.log), logger: context.logger),
                serviceName: "diagnostics"))
        }
        let turnServices = try makeTURNServices(context)
        services += turnServices
        var engine: MediaEngine?
        if context.configuration.media.enabled {
            var configuration = context.configuration.media.engineConfiguration(logger: context.logger)
            configuration.sipPortRange = UInt16(context.configuration.sip.rtpPortRange.lowerBound)...UInt16(context.configuration.sip.rtpPortRange.upperBound)
            engine = try MediaEngine(configuration: configuration, logger: context.logger)
        }
        let sip = try makeSIPServices(context, engine: engine)
        services += sip
        let sipService = sip.first?.service as? SIPService
        // Without a platform the gateway still answers the echo number (media.echo, http.demo).
        var controller = sipService?.controller
        if controller == nil, let engine, let echo = context.configuration.echoNumber {
            var c = CallController.Configuration()
            c.echoNumber = echo
            c.graceSeconds = context.configuration.sip.unregisterGrace
            controller = CallController(manager: nil, agent: nil, engine: engine, configuration: c, logger: context.logger,
                                        loop: MultiThreadedEventLoopGroup.singleton.next())
        }
        if let engine {
            services.append(.init(
                service: MediaService(engine: engine, logger: context.logger),
                successTerminationBehavior: .gracefullyShutdownGroup,
                failureTerminationBehavior: .gracefullyShutdownGroup,
                serviceName: "media"))
        }
        let api = Self.apiBackend(context, registrations: sipService?.agent, controller: controller, turn: turnServices.first?.service as? TURNService)
        let history = DashboardHistory()
        let adminBackend = Self.adminBackend(context, api: api, turn: turnServices.first?.service as? TURNService, sip: sipService, controller: controller)
        services.append(.init(
            service: DashboardSampler(backend: adminBackend, history: history),
            successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore, serviceName: "dashboard"))
        let admin = AdminRoutes<HTTPSRequestContext>(store: context.store, configuration: Self.adminConfiguration(context), backend: adminBackend,
                                                     history: history, logger: context.logger)
        let mountAdmin: ControlAPI.RouteMount = { admin.add(to: $0) }
        let mainMount: ControlAPI.RouteMount? = context.configuration.cms.listen == nil ? mountAdmin : nil
        services.append(try makeHTTPSService(
            context, echo: context.configuration.media.echo ? engine.map(Self.echoAnswerer) : nil,
            api: api,
            signalling: controller.map { Self.signallingBackend(context, controller: $0) },
            demo: context.configuration.http.demo ? Self.demoBackend(context) : nil,
            mount: mainMount,
            onServerRunning: onHTTPSRunning))
        if let listen = context.configuration.cms.listen {
            // /cms on its own listener only: the main one answers it with 404.
            let application = try ControlAPI.makeApplication(
                configuration: .init(host: listen.address.description, port: listen.port,
                                     tlsConfiguration: context.tls.serverConfiguration(applicationProtocols: ["http/1.1"])),
                readiness: context.readiness, metrics: context.metrics, logger: context.logger,
                mount: mountAdmin)
            services.append(.init(service: application, successTerminationBehavior: .gracefullyShutdownGroup,
                                  failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "cms-https"))
            context.logger.info("/cms has its own listener", metadata: ["listen": "\(listen.address):\(listen.port)"])
        }
        if let controller {
            // Last in, so first told of a shutdown: the browsers' sockets close before HTTPS
            // waits for its connections to end (an open WebSocket would hold it).
            services.append(.init(service: SignallingCloser(controller: controller), successTerminationBehavior: .ignore,
                                  failureTerminationBehavior: .ignore, serviceName: "signalling-closer"))
        }
        return services
    }

    /// The echo service's entry: each offer becomes a call whose far end echoes its G.711 back.
    static func echoAnswerer(_ engine: MediaEngine) -> ControlAPI.EchoAnswerer {
        { offer in try await engine.answer(offer: offer, farEnd: { EchoFarEnd() }).answer }
    }

    /// The TURN relay's services, started after the Store and before HTTPS (none when
    /// `turn.enabled` is false).
    public func makeTURNServices(_ context: ServeContext) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        guard context.configuration.turn.enabled else { return [] }
        return [.init(
            service: TURNService(context: context),
            successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup,
            serviceName: "turn")]
    }

    /// The HTTPS listener (ControlAPI) on `http.listen-address:http.port`.
    public func makeHTTPSService(
        _ context: ServeContext,
        echo: ControlAPI.EchoAnswerer? = nil,
        api: ControlAPIBackend? = nil,
        signalling: SignallingBackend? = nil,
        demo: DemoSessions? = nil,
        mount: ControlAPI.RouteMount? = nil,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> ServiceGroupConfiguration.ServiceConfiguration {
        let application = try ControlAPI.makeApplication(
            configuration: .init(
                host: context.configuration.http.listenAddress.description,
                port: context.configuration.http.port,
                tlsConfiguration: context.tls.serverConfiguration(applicationProtocols: ["http/1.1"])),
            readiness: context.readiness,
            metrics: context.metrics,
            logger: context.logger,
            echo: echo,
            oauth: try Self.oauthService(context),
            api: api,
            signalling: signalling,
            demo: demo,
            corsOrigins: context.configuration.http.corsOrigins,
            mount: mount,
            onServerRunning: onServerRunning)
        return .init(
            service: application,
            successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup,
            serviceName: "https")
    }

    /// The token endpoint's service: the signing key from the database (made on first start),
    /// clients checked against the database's salted hashes in constant time.
    static func oauthService(_ context: ServeContext) throws -> OAuthTokenService {
        let store = context.store
        return OAuthTokenService(signingKey: try store.tokenSigningKey().secret, verifyClient: { id, secret in
            try await store.verifyOAuthClient(id: id, secret: secret).map { OAuthClientGrant(clientID: $0.clientID, tokenValidityMinutes: $0.tokenValidityMinutes) }
        }, isClientActive: { id in
            // Fails closed: while the database does not answer, no token is honoured.
            (try? await store.oauthClient(id: id)) != nil
        }, logger: context.logger)
    }

    /// The group of ``makeServices(_:onHTTPSRunning:)``; `signals` trigger graceful shutdown.
    public func makeServiceGroup(
        _ context: ServeContext,
        gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
        onHTTPSRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(
            services: try makeServices(context, onHTTPSRunning: onHTTPSRunning),
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: context.logger)
        // A connection that ignores the shutdown (a WebSocket a browser reopened) must not hold it up.
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        return ServiceGroup(configuration: configuration)
    }

    /// Logs, once and as a warning, the OAuth client secret generated when `store` was
    /// seeded by this open (it is stored hashed, so this is the only chance to see it).
    public static func reportInitialCredentials(of store: Store, logger: Logger) {
        guard let initial = store.initialCredentials else { return }
        logger.warning(
            "First start: generated the OAuth client secret. It is stored hashed and shown only this once; write it down now.",
            metadata: ["client-id": "\(initial.clientID)", "client-secret": "\(initial.clientSecret)"])
    }

    /// Prepares and runs until SIGTERM/SIGINT, then shuts down gracefully.
    /// Runs until SIGTERM/SIGINT or a restart from /cms; true when the process should start again.
    @discardableResult
    public func run() async throws -> Bool {
        let context = try prepare()
        if let logging, let stored = try? await context.store.diagnosticsSettings() {
            Self.apply(stored, to: logging)
            logger.info("Log levels and retention from /cms", metadata: ["level": "\(stored.defaultLevel)", "subsystems": "\(stored.levels.count)"])
        }
        let group = try makeServiceGroup(context)
        logger.info(
            "Tandem starting",
            metadata: [
                "https": "\(configuration.http.listenAddress):\(configuration.http.port)",
                "data-directory": "\(configuration.storage.dataDirectory)",
            ])
        context.restart.setShutdown { Task { await group.triggerGracefulShutdown() } }
        try await group.run()
        logger.info(context.restart.isRestartRequested ? "Tandem stopped; starting again" : "Tandem stopped")
        return context.restart.isRestartRequested
    }
}

extension TandemServer {
    /// The configuration file's `log.*` as diagnostics settings.
    static func configuredDiagnostics(_ log: TandemConfiguration.Log) -> DiagnosticsSettings {
        DiagnosticsSettings(defaultLevel: log.level.rawValue, maxFiles: log.maxFiles, maxFileSize: log.maxFileSize)
    }

    /// Puts log levels and retention into effect at once.
    static func apply(_ settings: DiagnosticsSettings, to logging: LoggingControl) {
        let fallback = Logger.Level(rawValue: settings.defaultLevel) ?? .info
        logging.levels.set(default: fallback, bySource: settings.levels.compactMapValues { Logger.Level(rawValue: $0) })
        logging.file.setRetention(maxFiles: settings.maxFiles, maxFileSize: settings.maxFileSize)
    }
}

extension TandemConfiguration {
    /// The number the gateway's echo service answers (with `media.echo` or `http.demo`).
    var echoNumber: String? { media.echo || http.demo ? "echo" : nil }

    /// The first-start seed for the Store, with relay addresses defaulted to the host's own.
    public func storeSeed(logger: Logger? = nil) -> StoreSeed {
        let relay = turn.seed.relayAddresses.isEmpty ? HostAddresses.relayCandidates(logger: logger) : turn.seed.relayAddresses
        return StoreSeed(
            relayAddresses: relay.map(\.description),
            externalAddresses: turn.seed.externalAddresses.map(\.description),
            credentialTTL: turn.seed.credentialTTL,
            turnSharedSecret: turn.seed.sharedSecret.isEmpty ? nil : turn.seed.sharedSecret)
    }
}

/// Process-wide metrics setup for `tandem serve`.
public enum TandemMetrics {
    /// Points swift-metrics at `registry` (once per process).
    public static func bootstrap(_ registry: PrometheusCollectorRegistry) {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }
}
