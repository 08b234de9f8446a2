import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import Synchronization

/// What `/webkit/ws` needs from the gateway, supplied by `tandem serve`: the frames are
/// JSON text (docs/webkit-signalling.md); the protocol itself lives in the Gateway module.
public struct SignallingBackend: Sendable {
    /// Whether a session token is live (unknown, deleted or expired: false).
    public var authorize: @Sendable (_ token: String) async -> Bool
    /// Joins a socket to its session; `send` carries text frames to the browser, and nil
    /// closes the socket (after the frames before it). Answers nil when the token is not
    /// (or no longer) valid.
    public var connect: @Sendable (_ token: String, _ send: @escaping @Sendable (String?) -> Void) async -> Int?
    public var receive: @Sendable (_ text: String, _ connection: Int) async -> Void
    public var disconnect: @Sendable (_ connection: Int) async -> Void

    public init(authorize: @escaping @Sendable (String) async -> Bool,
                connect: @escaping @Sendable (String, @escaping @Sendable (String?) -> Void) async -> Int?,
                receive: @escaping @Sendable (String, Int) async -> Void,
                disconnect: @escaping @Sendable (Int) async -> Void) {
        self.authorize = authorize
        self.connect = connect
        self.receive = receive
        self.disconnect = disconnect
    }
}

/// The demo application server (`http.demo`): a guest session for whoever asks, of a
/// service (nil: the built-in echo) and a caller number (nil: "demo"). Throws ``ControlAPIError``.
public struct DemoSessions: Sendable {
    public var create: @Sendable (_ service: String?, _ from: String?) async throws -> SessionResponse
    public init(_ create: @escaping @Sendable (String?, String?) async throws -> SessionResponse) { self.create = create }
}

/// `/webkit`: the browser SDK (`tandem.js`), the demo pages, and the signalling WebSocket
/// `GET /webkit/ws?token=…` (RFC 6455 through HummingbirdWebSocket). A request without a
/// live session token is answered 401 before any upgrade.
enum WebKitRoutes {
    /// Largest signalling frame taken (larger ones close the socket with 1009).
    static let maximumFrame = 65_536
    /// A socket silent for three heartbeats (the browser pings every 20 s) is closed.
    static let silenceLimit: Duration = .seconds(60)

    /// The files under `Sources/ControlAPI/webkit` served at `/webkit/…`.
    static let files: [String: (contentType: String, body: ByteBuffer)] = {
        var out: [String: (String, ByteBuffer)] = [:]
        for path in ["tandem.js", "demo/agent.html", "demo/agent.js", "demo/click-to-call.html", "demo/click-to-call.js"] {
            let parts = path.split(separator: "/")
            let name = String(parts.last!)
            let dot = name.lastIndex(of: ".")!
            let subdirectory = (["webkit"] + parts.dropLast().map(String.init)).joined(separator: "/")
            guard let url = Bundle.module.url(forResource: String(name[..<dot]), withExtension: String(name[name.index(after: dot)...]), subdirectory: subdirectory),
                  let data = try? Data(contentsOf: url) else { continue }
            out[path] = (name.hasSuffix(".js") ? "text/javascript; charset=utf-8" : "text/html; charset=utf-8", ByteBuffer(bytes: data))
        }
        return out
    }()

    /// The pages' policy: own scripts only, same-origin connections (the WebSocket included).
    static let pagePolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

