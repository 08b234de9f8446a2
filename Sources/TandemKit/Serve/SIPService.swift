import Foundation
import G711
import Gateway
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SIP
import SIPUA
import ServiceLifecycle
import Store
import Synchronization

/// The SIP side of `tandem serve`: one endpoint (UDP/TCP/TLS listeners) and the registration
/// agent that keeps every extension of the database registered with the platform. Runs when
/// `sip.platform-primary` is set. It polls the database every few seconds, so extensions
/// added or removed with `tandem extensions …` register or unregister without a restart.
/// Its readiness check "sip-platform" passes while a platform side answers keep-alives.
/// With a media engine it also runs the gateway's ``CallController``: extensions then
/// register while a browser holds them (unless `sip.register-all-extensions`), and calls
/// are bridged between browsers and the platform.
final class SIPService: Service {
    let context: ServeContext
    let group: MultiThreadedEventLoopGroup
    let endpoint: SIPEndpoint
    let agent: RegistrationAgent
    let calls: SIPCallManager?
    let controller: CallController?
    let pollInterval: Duration

    /// `override`: the platform set in /cms (read by the caller at start), which replaces the file's.
    init(context: ServeContext, engine: MediaEngine?, override: SIPPlatformSettings?, pollInterval: Duration = .seconds(3)) throws {
        self.context = context
        self.pollInterval = pollInterval
        let sip = Self.effective(context.configuration.sip, override)
        let logger = context.logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let platform = try Self.platform(sip)
            let configuration = try Self.endpointConfiguration(sip, tls: context.tls, logger: logger)
            endpoint = SIPEndpoint(configuration: configuration, loop: group.next(), logger: logger)
            let agent = RegistrationAgent(endpoint: endpoint, platform: platform, logger: logger)
            self.agent = agent
            if let engine {
                let credentialsByUser = credentialsCache
                let manager = SIPCallManager(endpoint: endpoint, domain: platform.domain, logger: logger,
                                             credentials: { credentialsByUser.get($0) },
                                             route: { agent.destination(for: $0) ?? agent.platform.primary })
                calls = manager
                var c = CallController.Configuration()
                c.graceSeconds = sip.unregisterGrace
                c.registerAll = sip.registerAll
                let payload = (try? context.store.payloadSettingsNow()) ?? nil ?? Self.configuredPayload(context.configuration)
                (c.codecs, c.srtpMode) = Self.payload(payload)
                c.sipDomain = platform.domain
                c.guestAccount = sip.guestExtension.isEmpty ? nil : sip.guestExtension
                c.echoNumber = context.configuration.echoNumber
                c.dtmfByInfo = sip.dtmfMode == "info"
                controller = CallController(manager: manager, agent: agent, engine: engine, configuration: c, logger: logger)
            } else {
                calls = nil
                controller = nil
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        applied.withLock { $0 = Self.configured(sip) }
        let agent = self.agent
        context.readiness.register("sip-platform", reason: "no platform side answers SIP keep-alives") { agent.isPlatformReachable }
    }

    func run() async throws {
        let logger = context.logger
        do {
            try await endpoint.start()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        let initialMark = try? await context.store.extensionsChangeMark()
        let initial = try await Self.credentials(context.store)
        credentialsCache.set(initial)
        try await endpoint.loop.submit { [agent, calls, controller] in
            if let calls, let controller {
                calls.install()
                controller.install()
                agent.start([])
            } else {
                agent.start(initial)
            }
        }.get()
        await controller?.setExtensions(initial)
        let platform = agent.currentPlatform
        logger.info("SIP registering extensions", metadata: ["count": "\(initial.count)", "primary": "\(platform.primary)", "secondary": "\(platform.secondary.map(\.description) ?? "none")"])
        await cancelWhenGracefulShutdown {
            var mark = initialMark
            var settings = await self.storedSettings()
            while !Task.isCancelled {
                try? await Task.sleep(for: self.pollInterval)
                // The platform and payload set in /cms, by an import or by another process (the CLI).
                let now = await self.storedSettings()
                if now != settings {
                    settings = now
                    await self.apply(now.platform)
                    await self.applyPayload(now.payload)
                }
                guard let now = try? await self.context.store.extensionsChangeMark(), now != mark else { continue }
                mark = now
                guard let list = try? await Self.credentials(self.context.store) else { continue }
                logger.info("Extensions changed in the database", metadata: ["count": "\(list.count)"])
                self.credentialsCache.set(list)
                if let controller = self.controller {
                    await controller.setExtensions(list)
                } else {
                    try? await self.endpoint.loop.submit { [agent = self.agent] in agent.update(list) }.get()
                }
            }
        }
        await agent.stop()
        await endpoint.stop()
        try? await group.shutdownGracefully()
        logger.info("SIP stopped")
    }

    let credentialsCache = CredentialsCache()
    /// The platform in effect, as settings (for telling a real change from the same one again).
    let applied = Mutex<SIPPlatformSettings?>(nil)

    /// The /cms platform and payload rows (each write changes its `updatedAt`).
    func storedSettings() async -> (platform: SIPPlatformSettings?, payload: PayloadSettings?) {
        (((try? await context.store.sipPlatformSettings()) ?? nil), ((try? await context.store.payloadSettings()) ?? nil))
    }

    /// Puts a platform into effect while running (nil: the configuration file's): the agent
    /// moves every extension over, new calls use the new domain. Names are resolved first;
    /// a platform that does not resolve leaves the current one in place.
    func apply(_ override: SIPPlatformSettings?) async {
        let sip = Self.effective(context.configuration.sip, override)
        // The same platform again (a page's save seen once more by the poll): nothing moves.
        let wanted = Self.configured(sip)
        guard applied.withLock({ last in
            defer { last = wanted }
            return last.map { !$0.samePlatform(as: wanted) } ?? true
        }) else { return }
        let platform: SIPPlatform
        do {
            platform = try await Self.resolvedPlatform(sip)
        } catch {
            context.logger.error("The SIP platform was not changed", metadata: ["error": "\(error)"])
            return
        }
        try? await endpoint.loop.submit { [agent] in agent.reconfigure(platform) }.get()
        await controller?.setSIPDomain(platform.domain)
    }

    /// Puts payload settings into effect for new calls (nil: the configuration file's).
    func applyPayload(_ settings: PayloadSettings?) async {
        let (codecs, mode) = Self.payload(settings ?? Self.configuredPayload(context.configuration))
        await controller?.setPayload(codecs: codecs, srtpMode: mode)
    }

    /// The configuration file's `sip.srtp` and `media.sip-codec` as payload settings.
    static func configuredPayload(_ configuration: TandemConfiguration) -> PayloadSettings {
        PayloadSettings(srtpMode: configuration.sip.srtp, audioCodecs: PayloadSettings.audioCodecs(first: configuration.media.sipCodec))
    }

    /// The SIP leg's codecs (preferred first) and SRTP mode of payload settings.
    static func payload(_ settings: PayloadSettings) -> (codecs: [SIPCodec], srtpMode: SIPSRTPMode) {
        let codecs = settings.audioCodecs.compactMap(SIPCodec.init(rawValue:))
        return (codecs.isEmpty ? [.pcmu, .pcma] : codecs, SIPSRTPMode(rawValue: settings.srtpMode) ?? .off)
    }

    /// ``platform(_:)`` off the caller's thread (DNS may take a moment).
    static func resolvedPlatform(_ sip: TandemConfiguration.SIP) async throws -> SIPPlatform {
        try await offThread { try platform(sip) }
    }

    /// Runs blocking work (the resolver) on a global queue.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// `sip` with the platform keys replaced by those set in /cms.
    static func effective(_ sip: TandemConfiguration.SIP, _ override: SIPPlatformSettings?) -> TandemConfiguration.SIP {
        guard let override else { return sip }
        var sip = sip
        sip.platformPrimary = override.primary
        sip.platformSecondary = override.secondary
        sip.platformTransport = TandemConfiguration.SIP.Transport(rawValue: override.transport) ?? sip.platformTransport
        sip.outboundProxy = override.outboundProxy
        sip.domain = override.domain
        sip.registrationExpires = override.registrationExpires
        sip.keepAliveInterval = override.keepAliveInterval
        return sip
    }

    /// The configuration file's platform keys as settings (nil: it names no platform).
    static func configured(_ sip: TandemConfiguration.SIP) -> SIPPlatformSettings? {
        guard !sip.platformPrimary.isEmpty else { return nil }
        return SIPPlatformSettings(primary: sip.platformPrimary, secondary: sip.platformSecondary, transport: sip.platformTransport.rawValue,
                                   outboundProxy: sip.outboundProxy, domain: sip.domain, registrationExpires: sip.registrationExpires,
                                   keepAliveInterval: sip.keepAliveInterval)
    }

    /// Why `settings` cannot be used, as the /cms field and the reason: malformed
    /// `host[:port]`s, a domain with a port, names that do not resolve (nil: usable).
    static func validate(_ settings: SIPPlatformSettings) async -> (field: String, reason: String)? {
        if let problem = settings.violation() { return problem }
        let transport = SIPTransport(rawValue: settings.transport) ?? .udp
        for (field, label, text) in [("primary", "the primary", settings.primary), ("secondary", "the secondary", settings.secondary),
                                     ("proxy", "the outbound proxy", settings.outboundProxy)] where !text.isEmpty {
            guard let target = HostAndPort(text) else { return (field, "\(label) is not an IP address or host name with an optional :port") }
            do {
                _ = try await offThread { try resolve(target, transport) }
            } catch {
                return (field, "\(label) \(target.host) does not resolve")
            }
        }
        if !settings.domain.isEmpty {
            guard let domain = HostAndPort(settings.domain), domain.port == nil else { return ("domain", "the domain is a host name or IP address without a port") }
        }
        return nil
    }

    /// The extensions' digest credentials by user part, for the call manager's challenges.
    final class CredentialsCache: Sendable {
        private let map = Mutex<[String: (username: String, password: String)]>([:])
        func set(_ list: [SIPExtensionCredentials]) {
            map.withLock { m in m = Dictionary(list.map { ($0.user, ($0.username, $0.password)) }, uniquingKeysWith: { a, _ in a }) }
        }
        func get(_ user: String) -> (username: String, password: String)? { map.withLock { $0[user] } }
    }

    static func credentials(_ store: Store) async throws -> [SIPExtensionCredentials] {
        try await store.extensions().map {
            SIPExtensionCredentials(user: $0.number, username: $0.authentication == .digest ? $0.digestUsername : $0.number,
                                    password: $0.authentication == .digest ? $0.digestPassword : "", realm: $0.realm)
        }
    }

    /// Listen addresses, advertised host and TLS contexts from `sip.*`.
    static func endpointConfiguration(_ sip: TandemConfiguration.SIP, tls: LiveCertificate, logger: Logger) throws -> SIPEndpointConfiguration {
        var listen: [SIPListenAddress] = []
        for address in sip.listenAddresses {
            for transport in sip.transports {
                let kind = SIPTransport(rawValue: transport.rawValue) ?? .udp
                listen.append(SIPListenAddress(transport: kind, host: address.description, port: kind == .tls ? sip.tlsPort : sip.listenPort))
            }
        }
        let advertised: String
        if !sip.advertisedAddress.isEmpty {
            advertised = sip.advertisedAddress
        } else if let first = sip.listenAddresses.first, !first.isUnspecified {
            advertised = first.description
        } else {
            advertised = HostAddresses.relayCandidates(logger: logger).first?.description ?? "127.0.0.1"
        }
        var client = TLSConfiguration.makeClientConfiguration()
        if !sip.tlsVerifyPeer { client.certificateVerification = .none }
        return SIPEndpointConfiguration(
            listen: listen, advertisedHost: advertised,
            serverTLS: sip.transports.contains(.tls) ? try NIOSSLContext(configuration: tls.serverConfiguration()) : nil,
            clientTLS: try NIOSSLContext(configuration: client))
    }

    /// The platform sides, resolved at start: address literals as they are, names through
    /// DNS SRV and A/AAAA (RFC 3263), then the system resolver (/etc/hosts). An outbound proxy takes every request, and does the failover
    /// itself: the secondary is not used then.
    static func platform(_ sip: TandemConfiguration.SIP) throws -> SIPPlatform {
        let transport = SIPTransport(rawValue: sip.platformTransport.rawValue) ?? .udp
        guard let primaryHost = HostAndPort(sip.platformPrimary) else { throw SIPServiceError.noPlatform }
        let proxy = sip.outboundProxy.isEmpty ? nil : HostAndPort(sip.outboundProxy)
        let secondaryHost = sip.platformSecondary.isEmpty || proxy != nil ? nil : HostAndPort(sip.platformSecondary)
        let primary = try resolve(proxy ?? primaryHost, transport)
        let secondary: SIPDestination? = if let secondaryHost { try resolve(secondaryHost, transport) } else { nil }
        return SIPPlatform(
            primary: primary, secondary: secondary,
            domain: sip.domain.isEmpty ? primaryHost.host : sip.domain,
            registrationExpires: sip.registrationExpires, keepAliveInterval: sip.keepAliveInterval,
            registrationsPerSecond: sip.registrationsPerSecond, instanceIDs: sip.instanceID)
    }

    /// RFC 3263: an address as it is; a name by SRV (without a port) and A/AAAA, the first
    /// address in the order to try (the DNS is asked at start).
    static func resolve(_ target: HostAndPort, _ transport: SIPTransport) throws -> SIPDestination {
        let all = try SIPResolver().resolve(host: target.host, port: target.port, transport: transport)
        guard let first = all.first else { throw SIPServiceError.noPlatform }
        return first
    }
}

enum SIPServiceError: Error, CustomStringConvertible {
    case noPlatform

    var description: String { "sip.platform-primary is not a host[:port]" }
}

extension TandemServer {
    /// The SIP service, started after the Store (none without `sip.platform-primary`).
    func makeSIPServices(_ context: ServeContext, engine: MediaEngine?) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let override = (try? context.store.sipPlatformSettingsNow()) ?? nil
        guard !context.configuration.sip.platformPrimary.isEmpty || override != nil else {
            context.logger.info("SIP is off: sip.platform-primary is empty and no platform is set in /cms")
            return []
        }
        return [.init(
            service: try SIPService(context: context, engine: engine, override: override),
            successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup,
            serviceName: "sip")]
    }
}
