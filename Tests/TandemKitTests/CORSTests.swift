import ControlAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Prometheus
import Testing

@testable import TandemKit

/// CORS only for /api/v1 and /webkit, only from the configured origins.
@Suite("CORS")
struct CORSTests {
    @Test func onlyConfiguredOriginsOnlyOnTheAPI() async throws {
        let backend = ControlAPIBackend(
            turnCredentials: { _, _ in TURNCredentialResponse(username: "u", password: "p", ttl: 600, uris: []) }, extensions: { [] },
            createSession: { _, _ in throw ControlAPIError(.conflict, "no_free_extension", "no free extension") }, sessions: { [] }, deleteSession: { _ in false })
        let router = ControlAPI.makeRouter(readiness: Readiness(), metrics: PrometheusCollectorRegistry(), strictTransportSecurity: true,
                                           oauth: OAuthTests.service(), api: backend, corsOrigins: ["https://app.example.com"])
        try await Application(router: router).test(.router) { client in
            let preflight: HTTPFields = [.origin: "https://app.example.com", .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "authorization"]
            try await client.execute(uri: "/api/v1/sessions", method: .options, headers: preflight) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == "https://app.example.com" && response.headers[.vary] == "Origin")
                #expect(response.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
                #expect(response.headers[.accessControlAllowMethods]?.contains("POST") == true)
            }
            // The real request gets the header too, even when refused for want of a token.
            try await client.execute(uri: "/api/v1/extensions", method: .get, headers: [.origin: "https://app.example.com"]) { response in
                #expect(response.status == .unauthorized && response.headers[.accessControlAllowOrigin] == "https://app.example.com")
            }
            try await client.execute(uri: "/api/v1/extensions", method: .get, headers: [.origin: "https://evil.example"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
            var evil = preflight
            evil[.origin] = "https://evil.example"
            try await client.execute(uri: "/api/v1/sessions", method: .options, headers: evil) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil && response.status != .noContent)
            }
            // Never the token endpoint (it takes client secrets) nor anything else.
            try await client.execute(uri: "/oauth/token", method: .options, headers: preflight) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
            try await client.execute(uri: "/healthz", method: .get, headers: [.origin: "https://app.example.com"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil)
            }
            try await client.execute(uri: "/api/v1/nowhere", method: .get, headers: [.origin: "https://app.example.com"]) { response in
                #expect(response.status == .notFound && response.headers[.accessControlAllowOrigin] == "https://app.example.com")
            }
        }
    }

    @Test func originsAreChecked() async throws {
        let good = try TandemConfiguration.parse(["http.cors-origins": .list(["https://app.example.com", "http://localhost:8080", "*"])])
        #expect(good.http.corsOrigins == ["https://app.example.com", "http://localhost:8080", "*"])
        for bad in ["app.example.com", "https://app.example.com/path", "ftp://x"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try TandemConfiguration.parse(["http.cors-origins": .list([bad])]) }
        }
    }
}
