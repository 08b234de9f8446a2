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
    /// `free` (not registered), `registering`, `registered` or `failed`.
    public var state: String
    public var realm: String?
    /// Why the last registration failed (`401 Wrong credentials`, `Timeout`, …).
    public var failure: String?

    public init(extension number: String, state: String, realm: String? = nil, failure: String? = nil) {
        self.extension = number
        self.state = state
        self.realm = realm
        self.failure = failure
    }
}

/// What `/api/v1` serves, supplied by `tandem serve` (the Store, the TURN settings, the SIP side).
public struct ControlAPIBackend: Sendable {
    /// Credentials for `user` (nil: none in the username) valid `ttl` seconds (nil: the stored TTL).
    public var turnCredentials: @Sendable (_ user: String?, _ ttl: Int?) async throws -> TURNCredentialResponse
    public var extensions: @Sendable () async throws -> [ExtensionStatus]

    public init(turnCredentials: @escaping @Sendable (String?, Int?) async throws -> TURNCredentialResponse,
                extensions: @escaping @Sendable () async throws -> [ExtensionStatus]) {
        self.turnCredentials = turnCredentials
        self.extensions = extensions
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

    static func add(to router: Router<BasicRequestContext>, oauth: OAuthTokenService, backend: ControlAPIBackend) {
        let api = router.group("api/v1")
        api.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPIDocument))
        }
        api.post("turn-credentials") { request, _ -> Response in
            var request = request
            if let denied = await deny(request, scope: "turn", oauth: oauth) { return denied }
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
        }
        api.get("extensions") { request, _ -> Response in
            if let denied = await deny(request, scope: "extensions", oauth: oauth) { return denied }
            return json(.ok, ["extensions": try await backend.extensions()])
        }
    }

    /// The 401/403 for a request without a valid token of `scope`, else nil.
    static func deny(_ request: Request, scope: String, oauth: OAuthTokenService) async -> Response? {
        do {
            _ = try await oauth.authenticate(authorization: request.headers[.authorization], scope: scope)
            return nil
        } catch {
            return OAuthTokenService.errorResponse(error, basicChallenge: false)
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
