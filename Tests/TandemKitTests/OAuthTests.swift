import ControlAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Prometheus
import Synchronization
import Testing

@testable import ControlAPI

/// The token endpoint (RFC 6749 §4.4 and every §5.2 error that applies to the client
/// credentials grant) and bearer tokens (RFC 6750): issue, verify, expiry, scope.
@Suite("OAuth token endpoint")
struct OAuthTests {
    static let clients: [String: (secret: String, minutes: Int)] = ["app": ("s3cret:+/", 20), "forever": ("x", 0)]

    static func service(key: [UInt8] = Array(repeating: 7, count: 32)) -> OAuthTokenService {
        OAuthTokenService(signingKey: key, verifyClient: { id, secret in
            guard let client = clients[id], client.secret == secret else { return nil }
            return OAuthClientGrant(clientID: id, tokenValidityMinutes: client.minutes)
        }, logger: Logger(label: "test"))
    }

    static func basic(_ id: String, _ secret: String) -> String {
        func encode(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s }
        return "Basic " + Data("\(encode(id)):\(encode(secret))".utf8).base64EncodedString()
    }

    static func post(_ client: some TestClientProtocol, body: String, authorization: String? = nil, contentType: String = "application/x-www-form-urlencoded",
                     _ check: @escaping (TestResponse, [String: Any]) throws -> Void) async throws {
        var headers: HTTPFields = [.contentType: contentType]
        if let authorization { headers[.authorization] = authorization }
        try await client.execute(uri: "/oauth/token", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
            #expect(response.headers[.cacheControl] == "no-store")
            try check(response, json)
        }
    }

