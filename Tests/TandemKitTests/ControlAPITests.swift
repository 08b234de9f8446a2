import ControlAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Prometheus
import Testing

@Suite("Control API")
struct ControlAPITests {
    func makeApplication(readiness: Readiness, registry: PrometheusCollectorRegistry) throws -> some ApplicationProtocol {
        Application(router: ControlAPI.makeRouter(readiness: readiness, metrics: registry, strictTransportSecurity: true))
    }

    @Test func undeclaredMethodsGet405WithAllow() async throws {
        let app = try makeApplication(readiness: Readiness(), registry: PrometheusCollectorRegistry())
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .trace) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET")
            }
            try await client.execute(uri: "/api/v1/sessions/abc", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "DELETE")
            }
        }
    }

    /// Every path and method of the OpenAPI document is one the router knows, and no more.
    @Test func documentedRoutesMatchTheOpenAPIDocument() throws {
        let text = try String(contentsOfFile: repositoryRoot + "/Sources/ControlAPI/openapi.yaml", encoding: .utf8)
        var documented: [String: Set<String>] = [:]
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
                documented[path!] = []
            } else if line.hasPrefix("  "), !line.hasPrefix("   ") {
                path = nil
            } else if let p = path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "patch", "delete"].contains(String(method)) { documented[p]!.insert(method.uppercased()) }
            }
            if line == "components:" { break }
        }
        let table = Dictionary(uniqueKeysWithValues: ControlAPI.documentedRoutes.map { ($0.path, Set($0.methods.map(\.rawValue))) })
        #expect(documented == table)
    }

    @Test func healthzAnswersOKWithSecurityHeaders() async throws {
        let app = try makeApplication(readiness: Readiness(), registry: PrometheusCollectorRegistry())
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ok\n")
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                #expect(response.headers[.strictTransportSecurity] == "max-age=31536000")
                #expect(response.headers[.cacheControl] == "no-store")
            }
            try await client.execute(uri: "/nowhere", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.xContentTypeOptions] == "nosniff", "errors carry the headers too")
            }
        }
    }

    @Test func readyzReportsFailingChecksWith503() async throws {
        let readiness = Readiness(timeout: .milliseconds(200))
        readiness.register("database") { .ready }
        let app = try makeApplication(readiness: readiness, registry: PrometheusCollectorRegistry())
        try await app.test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"checks":{"database":{"ready":true}},"failing":[],"status":"ready"}"#)
            }
            readiness.register("turn") { .notReady(reason: "no listener") }
            readiness.register("slow") {
                // Ignores cancellation: only the timeout can answer for it.
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 3) { continuation.resume() }
                }
                return .ready
            }
            let started = ContinuousClock.now
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.contentType] == "application/json")
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(body?["status"] as? String == "not-ready")
                #expect(body?["failing"] as? [String] == ["slow", "turn"])
            }
            #expect(ContinuousClock.now - started < .seconds(2), "a hung check times out")
            readiness.unregister("turn")
            readiness.unregister("slow")
            #expect(readiness.names == ["database"])
        }
    }

    @Test func metricsExposesThePrometheusRegistry() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(name: "tandem_test_total", help: "A test counter.").increment(by: Int64(3))
        let app = try makeApplication(readiness: Readiness(), registry: registry)
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == ControlAPI.prometheusContentType)
                let text = String(buffer: response.body)
                #expect(text.contains("# TYPE tandem_test_total counter"))
                #expect(text.contains("tandem_test_total 3"))
            }
        }
    }
}

extension Data {
    init(buffer: ByteBuffer) { self.init(buffer.readableBytesView) }
}