    static func add(to router: Router<HTTPSRequestContext>, signalling: SignallingBackend?, demo: DemoSessions? = nil) {
        if let demo {
            // What an application server does (POST /api/v1/sessions with its OAuth token), for the demo pages.
            let handler: @Sendable (Request, HTTPSRequestContext) async throws -> Response = { request, _ in
                var request = request
                let body = try await request.collectBody(upTo: 1024)
                struct Ask: Decodable {
                    var service: String?
                    var from: String?
                }
                let ask = (try? JSONDecoder().decode(Ask.self, from: Data(buffer: body))) ?? Ask()
                if let from = ask.from, !APIRoutes.isCallerNumber(from) {
                    return APIRoutes.problem(.badRequest, "invalid_from", "from must be a phone number: an optional + and 2–20 digits")
                }
                do {
                    var session = try await demo.create(ask.service, ask.from)
                    session.websocketURL = websocketURL(request)
                    return APIRoutes.json(.created, session)
                } catch let error as ControlAPIError {
                    return APIRoutes.problem(error.status, error.code, error.description)
                }
            }
            router.post("webkit/demo/session", use: handler)
            router.post("webkit/demo/guest-session", use: handler)
        }
        for (path, file) in files {
            router.get(RouterPath("webkit/" + path)) { _, _ in
                Response(status: .ok, headers: [.contentType: file.contentType, .contentSecurityPolicy: pagePolicy, .cacheControl: "no-cache"],
                         body: .init(byteBuffer: file.body))
            }
        }
        // Reached when the upgrade was refused (or never asked for): say why.
        router.get("webkit/ws") { request, _ in
            let token = request.uri.queryParameters.get("token") ?? ""
            if let signalling, !token.isEmpty, await signalling.authorize(token) {
                return EchoRoutes.text(.upgradeRequired, "open this URL as a WebSocket\n")
            }
            var response = EchoRoutes.text(.unauthorized, "unknown, deleted or expired session token\n")
            response.headers[.wwwAuthenticate] = "Bearer realm=\"tandem\", error=\"invalid_token\""
            return response
        }
    }

    /// The router the upgrade requests go through (HummingbirdWebSocket's separate router).
    static func webSocketRouter(_ signalling: SignallingBackend, logger: Logger) -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.ws("webkit/ws", shouldUpgrade: { request, _ in
            let token = request.uri.queryParameters.get("token") ?? ""
            guard !token.isEmpty, token.utf8.count <= 256 else { return .dontUpgrade }
            let live = await signalling.authorize(token)
            return live ? .upgrade([:]) : .dontUpgrade
        }) { inbound, outbound, context in
            let token = context.request.uri.queryParameters.get("token") ?? ""
            let (frames, continuation) = AsyncStream<String?>.makeStream(bufferingPolicy: .bufferingNewest(1024))
            guard let connection = await signalling.connect(token, { continuation.yield($0) }) else {
                try await outbound.write(.text(#"{"code":"session-ended","message":"the session is no longer valid","type":"error"}"#))
                try await outbound.close(.policyViolation, reason: "session ended")
                return
            }
            // A watchdog closes a socket whose browser stopped sending (three heartbeats missed).
            let heard = Mutex(ContinuousClock.now)
            let watchdog = Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(5))
                    if ContinuousClock.now - heard.withLock({ $0 }) > silenceLimit {
                        continuation.yield(#"{"code":"timeout","message":"no frame for three heartbeats","type":"error"}"#)
                        continuation.yield(nil)
                        return
                    }
                }
            }
            // One writer keeps the frames in order; it ends when the connection is left.
            let writer = Task {
                for await frame in frames {
                    guard let text = frame else {
                        try await outbound.close(.normalClosure, reason: "session ended")
                        return
                    }
                    try await outbound.write(.text(text))
                }
            }
            do {
                for try await message in inbound.messages(maxSize: maximumFrame) {
                    heard.withLock { $0 = ContinuousClock.now }
                    switch message {
                    case .text(let text): await signalling.receive(text, connection)
                    case .binary: continuation.yield(#"{"code":"bad-message","message":"frames are JSON text","type":"error"}"#)
                    }
                }
            } catch {
                logger.debug("signalling socket error", metadata: ["error": "\(error)"])
            }
            watchdog.cancel()
            await signalling.disconnect(connection)
            continuation.finish()
            _ = try? await writer.value
        }
        return router
    }

    /// `wss://` plus the host the client used, for the session response.
    static func websocketURL(_ request: Request) -> String? {
        guard let authority = request.head.authority, !authority.isEmpty else { return nil }
        return "wss://\(authority)/webkit/ws"
    }
}
