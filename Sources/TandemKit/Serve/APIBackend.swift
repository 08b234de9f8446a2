import ControlAPI
import Foundation
import SIPUA
import Store

extension TandemServer {
    /// What `/api/v1` serves: TURN credentials from the stored secret with the URIs of this
    /// node's TURN listeners, and the extensions with their registration state.
    static func apiBackend(_ context: ServeContext, registrations: RegistrationAgent?) -> ControlAPIBackend {
        let store = context.store
        let turn = context.configuration.turn
        return ControlAPIBackend(
            turnCredentials: { user, ttl in
                let settings = try await store.turnSettings()
                let credential = TURNCredentials.issue(settings: settings, user: user, ttl: ttl)
                return TURNCredentialResponse(username: credential.username, password: credential.password, ttl: ttl ?? settings.credentialTTL,
                                              uris: turn.enabled ? turnURIs(turn, settings: settings) : [])
            },
            extensions: {
                let states = registrations?.extensionStates ?? [:]
                let failures = registrations?.summary.failures ?? [:]
                return try await store.extensions().map { record in
                    let state = states[record.number].map { $0 == "unregistered" ? "free" : $0 } ?? "free"
                    return ExtensionStatus(extension: record.number, state: state, realm: record.realm.isEmpty ? nil : record.realm,
                                           failure: state == "failed" ? failures[record.number] : nil)
                }
            })
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
