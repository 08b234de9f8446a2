import ControlAPI
import Foundation
import Gateway
import Media
import SIPUA
import Store

extension TandemServer {
    /// What `/api/v1` serves: TURN credentials from the stored secret with the URIs of this
    /// node's TURN listeners, and the extensions with their registration state.
    static func apiBackend(_ context: ServeContext, registrations: RegistrationAgent?, controller: CallController? = nil, turn: TURNService? = nil) -> ControlAPIBackend {
        let store = context.store
        let lifetime = TimeInterval(context.configuration.http.sessionLifetime)
        @Sendable func response(_ session: SessionRecord, token: String?, ice: [ICEServer]?) -> SessionResponse {
            sessionResponse(session, token: token, ice: ice)
        }
        @Sendable func iceServers(_ user: String?) async throws -> [ICEServer]? {
            try await TandemServer.iceServers(context, user: user)
        }
        return ControlAPIBackend(
            turnCredentials: { user, ttl in try await turnCredentials(context, user: user, ttl: ttl) },
            extensions: {
                let states = registrations?.extensionStates ?? [:]
                let failures = registrations?.summary.failures ?? [:]
                let held = Set(try await store.sessions().compactMap(\.extension))
                let inCall = await controller?.extensionsInCall() ?? []
                return try await store.extensions().map { record in
                    let registration = states[record.number] ?? "unregistered"
                    let state = ExtensionStatus.state(registration: registration, held: held.contains(record.number), inCall: inCall.contains(record.number))
                    return ExtensionStatus(extension: record.number, state: state, realm: record.realm.isEmpty ? nil : record.realm,
                                           failure: state == "failed" ? failures[record.number] : nil)
                }
            },
            createSession: { number, clientID in
                try refuseWhileRestarting(context)
                let (session, token): (SessionRecord, String)
                do {
                    (session, token) = try await store.createSession(extension: number, clientID: clientID, lifetime: lifetime)
                } catch let error as StoreError {
                    switch error {
                    case .unknownExtension: throw ControlAPIError(.notFound, "unknown_extension", error.description)
                    case .extensionInUse: throw ControlAPIError(.conflict, "extension_in_use", error.description)
                    case .noFreeExtension: throw ControlAPIError(.conflict, "no_free_extension", error.description)
                    default: throw error
                    }
                }
                return response(session, token: token, ice: try await iceServers(session.extension))
            },
            sessions: { try await store.sessions().map { response($0, token: nil, ice: nil) } },
            deleteSession: { id in
                let existed = try await store.deleteSession(id: id)
                await controller?.endSession(id)
                return existed
            },
            calls: {
                guard let controller else { return [] }
                let format = ISO8601DateFormatter()
                return await controller.calls().map { c in
                    let media = c.media
                    return CallStatus(call: c.call, session: c.session, direction: c.direction, extension: c.extension, remote: c.remote, state: c.phase,
                                      held: c.held, startedAt: format.string(from: c.startedAt), codec: media?.codec, mode: media?.mode,
                                      jitterMs: media.map { ($0.jitterMilliseconds * 10).rounded() / 10 },
                                      lossPercent: media.map { ($0.lossFraction * 1000).rounded() / 10 },
                                      rttMs: media?.roundTripMilliseconds.map { $0.rounded() },
                                      mos: media.map { (QualityEstimate.mos(jitterMs: $0.jitterMilliseconds, lossFraction: $0.lossFraction,
                                                                             roundTripMs: $0.roundTripMilliseconds ?? 0) * 100).rounded() / 100 })
                }
            },
            createGuestSession: { from, destination, clientID in
                try await guestSession(context, from: from, service: destination, clientID: clientID, lifetime: lifetime, turnUser: "guest")
            },
            exportFile: { extensions, configuration in
                try await store.export(extensions: extensions, configuration: configuration).encoded()
            },
            importFile: { bytes, dryRun in
                let document: TransferDocument
                do { document = try TransferDocument.parse(bytes) } catch {
                    throw ControlAPIError(.badRequest, "invalid_import", "\(error)")
                }
                let plan: ImportPlan
                if dryRun {
                    plan = try await store.importPlan(document)
                } else {
                    let result = try await store.apply(document)
                    for id in result.endedSessions { await controller?.endSession(id) }
                    if document.configuration != nil, let settings = try? await store.turnSettings() { turn?.apply(settings) }
                    try await store.appendAudit(account: nil, source: "api", action: "imported", detail: "")
                    plan = result.plan
                }
                struct Answer: Encodable {
                    var applied: Bool
                    var plan: ImportPlan
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                return try encoder.encode(Answer(applied: !dryRun, plan: plan))
            })
    }

    /// TURN REST credentials for `user` valid `ttl` seconds (nil: the stored TTL), with this node's TURN URIs.
    static func turnCredentials(_ context: ServeContext, user: String?, ttl: Int?) async throws -> TURNCredentialResponse {
        let turn = context.configuration.turn
        let settings = try await context.store.turnSettings()
        let credential = TURNCredentials.issue(settings: settings, user: user, ttl: ttl)
        return TURNCredentialResponse(username: credential.username, password: credential.password, ttl: ttl ?? settings.credentialTTL,
                                      uris: turn.enabled ? turnURIs(turn, settings: settings) : [])
    }

    /// A session's `iceServers`: Tandem's TURN with REST credentials (none when TURN is off).
    static func iceServers(_ context: ServeContext, user: String?) async throws -> [ICEServer]? {
        guard context.configuration.turn.enabled else { return nil }
        let credential = try await turnCredentials(context, user: user, ttl: nil)
        return [ICEServer(urls: credential.uris, username: credential.username, credential: credential.password)]
    }

    /// A session as the API answers it.
    static func sessionResponse(_ session: SessionRecord, token: String?, ice: [ICEServer]?) -> SessionResponse {
        var response = SessionResponse(id: session.id, token: token, extension: session.extension, clientID: session.clientID,
                                       expiresAt: ISO8601DateFormatter().string(from: session.expiresAt), iceServers: ice)
        response.guest = session.guest.map {
            .init(from: $0.from, destination: $0.service.key, displayName: $0.service.displayName.isEmpty ? nil : $0.service.displayName)
        }
        return response
    }

    /// A guest session of `service` for caller `from`; an unknown service is ``ControlAPIError`` 404.
    /// 503 while a restart drains: sessions started now would be cut off by it.
    static func refuseWhileRestarting(_ context: ServeContext) throws {
        guard !context.restart.isDraining else {
            throw ControlAPIError(.serviceUnavailable, "restarting", "Tandem is restarting; try again in a few seconds")
        }
    }

    static func guestSession(_ context: ServeContext, from: String, service: String, clientID: String, lifetime: TimeInterval,
                             turnUser: String) async throws -> SessionResponse {
        try refuseWhileRestarting(context)
        do {
            let (session, token) = try await context.store.createGuestSession(from: from, service: service, clientID: clientID, lifetime: lifetime)
            return sessionResponse(session, token: token, ice: try await iceServers(context, user: turnUser))
        } catch StoreError.unknownService(let key) {
            throw ControlAPIError(.notFound, "unknown_service", "no service \(key)")
        }
    }

    /// The demo application server (`http.demo`): guest sessions for anyone, of the built-in
    /// echo service (made on first use) or of a configured service.
    static func demoBackend(_ context: ServeContext) -> DemoSessions {
        let store = context.store
        let lifetime = TimeInterval(min(context.configuration.http.sessionLifetime, 3600))
        return DemoSessions { service, from in
            let key = service ?? "echo"
            if key == "echo" { try await store.putService(ServiceRecord(key: "echo", number: "echo", displayName: "Echo test")) }
            return try await guestSession(context, from: from ?? "demo", service: key, clientID: "demo", lifetime: lifetime, turnUser: "demo")
        }
    }

    /// `/webkit/ws`: a session token from the database joins its socket to the call controller.
    /// A token an application server signed with its client's WebRTC secret
    /// (``SignedSessionToken``) makes its session on first use.
    static func signallingBackend(_ context: ServeContext, controller: CallController) -> SignallingBackend {
        let store = context.store
        let logger = context.logger
        @Sendable func session(_ token: String) async -> SessionRecord? {
            guard SignedSessionToken.looksSigned(token) else { return (try? await store.session(token: token)) ?? nil }
            do {
                return try await store.session(signedToken: token)
            } catch {
                logger.info("Signed session token refused", metadata: ["reason": "\(error)"])
                return nil
            }
        }
        return SignallingBackend(
            // Once a restart stops the services, a browser that reconnects waits for the new process.
            authorize: { token in
                guard context.restart.phase != .restarting else { return false }
                return await session(token) != nil
            },
            connect: { token, send in
                guard let record = await session(token) else { return nil }
                let session = BrowserSession(id: record.id, extension: record.extension,
                                             guest: record.guest.map { .init(from: $0.from, number: $0.service.number, serviceKey: $0.service.key) },
                                             expiresAt: record.expiresAt)
                return await controller.connect(session) { message in send(message?.json) }
            },
            receive: { text, connection in await controller.receive(text, from: connection) },
            disconnect: { connection in await controller.disconnect(connection) })
    }

    /// `turn:` and `turns:` URIs (RFC 7065) for the enabled transports, on the address
    /// browsers reach: the external address of the first relay address, else that address.
    static func turnURIs(_ turn: TandemConfiguration.TURN, settings: TURNSettings) -> [String] {
        let mappings = settings.externalAddresses.compactMap { try? ExternalAddressMapping(parsing: $0) }
        let relay = settings.relayAddresses.compactMap { IPAddress($0) }.first ?? .ipv4Loopback
        let public_ = mappings.externalAddress(for: relay) ?? relay
        let host = public_.family == .ipv6 ? "[\(public_)]" : public_.description
        return turn.transports.map { transport in
            switch transport {
            case .udp: "turn:\(host):\(turn.listenPort)?transport=udp"
            case .tcp: "turn:\(host):\(turn.listenPort)?transport=tcp"
            case .tls: "turns:\(host):\(turn.tlsPort)?transport=tcp"
            }
        }
    }
}
