import ControlAPI
import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import NIOSSL
import Prometheus
import ServiceLifecycle
import Store
import Testing

@testable import TandemKit

@Suite("tandem serve wiring")
struct TandemServerTests {
    /// Runs the whole service group on an ephemeral port over real TLS, checks the
    /// endpoints with a client that trusts only the generated certificate (so its SANs are
    /// right), then shuts down gracefully and checks the Store was closed last.
    @Test func servesHTTPSAndShutsDownGracefully() async throws {
        let directory = try TemporaryDirectory()
        var configuration = TandemConfiguration()
        configuration.http = .init(listenAddress: .ipv4Loopback, port: 0)
        configuration.storage.dataDirectory = directory.path + "/data"
        configuration.turn.seed.relayAddresses = [.ipv4Loopback]
        let logger = Logger(label: "test.serve")

        // Start order with TURN and media: Store → TURN → media → dashboard sampler → HTTPS (services are only built here, not run).
        let withTURN = TandemServer(configuration: configuration, metrics: PrometheusCollectorRegistry(), logger: logger)
        let turnContext = try withTURN.prepare()
        #expect(try withTURN.makeServices(turnContext).map(\.serviceName) == ["store", "turn", "media", "dashboard", "https"])
        try turnContext.store.close()

        // This test runs HTTPS only; TURN and media have their own tests.
        configuration.turn.enabled = false
        configuration.media.enabled = false
        let server = TandemServer(configuration: configuration, metrics: PrometheusCollectorRegistry(), logger: logger)
        let context = try server.prepare()
        #expect(turnContext.store.initialCredentials?.clientID == "default-client-id")
        #expect(context.store.initialCredentials == nil, "seeded by the first prepare")
        #expect(context.tls.material.isSelfSigned)
        #expect(context.readiness.names == ["database"])
        #expect(try server.makeServices(context).map(\.serviceName) == ["store", "dashboard", "https"])

        var signingKey: TokenSigningKey?
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let group = try server.makeServiceGroup(context, gracefulShutdownSignals: []) { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ports = portStream.makeAsyncIterator()
            let port = try #require(await ports.next())

            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(context.tls.material.certificateChain)
            let client = TestClient(host: "127.0.0.1", port: port, configuration: .init(tlsConfiguration: tls, serverName: "localhost"))
            client.connect()
            let health = try await client.get("/healthz")
            #expect(health.status == .ok)
            #expect(health.body.map { String(buffer: $0) } == "ok\n")
            #expect(health.headers[.strictTransportSecurity] != nil)
            let ready = try await client.get("/readyz")
            #expect(ready.status == .ok)
            let metrics = try await client.get("/metrics")
            #expect(metrics.status == .ok)
            // The client and secret generated on first start get a token over real TLS (RFC 6749 §4.4).
            let initial = try #require(turnContext.store.initialCredentials)
            let basic = "Basic " + Data("\(initial.clientID):\(initial.clientSecret)".utf8).base64EncodedString()
            let token = try await client.post("/oauth/token", headers: [.authorization: basic, .contentType: "application/x-www-form-urlencoded"],
                                              body: ByteBuffer(string: "grant_type=client_credentials"))
            #expect(token.status == .ok)
            let json = try JSONSerialization.jsonObject(with: Data(buffer: try #require(token.body))) as? [String: Any]
            #expect(json?["token_type"] as? String == "Bearer" && json?["expires_in"] as? Int == 1200)
            let wrong = try await client.post("/oauth/token", headers: [.authorization: "Basic " + Data("\(initial.clientID):nope".utf8).base64EncodedString(),
                                                                       .contentType: "application/x-www-form-urlencoded"],
                                              body: ByteBuffer(string: "grant_type=client_credentials"))
            #expect(wrong.status == .unauthorized)
            signingKey = try context.store.tokenSigningKey()
            try await client.shutdown()

            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(await context.store.isHealthy() == false, "the Store closes when the group stops")

        // Restart on the same data: no new seed, same certificate.
        let again = try server.prepare()
        #expect(again.store.initialCredentials == nil)
        #expect(again.tls.material.certificateChain == context.tls.material.certificateChain)
        #expect(try again.store.tokenSigningKey() == signingKey, "the signing key is kept, so tokens outlive a restart")
        try again.store.close()
    }

    @Test func credentialsComeFromTheStoredSecret() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, seed: StoreSeed(credentialTTL: 300), logger: Logger(label: "test"))
        defer { try? store.close() }
        let settings = try await store.turnSettings()
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let credential = TURNCredentials.issue(settings: settings, user: "alice", now: now)
        #expect(credential.username == "1700000300:alice")
        #expect(credential.expiry == now.addingTimeInterval(300))
        #expect(credential.password == TURNCredentials.issue(settings: settings, user: "alice", now: now).password)
        let shorter = TURNCredentials.issue(settings: settings, user: nil, ttl: 60, now: now)
        #expect(shorter.username == "1700000060")
        let expired = TURNCredentials.issue(settings: settings, user: "late", ttl: -60, now: now)
        #expect(expired.username == "1699999940:late")
        #expect(expired.expiry == now.addingTimeInterval(-60))
    }
}