    @Test func issuesTokensByBasicAndByForm() async throws {
        let service = Self.service()
        let app = Application(router: ControlAPI.makeRouter(readiness: Readiness(), metrics: PrometheusCollectorRegistry(), strictTransportSecurity: true, oauth: service))
        try await app.test(.router) { client in
            var token = ""
            try await Self.post(client, body: "grant_type=client_credentials", authorization: Self.basic("app", "s3cret:+/")) { response, json in
                #expect(response.status == .ok && response.headers[OAuthTokenService.pragma] == "no-cache")
                #expect(json["token_type"] as? String == "Bearer" && json["expires_in"] as? Int == 1200)
                #expect(json["scope"] as? String == OAuthTokenService.scopes.joined(separator: " "))
                token = json["access_token"] as? String ?? ""
            }
            let claims = try await service.authenticate(authorization: "Bearer \(token)", scope: "sessions")
            #expect(claims.sub.value == "app" && claims.exp != nil)
            try await Self.post(client, body: "grant_type=client_credentials&client_id=app&client_secret=s3cret%3A%2B%2F&scope=turn") { response, json in
                #expect(response.status == .ok && json["scope"] as? String == "turn")
                token = json["access_token"] as? String ?? ""
            }
            await #expect(throws: OAuthError(code: .insufficientScope, description: "the token lacks the scope sessions")) {
                try await service.authenticate(authorization: "Bearer \(token)", scope: "sessions")
            }
            // Validity 0: no expiry at all (and a warning in the log).
            try await Self.post(client, body: "grant_type=client_credentials", authorization: Self.basic("forever", "x")) { response, json in
                #expect(response.status == .ok && json["expires_in"] == nil)
                token = json["access_token"] as? String ?? ""
            }
            #expect(try await service.authenticate(authorization: "Bearer \(token)", scope: "calls").exp == nil)
        }
    }

    @Test func everyErrorOfSection5_2() async throws {
        let app = Application(router: ControlAPI.makeRouter(readiness: Readiness(), metrics: PrometheusCollectorRegistry(), strictTransportSecurity: true, oauth: Self.service()))
        try await app.test(.router) { client in
            func expectError(_ body: String, authorization: String? = nil, contentType: String = "application/x-www-form-urlencoded",
                             _ code: String, _ status: HTTPResponse.Status, challenge: Bool = false) async throws {
                try await Self.post(client, body: body, authorization: authorization, contentType: contentType) { response, json in
                    #expect(response.status == status, "\(body)")
                    #expect(json["error"] as? String == code, "\(body): \(json)")
                    #expect(json["error_description"] as? String != nil)
                    #expect((response.headers[.wwwAuthenticate]?.hasPrefix("Basic") == true) == challenge, "\(body)")
                }
            }
            try await expectError("", authorization: Self.basic("app", "s3cret:+/"), "invalid_request", .badRequest)
            try await expectError("grant_type=client_credentials&grant_type=client_credentials", authorization: Self.basic("app", "s3cret:+/"), "invalid_request", .badRequest)
            try await expectError("grant_type=client_credentials&client_id=app&client_secret=s3cret", authorization: Self.basic("app", "s3cret:+/"), "invalid_request", .badRequest)
            try await expectError("{\"grant_type\":\"client_credentials\"}", authorization: Self.basic("app", "s3cret:+/"), contentType: "application/json", "invalid_request", .badRequest)
            try await expectError("grant_type=client_credentials&client_id=%zz", "invalid_request", .badRequest)
            try await expectError("grant_type=client_credentials", authorization: Self.basic("app", "wrong"), "invalid_client", .unauthorized, challenge: true)
            try await expectError("grant_type=client_credentials", authorization: "Basic !!!", "invalid_client", .unauthorized, challenge: true)
            try await expectError("grant_type=client_credentials&client_id=nobody&client_secret=x", "invalid_client", .unauthorized)
            try await expectError("grant_type=client_credentials", "invalid_client", .unauthorized)
            try await expectError("grant_type=password&username=a&password=b", authorization: Self.basic("app", "s3cret:+/"), "unsupported_grant_type", .badRequest)
            try await expectError("grant_type=authorization_code&code=x", authorization: Self.basic("app", "s3cret:+/"), "unsupported_grant_type", .badRequest)
            try await expectError("grant_type=client_credentials&scope=admin", authorization: Self.basic("app", "s3cret:+/"), "invalid_scope", .badRequest)
        }
    }

    /// RFC 7519 §4.1.4: a token past its expiry is refused; so is one signed with another key.
    @Test func aRevokedClientsTokensStopAtOnce() async throws {
        let revoked = Mutex<Set<String>>([])
        let service = OAuthTokenService(signingKey: Array(repeating: 7, count: 32), verifyClient: { id, secret in
            guard let client = Self.clients[id], client.secret == secret else { return nil }
            return OAuthClientGrant(clientID: id, tokenValidityMinutes: client.minutes)
        }, isClientActive: { id in !revoked.withLock { $0.contains(id) } }, logger: Logger(label: "test"))
        let (json, _) = try await service.issue(.init(clientID: "app", secret: "s3cret:+/", usedBasic: true, scopes: ["turn"]))
        let token = try #require(json["access_token"] as? String)
        #expect(try await service.authenticate(authorization: "Bearer \(token)", scope: "turn").sub.value == "app")
        revoked.withLock { _ = $0.insert("app") }
        await #expect(throws: OAuthError(code: .invalidToken, description: "the token's client was revoked")) {
            try await service.authenticate(authorization: "Bearer \(token)", scope: "turn")
        }
    }

    @Test func expiredAndForeignTokensAreRefused() async throws {
        let service = Self.service()
        let request = OAuthTokenService.TokenRequest(clientID: "app", secret: "s3cret:+/", usedBasic: true, scopes: ["sessions"])
        let (old, _) = try await service.issue(request, now: Date().addingTimeInterval(-3600))
        await #expect(throws: OAuthError.self) { try await service.authenticate(authorization: "Bearer \(old["access_token"] as? String ?? "")", scope: "sessions") }
        let (fresh, _) = try await Self.service(key: Array(repeating: 9, count: 32)).issue(request)
        await #expect(throws: OAuthError(code: .invalidToken, description: "the token is invalid or expired")) {
            try await service.authenticate(authorization: "Bearer \(fresh["access_token"] as? String ?? "")", scope: "sessions")
        }
        await #expect(throws: OAuthError.self) { try await service.authenticate(authorization: nil, scope: "sessions") }
        await #expect(throws: OAuthError.self) { try await service.authenticate(authorization: "Basic abc", scope: "sessions") }
    }

    /// `/api/v1`: each route needs a Bearer token with its scope (401 without, 403 with
    /// another scope); the OpenAPI document is public and is the file in the repository.
    @Test func apiRoutesNeedTokensWithTheirScope() async throws {
        let service = Self.service()
        let backend = ControlAPIBackend(
            turnCredentials: { user, ttl in TURNCredentialResponse(username: "1700000000:\(user ?? "")", password: "p", ttl: ttl ?? 600, uris: ["turn:192.0.2.1:3478?transport=udp"]) },
            extensions: { [ExtensionStatus(extension: "3001", state: "registered"), ExtensionStatus(extension: "3002", state: "failed", failure: "401 Wrong credentials")] },
            createSession: { number, client in
                guard number != "3001" else { throw ControlAPIError(.conflict, "extension_in_use", "extension 3001 is held by a live session") }
                return SessionResponse(id: "s1", token: "t", extension: number ?? "3002", clientID: client, expiresAt: "2026-12-02T12:00:00Z", iceServers: [])
            },
            sessions: { [SessionResponse(id: "s1", token: nil, extension: "3002", clientID: "app", expiresAt: "2026-12-02T12:00:00Z", iceServers: nil)] },
            deleteSession: { $0 == "s1" })
        let app = Application(router: ControlAPI.makeRouter(readiness: Readiness(), metrics: PrometheusCollectorRegistry(), strictTransportSecurity: true, oauth: service, api: backend))
        try await app.test(.router) { client in
            var all = "", turnOnly = ""
            try await Self.post(client, body: "grant_type=client_credentials", authorization: Self.basic("app", "s3cret:+/")) { _, json in all = json["access_token"] as? String ?? "" }
            try await Self.post(client, body: "grant_type=client_credentials&scope=turn", authorization: Self.basic("app", "s3cret:+/")) { _, json in turnOnly = json["access_token"] as? String ?? "" }
            try await client.execute(uri: "/api/v1/turn-credentials", method: .post, headers: [.authorization: "Bearer \(turnOnly)", .contentType: "application/json"],
                                     body: ByteBuffer(string: #"{"user": "agent-7", "ttl": 300}"#)) { response in
                #expect(response.status == .ok)
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(json?["username"] as? String == "1700000000:agent-7" && json?["ttl"] as? Int == 300 && (json?["uris"] as? [String])?.count == 1)
            }
            try await client.execute(uri: "/api/v1/turn-credentials", method: .post, headers: [.authorization: "Bearer \(turnOnly)"],
                                     body: ByteBuffer(string: #"{"ttl": 5}"#)) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/api/v1/extensions", method: .get, headers: [.authorization: "Bearer \(all)"]) { response in
                #expect(response.status == .ok)
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: [[String: Any]]]
                #expect(json?["extensions"]?.map { $0["state"] as? String } == ["registered", "failed"])
            }
            try await client.execute(uri: "/api/v1/extensions", method: .get, headers: [.authorization: "Bearer \(turnOnly)"]) { response in
                #expect(response.status == .forbidden && response.headers[.wwwAuthenticate]?.contains("insufficient_scope") == true)
            }
            try await client.execute(uri: "/api/v1/extensions", method: .get) { response in
                #expect(response.status == .unauthorized && response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            }
            try await client.execute(uri: "/api/v1/extensions", method: .get, headers: [.authorization: "Bearer not.a.jwt"]) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/api/v1/sessions", method: .post, headers: [.authorization: "Bearer \(all)"], body: ByteBuffer(string: #"{"extension": "3001"}"#)) { response in
                #expect(response.status == .conflict)
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(json?["error"] as? String == "extension_in_use")
            }
            try await client.execute(uri: "/api/v1/sessions", method: .post, headers: [.authorization: "Bearer \(all)"]) { response in
                #expect(response.status == .created)
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(json?["extension"] as? String == "3002" && json?["clientID"] as? String == "app" && json?["token"] as? String == "t")
            }
            try await client.execute(uri: "/api/v1/sessions", method: .post, headers: [.authorization: "Bearer \(turnOnly)"]) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/sessions", method: .get, headers: [.authorization: "Bearer \(all)"]) { response in
                let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: [[String: Any]]]
                #expect(response.status == .ok && json?["sessions"]?.count == 1 && json?["sessions"]?.first?["token"] == nil)
            }
            try await client.execute(uri: "/api/v1/sessions/s1", method: .delete, headers: [.authorization: "Bearer \(all)"]) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/api/v1/sessions/nope", method: .delete, headers: [.authorization: "Bearer \(all)"]) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/api/v1/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                let file = try String(contentsOfFile: repositoryRoot + "/Sources/ControlAPI/openapi.yaml", encoding: .utf8)
                #expect(String(buffer: response.body) == file)
            }
        }
    }
}
