// ControlAPI — Tandem's HTTPS listener.
//
// What it does: serves `GET /healthz` (liveness), `GET /readyz` (the ``Readiness`` checks;
// 503 with the failing names when not ready) and `GET /metrics` (Prometheus text exposition
// format 0.0.4) over TLS with Hummingbird 2, adding security headers to every response;
// and the OAuth 2.0 token endpoint `POST /oauth/token` (OAuth.swift). Later /api/v1 and
// /webkit (see DESIGN.md).
//
// What it does not do: load certificates or open the database (TandemKit hands it a
// `TLSConfiguration` and the checks), or bootstrap the metrics system.
//
// Used by: TandemKit's `TandemServer`, which runs it as the last service of `tandem serve`.

import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import Prometheus

/// The request context of the HTTPS router: Hummingbird's basic one plus the client's
/// address, which `/cms` checks against its allowed networks.
public struct HTTPSRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// Builds the HTTPS application.
public enum ControlAPI {
    /// Adds more routes (the `/cms` pages) to the router.
    public typealias RouteMount = @Sendable (Router<HTTPSRequestContext>) -> Void

    /// Where and how the listener runs.
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks an ephemeral port (reported through `onServerRunning`).
        public var port: Int
        /// nil serves plain HTTP (tests only; `tandem serve` always passes TLS).
        public var tlsConfiguration: TLSConfiguration?
        public var serverName: String

        public init(host: String, port: Int, tlsConfiguration: TLSConfiguration?, serverName: String = "Tandem") {
            self.host = host
            self.port = port
            self.tlsConfiguration = tlsConfiguration
            self.serverName = serverName
        }
    }

    /// The content type of the Prometheus text format.
    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Answers an SDP offer from a browser with the echo service (issue 3's test entry,
    /// behind `media.echo`): the offer text in, the answer text out; throws with a reason
    /// the client may see.
    public typealias EchoAnswerer = @Sendable (String) async throws -> String

    /// The routes: `/healthz`, `/readyz`, `/metrics`, and with an echo answerer
    /// `POST /webkit/echo` and its test page.
    public static func makeRouter(
        readiness: Readiness,
        metrics: PrometheusCollectorRegistry,
        strictTransportSecurity: Bool,
        echo: EchoAnswerer? = nil,
        oauth: OAuthTokenService? = nil,
        api: ControlAPIBackend? = nil,
        signalling: SignallingBackend? = nil,
        demo: DemoSessions? = nil,
        corsOrigins: [String] = [],
        mount: RouteMount? = nil
    ) -> Router<HTTPSRequestContext> {
        let router = Router(context: HTTPSRequestContext.self)
        router.add(middleware: SecurityHeadersMiddleware(strictTransportSecurity: strictTransportSecurity))
        if !corsOrigins.isEmpty { router.add(middleware: CORSMiddleware(allowedOrigins: corsOrigins)) }
        router.add(middleware: MethodNotAllowedMiddleware(routes: documentedRoutes))
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: LogRequestsMiddleware(.debug))

        router.get("healthz") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("readyz") { _, _ in
            let report = await readiness.evaluate()
            return Response(
                status: report.isReady ? .ok : .serviceUnavailable,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: ReadinessBody(report).json())))
        }
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: prometheusContentType],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
        }
        if let echo { EchoRoutes.add(to: router, answer: echo) }
        oauth?.addRoutes(to: router)
        if let oauth, let api { APIRoutes.add(to: router, oauth: oauth, backend: api) }
        WebKitRoutes.add(to: router, signalling: signalling, demo: demo)
        mount?(router)
        return router
    }

    /// The routes of the OpenAPI document and their methods (a test keeps the two in step).
    public static let documentedRoutes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/healthz", [.get]), ("/readyz", [.get]), ("/metrics", [.get]), ("/oauth/token", [.post]),
        ("/api/v1/turn-credentials", [.post]), ("/api/v1/extensions", [.get]), ("/api/v1/sessions", [.get, .post]),
        ("/api/v1/sessions/{id}", [.delete]), ("/api/v1/calls", [.get]), ("/api/v1/export", [.get]), ("/api/v1/import", [.post]), ("/api/v1/openapi.yaml", [.get]), ("/webkit/ws", [.get]),
    ]

    /// The Hummingbird application: a swift-service-lifecycle `Service` that drains
    /// connections on graceful shutdown.
    public static func makeApplication(
        configuration: Configuration,
        readiness: Readiness,
        metrics: PrometheusCollectorRegistry,
        logger: Logger,
        echo: EchoAnswerer? = nil,
        oauth: OAuthTokenService? = nil,
        api: ControlAPIBackend? = nil,
        signalling: SignallingBackend? = nil,
        demo: DemoSessions? = nil,
        corsOrigins: [String] = [],
        mount: RouteMount? = nil,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let router = makeRouter(
            readiness: readiness, metrics: metrics, strictTransportSecurity: configuration.tlsConfiguration != nil, echo: echo, oauth: oauth, api: api,
            signalling: signalling, demo: demo, corsOrigins: corsOrigins, mount: mount)
        let server: HTTPServerBuilder
        if let signalling {
            let webSocketResponder = WebKitRoutes.webSocketRouter(signalling, logger: logger).buildResponder()
            let tls = configuration.tlsConfiguration
            server = HTTPServerBuilder { responder in
                let http = QuiesceUntouchedChannel(HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(ws: .init(maxFrameSize: WebKitRoutes.maximumFrame, autoPing: .enabled(timePeriod: .seconds(20))))))
                if let tls { return try TLSChannel(http, tlsConfiguration: tls) }
                return http
            }
        } else if let tls = configuration.tlsConfiguration {
            server = try .tls(.http1(), tlsConfiguration: tls)
        } else {
            server = .http1()
        }
        return Application(
            router: router,
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: configuration.serverName),
            onServerRunning: { channel in
                logger.info(
                    "HTTPS listening",
                    metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "tls": "\(configuration.tlsConfiguration != nil)"])
                await onServerRunning(channel)
            },
            logger: logger)
    }
}

/// The JSON body of `/readyz`:
/// `{"status":"not-ready","checks":{"database":{"ready":true},"turn":{"ready":false,"reason":"…"}},"failing":["turn"]}`.
struct ReadinessBody: Encodable {
    struct Check: Encodable {
        var ready: Bool
        var reason: String?
    }

    var status: String
    var checks: [String: Check]
    var failing: [String]

    init(_ report: Readiness.Report) {
        status = report.isReady ? "ready" : "not-ready"
        failing = report.failing
        checks = [:]
        for (name, result) in report.results {
            switch result {
            case .ready: checks[name] = Check(ready: true, reason: nil)
            case .notReady(let reason): checks[name] = Check(ready: false, reason: reason)
            }
        }
    }

    func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data(#"{"status":"not-ready"}"#.utf8))
    }
}


/// The WebSocket-upgrade pipeline adds its connection-state handler (which closes idle
/// connections on shutdown) only once a first request arrived, so a connection a browser
/// opened ahead of need (Chromium preconnects) would hold a graceful shutdown until the
/// browser drops it. This wrapper closes such an untouched connection when the server quiesces.
struct QuiesceUntouchedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base

    init(_ base: Base) { self.base = base }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(CloseUntouchedOnQuiesce())
        }.flatMap { base.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Closes the connection on `ChannelShouldQuiesceEvent` when nothing was read on it yet.
final class CloseUntouchedOnQuiesce: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    // Touched only on the channel's event loop.
    nonisolated(unsafe) private var touched = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        touched = true
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !touched {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
