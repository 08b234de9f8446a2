import ControlAPI
import Foundation
import Gateway
import Media
import SIPUA
import Store

extension TandemServer {
    /// What `/api/v1` serves: TURN credentials from the stored secret with the URIs of this
    /// node's TURN listeners, and the extensions with their registration state.
    static func apiBackend(_ context: ServeContext, registrations: RegistrationAgent?, controller: CallController? = nil) -> ControlAPIBackend {
        let store = context.store
        let turn = context.configuration.turn
        let lifetime = TimeInterval(context.configuration.http.sessionLifetime)
        @Sendable func credentials(_ user: String?, _ ttl: Int?) async throws -> TURNCredentialResponse {
            let settings = try await store.turnSettings()
            let credential = TURNCredentials.issue(settings: settings, user: user, ttl: ttl)
            return TURNCredentialResponse(username: credential.username, password: credential.password, ttl: ttl ?? settings.credentialTTL,
                                          uris: turn.enabled ? turnURIs(turn, settings: settings) : [])
        }
        @Sendable func response(_ session: SessionRecord, token: String?, ice: [ICEServer]?) -> SessionResponse {
            var response = SessionResponse(id: session.id, token: token, extension: session.extension, clientID: session.clientID,
                                           expiresAt: ISO8601DateFormatter().string(from: session.expiresAt), iceServers: ice)
            response.guest = session.guest.map {
                .init(from: $0.from, destination: $0.service.key, displayName: $0.service.displayName.isEmpty ? nil : $0.service.displayName)
            }
            return response
        }
        @Sendable func iceServers(_ user: String?) async throws -> [ICEServer]? {
            guard turn.enabled else { return nil }
            let credential = try await credentials(user, nil)
            return [ICEServer(urls: credential.uris, username: credential.username, credential: credential.password)]
        }
        return ControlAPIBackend(
            turnCredentials: credentials,
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
                do {
                    let (session, token) = try await store.createGuestSession(from: from, service: destination, clientID: clientID, lifetime: lifetime)
                    return response(session, token: token, ice: try await iceServers("guest"))
                } catch StoreError.unknownService(let key) {
                    throw ControlAPIError(.notFound, "unknown_service", "no service \(key)")
                }
            })
    }

    /// The demo application server (`http.demo`): guest sessions for anyone, of the built-in
    /// echo service (made on first use) or of a configured service.
    static func demoBackend(_ context: ServeContext) -> DemoSessions {
        let store = context.store
        let lifetime = TimeInterval(min(context.configuration.http.sessionLifetime, 3600))
        let ice = { @Sendable () async throws -> [ICEServer]? in
            guard context.configuration.turn.enabled else { return nil }
            let settings = try await store.turnSettings()
            let credential = TURNCredentials.issue(settings: settings, user: "demo", ttl: nil)
            return [ICEServer(urls: turnURIs(context.configuration.turn, settings: settings), username: credential.username, credential: credential.password)]
        }
        return DemoSessions { service, from in
            let key = service ?? "echo"
            if key == "echo" { try await store.putService(ServiceRecord(key: "echo", number: "echo", displayName: "Echo test")) }
            do {
                let (session, token) = try await store.createGuestSession(from: from ?? "demo", service: key, clientID: "demo", lifetime: lifetime)
                var response = SessionResponse(id: session.id, token: token, extension: nil, clientID: "demo",
                                               expiresAt: ISO8601DateFormatter().string(from: session.expiresAt), iceServers: try await ice())
                response.guest = .init(from: from ?? "demo", destination: key, displayName: session.guest?.service.displayName)
                return response
            } catch StoreError.unknownService(let key) {
                throw ControlAPIError(.notFound, "unknown_service", "no service \(key)")
            }
        }
    }

    /// `/webkit/ws`: a session token from the database joins its socket to the call controller.
    static func signallingBackend(_ context: ServeContext, controller: CallController) -> SignallingBackend {
        let store = context.store
        return SignallingBackend(
            authorize: { token in ((try? await store.session(token: token)) ?? nil) != nil },
            connect: { token, send in
                guard let record = (try? await store.session(token: token)) ?? nil else { return nil }
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
