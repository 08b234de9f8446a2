import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// TURN REST API credentials as the control API hands them out (draft-uberti-behave-turn-rest-00
/// §2.2): username, password, lifetime and the TURN URIs to use them on.
public struct TURNCredentialResponse: Codable, Sendable, Equatable {
    public var username: String
    public var password: String
    public var ttl: Int
    public var uris: [String]

    public init(username: String, password: String, ttl: Int, uris: [String]) {
        self.username = username
        self.password = password
        self.ttl = ttl
        self.uris = uris
    }
}

/// An extension as `GET /api/v1/extensions` lists it.
public struct ExtensionStatus: Codable, Sendable, Equatable {
    public var `extension`: String
    /// `free` (no session holds it), `allocated` (a session holds it, not registered),
    /// `registering`, `registered`, `failed` (its registration), or `in call`.
    public var state: String
    public var realm: String?
    /// Why the last registration failed (`401 Wrong credentials`, `Timeout`, …).
    public var failure: String?

    /// The state shown for a registration state (`unregistered`, `registering`, `registered`,
    /// `failed`), whether a session holds the extension, and whether it is in a call.
    public static func state(registration: String, held: Bool, inCall: Bool) -> String {
        if inCall { return "in call" }
        if registration != "unregistered" { return registration }
        return held ? "allocated" : "free"
    }

    public init(extension number: String, state: String, realm: String? = nil, failure: String? = nil) {
        self.extension = number
        self.state = state
        self.realm = realm
        self.failure = failure
    }
}

/// An ICE server as `RTCPeerConnection` takes it (W3C WebRTC §4.2.1).
public struct ICEServer: Codable, Sendable, Equatable {
    public var urls: [String]
    public var username: String
    public var credential: String

    public init(urls: [String], username: String, credential: String) {
        self.urls = urls
        self.username = username
        self.credential = credential
    }
}

/// A browser session as `POST /api/v1/sessions` answers it: the token the browser presents,
/// the extension it holds, when it ends, and the TURN servers to reach Tandem through.
public struct SessionResponse: Codable, Sendable, Equatable {
    public var id: String
    /// Shown once; only its hash is kept.
    public var token: String?
    public var `extension`: String?
    public var clientID: String
    public var expiresAt: String
    public var iceServers: [ICEServer]?
    /// Where the browser opens its signalling socket (`wss://host:port/webkit/ws`), with the token as `?token=`.
    public var websocketURL: String?
    /// A click-to-contact session: the caller's number and the service it may call.
    public var guest: Guest?

    public struct Guest: Codable, Sendable, Equatable {
        public var from: String
        public var destination: String
        public var displayName: String?
        public init(from: String, destination: String, displayName: String?) {
            self.from = from
            self.destination = destination
            self.displayName = displayName
        }
    }

    public init(id: String, token: String?, extension number: String?, clientID: String, expiresAt: String, iceServers: [ICEServer]?) {
        self.id = id
        self.token = token
        self.extension = number
        self.clientID = clientID
        self.expiresAt = expiresAt
        self.iceServers = iceServers
    }
}

/// A bridged call as `GET /api/v1/calls` lists it, with the quality of the browser's stream
/// as Tandem receives it (RFC 3550 §6.4.1 jitter and loss; round trip from the browser's
/// receiver reports; MOS by the simplified E-model of ITU-T G.107).
public struct CallStatus: Codable, Sendable, Equatable {
    public var call: String
    public var session: String
    public var direction: String
    public var `extension`: String?
    public var remote: String
    /// calling, early, answering, confirmed
    public var state: String
    public var held: Bool
    public var startedAt: String
    public var codec: String?
    public var mode: String?
    public var jitterMs: Double?
    public var lossPercent: Double?
    public var rttMs: Double?
    public var mos: Double?

    public init(call: String, session: String, direction: String, extension number: String?, remote: String, state: String, held: Bool, startedAt: String,
                codec: String? = nil, mode: String? = nil, jitterMs: Double? = nil, lossPercent: Double? = nil, rttMs: Double? = nil, mos: Double? = nil) {
        self.call = call
        self.session = session
        self.direction = direction
        self.extension = number
        self.remote = remote
        self.state = state
        self.held = held
        self.startedAt = startedAt
        self.codec = codec
        self.mode = mode
        self.jitterMs = jitterMs
        self.lossPercent = lossPercent
        self.rttMs = rttMs
        self.mos = mos
    }
}

/// An error a backend call reports to the API client: its status, code and text.
public struct ControlAPIError: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var description: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ description: String) {
        self.status = status
        self.code = code
        self.description = description
    }
}

