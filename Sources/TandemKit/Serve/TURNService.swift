import Foundation
import Logging
import STUN
import ServiceLifecycle
import Store
import Synchronization
import TURN

/// Builds the TURN server of `tandem serve` from the static configuration and the runtime
/// settings the database holds (shared secrets, relay and external addresses).
enum TURNServiceFactory {
    static func makeServer(_ context: ServeContext) async throws -> TURNServer {
        let settings = try await context.store.turnSettings()
        let turn = context.configuration.turn
        var config = TURNServerConfiguration()
        config.realm = turn.realm
        config.listenAddresses = turn.listenAddresses.map(\.description)
        config.port = turn.listenPort
        config.tlsPort = turn.tlsPort
        config.transports = Set(turn.transports.compactMap { ClientTransport(rawValue: $0.rawValue) })
        var tls = context.tls.serverConfiguration()
        tls.minimumTLSVersion = switch turn.tlsMinimumVersion {
        case "1.0": .tlsv1
        case "1.1": .tlsv11
        case "1.3": .tlsv13
        default: .tlsv12
        }
        config.tls = tls
        let (relays, external) = relayPlan(settings)
        config.relayAddresses = relays
        config.externalAddresses = external
        config.relayPorts = turn.relayPortRange
        config.allowedPeers = turn.allowedPeers
        config.deniedPeers = turn.deniedPeers
        config.nonceLifetime = turn.nonceLifetime
        config.userQuota = turn.userQuota
        config.totalQuota = turn.totalQuota > 0 ? turn.totalQuota : Int.max
        config.maxRequestsPerSecond = turn.maxRequestsPerSecond
        config.maxBitsPerSecond = turn.maxBytesPerSecond * 8
        config.threads = turn.threads
        config.batchWindowMicroseconds = turn.batchWindowMicroseconds
        let secrets = SharedSecrets(current: settings.sharedSecret)
        apply(settings, to: secrets)
        if relays.isEmpty {
            context.logger.warning("No TURN relay address is configured: every Allocate will be refused with 440")
        }
        return TURNServer(configuration: config, secrets: secrets, logger: context.logger)
    }

    /// The relay addresses of the stored settings, and the external address of each.
    static func relayPlan(_ settings: TURNSettings) -> (relays: [IPAddress], external: [IPAddress: IPAddress]) {
        let relays = settings.relayAddresses.compactMap { IPAddress($0) }
        let mappings = settings.externalAddresses.compactMap { try? ExternalAddressMapping(parsing: $0) }
        var external: [IPAddress: IPAddress] = [:]
        for relay in relays { external[relay] = mappings.externalAddress(for: relay) }
        return (relays, external)
    }

    /// The stored secrets (the previous one until it retires) into the server's live set.
    static func apply(_ settings: TURNSettings, to secrets: SharedSecrets) {
        let retires = settings.previousSecretRetiresAt.map { Int($0.timeIntervalSince1970) } ?? 0
        secrets.set(current: settings.sharedSecret, previous: settings.previousSharedSecret, previousValidUntil: retires)
    }
}

/// The TURN relay as a service of `tandem serve`: reads its runtime settings from the
/// Store when it starts, then runs the server until the group shuts down. Its readiness
/// check ("turn") passes while the listeners are bound.
final class TURNService: Service, Sendable {
    let context: ServeContext
    private let server = Mutex<TURNServer?>(nil)

    init(context: ServeContext) {
        self.context = context
        context.readiness.register("turn", reason: "the TURN listeners are not bound") { [weak self] in
            self?.server.withLock { $0?.isRunning } ?? false
        }
    }

    /// The running server (nil before it started).
    var current: TURNServer? { server.withLock { $0 } }

    /// Applies settings an administrator changed: the secrets at once, the relay and external
    /// addresses to allocations made from now on.
    func apply(_ settings: TURNSettings) {
        guard let turn = current else { return }
        TURNServiceFactory.apply(settings, to: turn.secrets)
        let (relays, external) = TURNServiceFactory.relayPlan(settings)
        turn.updateRelayAddresses(relays, externalAddresses: external)
    }

    func run() async throws {
        let turn = try await TURNServiceFactory.makeServer(context)
        server.withLock { $0 = turn }
        try await turn.run()
    }
}