/// What `/api/v1` serves, supplied by `tandem serve` (the Store, the TURN settings, the SIP side).
public struct ControlAPIBackend: Sendable {
    /// Credentials for `user` (nil: none in the username) valid `ttl` seconds (nil: the stored TTL).
    public var turnCredentials: @Sendable (_ user: String?, _ ttl: Int?) async throws -> TURNCredentialResponse
    public var extensions: @Sendable () async throws -> [ExtensionStatus]
    /// A session for `extension` (nil: any free one) made by `clientID`; throws ``ControlAPIError``.
    public var createSession: @Sendable (_ extension: String?, _ clientID: String) async throws -> SessionResponse
    public var sessions: @Sendable () async throws -> [SessionResponse]
    /// Ends a session; whether it existed.
    public var deleteSession: @Sendable (_ id: String) async throws -> Bool
    public var calls: @Sendable () async throws -> [CallStatus]
    /// A guest session of caller `from` for the service `destination`; throws ``ControlAPIError``.
    public var createGuestSession: @Sendable (_ from: String, _ destination: String, _ clientID: String) async throws -> SessionResponse
    /// The export file (JSON) with the extensions and/or the configuration without secrets.
    public var exportFile: @Sendable (_ extensions: Bool, _ configuration: Bool) async throws -> Data
    /// Checks an export file and, unless `dryRun`, applies it; returns `{"applied": …, "plan": …}`
    /// as JSON. Throws ``ControlAPIError`` for a file that cannot be imported.
    public var importFile: @Sendable (_ bytes: [UInt8], _ dryRun: Bool) async throws -> Data

    public init(turnCredentials: @escaping @Sendable (String?, Int?) async throws -> TURNCredentialResponse,
                extensions: @escaping @Sendable () async throws -> [ExtensionStatus],
                createSession: @escaping @Sendable (String?, String) async throws -> SessionResponse,
                sessions: @escaping @Sendable () async throws -> [SessionResponse],
                deleteSession: @escaping @Sendable (String) async throws -> Bool,
                calls: @escaping @Sendable () async throws -> [CallStatus] = { [] },
                createGuestSession: @escaping @Sendable (String, String, String) async throws -> SessionResponse = { _, d, _ in
                    throw ControlAPIError(.notFound, "unknown_service", "no service \(d)")
                },
                exportFile: @escaping @Sendable (Bool, Bool) async throws -> Data = { _, _ in throw ControlAPIError(.notFound, "no_export", "export is not available") },
                importFile: @escaping @Sendable ([UInt8], Bool) async throws -> Data = { _, _ in throw ControlAPIError(.notFound, "no_import", "import is not available") }) {
        self.exportFile = exportFile
        self.importFile = importFile
        self.calls = calls
        self.createGuestSession = createGuestSession
        self.turnCredentials = turnCredentials
        self.extensions = extensions
        self.createSession = createSession
        self.sessions = sessions
        self.deleteSession = deleteSession
    }
}

/// The control API under `/api/v1`, for application servers (DESIGN.md "Interfaces"): every
/// route needs a Bearer token from `/oauth/token` with the route's scope (RFC 6750), except
/// the OpenAPI document at `/api/v1/openapi.yaml`, which describes them.
enum APIRoutes {
    /// The OpenAPI 3 document of the HTTPS listener (the contract; `Sources/ControlAPI/openapi.yaml`).
    static let openAPIDocument: ByteBuffer = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"), let data = try? Data(contentsOf: url) else {
            return ByteBuffer(string: "openapi: 3.1.0\n")
        }
        return ByteBuffer(bytes: data)
    }()

    static func add(to router: Router<HTTPSRequestContext>, oauth: OAuthTokenService, backend: ControlAPIBackend) {
        let api = router.group("api/v1")
        api.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPIDocument))
        }
        api.post("turn-credentials", use: guarded("turn", oauth) { request, _, _ in
            var request = request
            let body = try await request.collectBody(upTo: 4096)
            struct Ask: Decodable {
                var user: String?
                var ttl: Int?
            }
            var ask = Ask(user: nil, ttl: nil)
            if body.readableBytes > 0 {
                guard let decoded = try? JSONDecoder().decode(Ask.self, from: Data(buffer: body)) else {
                    return problem(.badRequest, "invalid_body", "the body must be JSON like {\"user\": \"agent-7\", \"ttl\": 600}")
                }
                ask = decoded
            }
            if let ttl = ask.ttl, !(60...86_400).contains(ttl) { return problem(.badRequest, "invalid_ttl", "ttl must be 60–86400 seconds") }
            if let user = ask.user, user.utf8.count > 128 || user.contains(":") || user.contains(where: \.isNewline) {
                return problem(.badRequest, "invalid_user", "user must be at most 128 characters without ':' or line breaks")
            }
            return json(.ok, try await backend.turnCredentials(ask.user, ask.ttl))
        })
        api.get("extensions", use: guarded("extensions", oauth) { _, _, _ in
            json(.ok, ["extensions": try await backend.extensions()])
        })
        api.post("sessions", use: guarded("sessions", oauth) { request, _, claims in
            var request = request
            let body = try await request.collectBody(upTo: 4096)
            struct Guest: Decodable {
                var from: String
                var destination: String
            }
            struct Ask: Decodable {
                var `extension`: String?
                var guest: Guest?
            }
            var ask = Ask(extension: nil, guest: nil)
            if body.readableBytes > 0 {
                guard let decoded = try? JSONDecoder().decode(Ask.self, from: Data(buffer: body)) else {
                    return problem(.badRequest, "invalid_body", "the body must be JSON like {\"extension\": \"3001\"}, {\"guest\": {\"from\": \"+4989…\", \"destination\": \"sales\"}}, or empty for any free extension")
                }
                ask = decoded
            }
            if let guest = ask.guest {
                guard ask.extension == nil else { return problem(.badRequest, "invalid_body", "a session holds an extension or is a guest, not both") }
                guard isCallerNumber(guest.from) else { return problem(.badRequest, "invalid_from", "guest.from must be a phone number: an optional + and 2–20 digits") }
                guard !guest.destination.isEmpty, guest.destination.utf8.count <= 64 else { return problem(.badRequest, "invalid_destination", "guest.destination must be a service key of 1–64 characters") }
            }
            do {
                var session = if let guest = ask.guest {
                    try await backend.createGuestSession(guest.from, guest.destination, claims.sub.value)
                } else {
                    try await backend.createSession(ask.extension, claims.sub.value)
                }
                session.websocketURL = WebKitRoutes.websocketURL(request)
                return json(.created, session)
            } catch let error as ControlAPIError {
                return problem(error.status, error.code, error.description)
            }
        })
        api.get("export", use: guarded("extensions", oauth) { request, _, _ in
            let parts = (request.uri.queryParameters.get("include") ?? "extensions,configuration").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 == "extensions" || $0 == "configuration" }) else {
                return problem(.badRequest, "invalid_include", "include is a comma-separated list of extensions and configuration")
            }
            let data = try await backend.exportFile(parts.contains("extensions"), parts.contains("configuration"))
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(data: data)))
        })
        api.post("import", use: guarded("extensions", oauth) { request, _, _ in
            let dryRun: Bool
            switch request.uri.queryParameters.get("dryRun") {
            case nil, "false": dryRun = false
            case "true": dryRun = true
            default: return problem(.badRequest, "invalid_dry_run", "dryRun is true or false")
            }
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: importLimit)
            } catch {
                return problem(.contentTooLarge, "too_large", "the file is larger than \(importLimit >> 20) MiB")
            }
            do {
                let data = try await backend.importFile(Array(buffer: body), dryRun)
                return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(data: data)))
            } catch let error as ControlAPIError {
                return problem(error.status, error.code, error.description)
            }
        })
        api.get("calls", use: guarded("calls", oauth) { _, _, _ in
            json(.ok, ["calls": try await backend.calls()])
        })
        api.get("sessions", use: guarded("sessions", oauth) { _, _, _ in
            json(.ok, ["sessions": try await backend.sessions()])
        })
        api.delete("sessions/:id", use: guarded("sessions", oauth) { _, context, _ in
            let id = context.parameters.get("id") ?? ""
            guard try await backend.deleteSession(id) else { return problem(.notFound, "unknown_session", "no live session \(id)") }
            return Response(status: .noContent)
        })
    }

    /// The largest export file `POST /api/v1/import` takes.
    static let importLimit = 32 << 20

    /// A caller id a guest may present: an optional `+` and 2–20 digits (E.164 is at most 15).
    static func isCallerNumber(_ text: String) -> Bool {
        let digits = text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        return (2...20).contains(digits.count) && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// A route handler that runs only for a valid Bearer token with `scope`; others get the
    /// 401 or 403 of RFC 6750 §3.1.
    static func guarded(
        _ scope: String, _ oauth: OAuthTokenService,
        _ body: @escaping @Sendable (Request, HTTPSRequestContext, AccessTokenClaims) async throws -> Response
    ) -> @Sendable (Request, HTTPSRequestContext) async throws -> Response {
        { request, context in
            let claims: AccessTokenClaims
            do throws(OAuthError) {
                claims = try await oauth.authenticate(authorization: request.headers[.authorization], scope: scope)
            } catch {
                return OAuthTokenService.errorResponse(error, basicChallenge: false)
            }
            return try await body(request, context, claims)
        }
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// An error body: `{"error": code, "error_description": text}`, as the token endpoint's.
    static func problem(_ status: HTTPResponse.Status, _ code: String, _ description: String) -> Response {
        json(status, ["error": code, "error_description": description])
    }
}
