import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Store

/// The pages under `/cms` and what guards them. Mount with ``add(to:)`` on a router whose
/// context knows the remote address.
public struct AdminRoutes<Context: RemoteAddressRequestContext>: Sendable {
    let store: Store
    let configuration: AdminConfiguration
    let backend: AdminBackend?
    let history: DashboardHistory?
    let throttle: SignInThrottle
    let pending = PendingImports()
    let logger: Logger

    /// The session cookie (the token; the store keeps only its hash).
    static var sessionCookie: String { "tandem_cms" }
    /// The sign-in form's CSRF cookie (double submit: the form carries the same value).
    static var signInCookie: String { "tandem_cms_signin" }
    /// Sign-in and other forms are small; anything larger is refused unread.
    static var maximumFormSize: Int { 64 * 1024 }

    public init(store: Store, configuration: AdminConfiguration, backend: AdminBackend? = nil, history: DashboardHistory? = nil,
                throttle: SignInThrottle = SignInThrottle(), logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.backend = backend
        self.history = history
        self.throttle = throttle
        self.logger = logger
    }

    /// Adds `/cms` and its pages; every one answers 404 to a source outside the allowed networks.
    public func add(to router: Router<Context>) {
        let cms = router.group("cms").add(middleware: AdminGate<Context>(isAllowedSource: configuration.isAllowedSource))
        cms.get { request, context in try await dashboard(request, context) }
        cms.get("login") { request, context in try await signInPage(request, context, message: nil, status: .ok) }
        cms.post("login") { request, context in try await signIn(request, context) }
        cms.post("logout") { request, context in try await signOut(request, context) }
        cms.get("audit") { request, context in try await audit(request, context) }
        addExtensionRoutes(cms)
        addTURNRoutes(cms)
        addSIPRoutes(cms)
        addPayloadRoutes(cms)
        addDiagnosticsRoutes(cms)
        addRestartRoutes(cms)
        addCertificateRoutes(cms)
        addClientRoutes(cms)
        addTransferRoutes(cms)
        cms.get("static/cms.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=3600"],
                     body: .init(byteBuffer: ByteBuffer(string: HTML.stylesheet)))
        }
    }

    // MARK: pages

    func dashboard(_ request: Request, _ context: Context) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let snapshot = await backend?.snapshot() ?? DashboardSnapshot()
        return Self.html(.ok, HTML.page(title: "Dashboard", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/", refreshSeconds: 15,
                                        body: DashboardPage.render(snapshot, history: history)))
    }

    func audit(_ request: Request, _ context: Context) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let page = max(0, Int(request.uri.queryParameters.get("page") ?? "") ?? 0)
        let perPage = 100
        let entries = try await store.auditLog(limit: perPage + 1, offset: page * perPage)
        let format = ISO8601DateFormatter()
        let rows = entries.prefix(perPage).map { e in
            [HTML.escape(format.string(from: e.at)), HTML.escape(e.account ?? "—"), HTML.escape(e.source), HTML.escape(e.action), HTML.escape(e.detail)]
        }
        var body = HTML.table(["When (UTC)", "Account", "From", "Action", "Detail"], Array(rows), id: "audit")
        var links: [String] = []
        if page > 0 { links.append("<a href=\"/cms/audit?page=\(page - 1)\">Newer</a>") }
        if entries.count > perPage { links.append("<a href=\"/cms/audit?page=\(page + 1)\">Older</a>") }
        if !links.isEmpty { body += "<p>" + links.joined(separator: " · ") + "</p>" }
        return Self.html(.ok, HTML.page(title: "Audit log", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/audit", body: body))
    }

    /// Without a session: the first-start instructions while no account exists, else the sign-in page.
    func entry(_ request: Request, _ context: Context) async throws -> Response {
        if try await store.adminAccountCount() == 0 { return try await signInPage(request, context, message: nil, status: .ok) }
        return Response(status: .seeOther, headers: [.location: "/cms/login"])
    }

    func signInPage(_ request: Request, _ context: Context, message: String?, status: HTTPResponse.Status, retryAfter: Int? = nil) async throws -> Response {
        if try await store.adminAccountCount() == 0 {
            let body = """
                <p>No administrator account exists yet, so nothing here can be used. Create the first one on the \
                Tandem host, with the same configuration as the running server:</p>
                <pre>tandem admin create NAME</pre>
                <p>It asks for the password (or reads it from standard input with <code>--password-stdin</code>); then reload this page.</p>
                """
            return Self.html(status == .ok ? .ok : status, HTML.page(title: "Set up the first administrator", account: nil, csrf: nil, body: body))
        }
        if try await currentSession(request) != nil, message == nil { return Response(status: .seeOther, headers: [.location: "/cms/"]) }
        let token = Store.randomToken()
        var body = message.map { HTML.message($0, kind: "error") } ?? ""
        body += """
            <form class="panel" method="post" action="/cms/login">\(HTML.csrfField(token))
            <label for="account">Account</label><input type="text" id="account" name="account" autocomplete="username" required maxlength="64" autofocus>
            <label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required maxlength="\(PasswordHash.maximumPasswordLength)">
            <button type="submit" id="sign-in">Sign in</button>
            </form>
            """
        var response = Self.html(status, HTML.page(title: "Sign in", account: nil, csrf: nil, body: body))
        response.headers.append(HTTPField(name: .setCookie, value: Cookies.setCookie(Self.signInCookie, token, maxAge: 3600, secure: configuration.secureCookies)))
        if let retryAfter { response.headers[.retryAfter] = "\(retryAfter)" }
        return response
    }

    // MARK: actions

    func signIn(_ request: Request, _ context: Context) async throws -> Response {
        let source = Self.source(context)
        var request = request
        let form: FormBody
        do {
            form = try await Self.form(&request)
        } catch let error as FormBody.ParseError {
            return try await signInPage(request, context, message: "The form could not be read: \(error).", status: .badRequest)
        }
        guard Self.sameOrigin(request) else { return Self.forbidden("The request did not come from this site's own page.") }
        guard let field = form["csrf"], let cookie = Cookies.value(Self.signInCookie, in: request.headers[.cookie]), Self.constantTimeEqual(field, cookie) else {
            return try await signInPage(request, context, message: "The sign-in form had expired; please try again.", status: .forbidden)
        }
        let name = (form["account"] ?? "").trimmingCharacters(in: .whitespaces)
        let password = form["password"] ?? ""
        if let wait = throttle.retryAfter(account: name, source: source) {
            let seconds = Int(wait.rounded(.up))
            try await store.appendAudit(account: nil, source: source, action: "sign-in refused", detail: "account \(name.prefix(64)): locked for \(seconds) s")
            return try await signInPage(request, context, message: "Too many failed sign-ins. Try again in \(seconds) s.", status: .tooManyRequests, retryAfter: seconds)
        }
        let account = name.isEmpty || name.utf8.count > 64 ? nil : try await store.adminAccount(name: name)
        let stored = account.flatMap { try? PasswordHash(parsing: $0.passwordHash) }
        // Without an account the same work is done against a fixed hash, so the answer's timing
        // does not tell which names exist.
        let reference = stored ?? Self.decoy(configuration.passwordCost)
        let matches = try await NIOThreadPool.singleton.runIfActive { reference.verify(password) }
        guard let account, stored != nil, matches else {
            let delay = throttle.recordFailure(account: name, source: source)
            try await store.appendAudit(account: nil, source: source, action: "sign-in failed", detail: "account \(name.prefix(64))")
            logger.notice("CMS sign-in failed", metadata: ["account": "\(name.prefix(64))", "source": "\(source)", "delay-s": "\(Int(delay))"])
            return try await signInPage(request, context, message: "Wrong account name or password.", status: .unauthorized)
        }
        throttle.recordSuccess(account: name, source: source)
        let (_, token) = try await store.createAdminSession(account: account.name, source: source)
        try await store.appendAudit(account: account.name, source: source, action: "sign-in")
        logger.info("CMS sign-in", metadata: ["account": "\(account.name)", "source": "\(source)"])
        var response = Response(status: .seeOther, headers: [.location: "/cms/"])
        response.headers.append(HTTPField(name: .setCookie, value: Cookies.setCookie(Self.sessionCookie, token, maxAge: nil, secure: configuration.secureCookies)))
        response.headers.append(HTTPField(name: .setCookie, value: Cookies.setCookie(Self.signInCookie, "", maxAge: 0, secure: configuration.secureCookies)))
        return response
    }

    func signOut(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, token, _) = try await authorizedForm(&request)
        _ = try await store.deleteAdminSession(token: token)
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "sign-out")
        var response = Response(status: .seeOther, headers: [.location: "/cms/login"])
        response.headers.append(HTTPField(name: .setCookie, value: Cookies.setCookie(Self.sessionCookie, "", maxAge: 0, secure: configuration.secureCookies)))
        return response
    }

    // MARK: sessions and forms

    /// The live session of the request's cookie, with its token.
    func currentSession(_ request: Request) async throws -> (AdminSessionRecord, String)? {
        guard let token = Cookies.value(Self.sessionCookie, in: request.headers[.cookie]), !token.isEmpty, token.utf8.count <= 128 else { return nil }
        guard let session = try await store.adminSession(token: token, idleTimeout: configuration.sessionIdleTimeout, lifetime: configuration.sessionLifetime)
        else { return nil }
        return (session, token)
    }

    /// A state-changing request: a live session, a form from this site carrying the session's
    /// CSRF token. Throws 403 (or 401 without a session) otherwise.
    func authorizedForm(_ request: inout Request) async throws -> (AdminSessionRecord, String, FormBody) {
        guard let (session, token) = try await currentSession(request) else { throw HTTPError(.unauthorized, message: "Sign in first.") }
        guard Self.sameOrigin(request) else { throw HTTPError(.forbidden, message: "The request did not come from this site's own page.") }
        let form: FormBody
        do {
            form = try await Self.form(&request)
        } catch let error as FormBody.ParseError {
            throw HTTPError(.badRequest, message: "The form could not be read: \(error).")
        }
        guard let csrf = form["csrf"], Self.constantTimeEqual(csrf, session.csrfToken) else {
            throw HTTPError(.forbidden, message: "The form is stale or forged (CSRF token mismatch); reload the page.")
        }
        return (session, token, form)
    }

    /// A `multipart/form-data` upload: a live session, this site's page, the session's CSRF
    /// token as the `csrf` part. Nil when the body exceeds `limit`; throws 401/403/400 otherwise.
    func authorizedUpload(_ request: inout Request, limit: Int) async throws -> (AdminSessionRecord, MultipartBody)? {
        guard let (session, _) = try await currentSession(request) else { throw HTTPError(.unauthorized, message: "Sign in first.") }
        guard Self.sameOrigin(request) else { throw HTTPError(.forbidden, message: "The request did not come from this site's own page.") }
        guard let boundary = MultipartBody.boundary(contentType: request.headers[.contentType]) else {
            throw HTTPError(.badRequest, message: "The upload must be multipart/form-data.")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            return nil
        }
        let form: MultipartBody
        do {
            form = try MultipartBody(parsing: Array(buffer.readableBytesView), boundary: boundary)
        } catch {
            throw HTTPError(.badRequest, message: "The upload could not be read: \(error).")
        }
        guard let csrf = form["csrf"].map({ String(decoding: $0.body, as: UTF8.self) }), Self.constantTimeEqual(csrf, session.csrfToken) else {
            throw HTTPError(.forbidden, message: "The form is stale or forged (CSRF token mismatch); reload the page.")
        }
        return (session, form)
    }

    /// "Use the configuration file" of a page: drops what the page stored (`clear`), puts the
    /// file's values into effect (`apply`), audits `action` and returns to `page` with `done=reset`.
    func resetToConfigurationFile(_ request: Request, _ context: Context, page: String, action: String,
                                  clear: () async throws -> Void, apply: () async -> Void) async throws -> Response {
        var request = request
        let (session, _, _) = try await authorizedForm(&request)
        try await clear()
        await apply()
        try await store.appendAudit(account: session.account, source: Self.source(context), action: action, detail: "the configuration file applies")
        return Response(status: .seeOther, headers: [.location: "\(page)?done=reset"])
    }

    static func form(_ request: inout Request) async throws -> FormBody {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else { throw FormBody.ParseError.invalidEncoding }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumFormSize)
        } catch {
            throw FormBody.ParseError.tooLarge(limit: maximumFormSize)
        }
        return try FormBody(parsing: buffer.readableBytesView, maximumSize: maximumFormSize)
    }

    /// A POST must come from a page of this origin when the browser says where it came from
    /// (the Fetch standard's `Origin`; SameSite=Strict cookies and the CSRF token are the other two locks).
    static func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "https://\(host)" || origin == "http://\(host)"
    }

    static func source(_ context: Context) -> String { context.remoteAddress?.ipAddress ?? "" }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var d: UInt8 = 0
        for i in 0..<x.count { d |= x[i] ^ y[i] }
        return d == 0
    }

    /// A hash of a random password at the configured cost, made once.
    static func decoy(_ cost: PasswordHash.Cost) -> PasswordHash { PasswordHash.decoy(cost) }

    static func html(_ status: HTTPResponse.Status, _ page: String) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    static func forbidden(_ message: String) -> Response {
        html(.forbidden, HTML.page(title: "Forbidden", account: nil, csrf: nil, body: HTML.message(message, kind: "error")))
    }
}

/// `/cms` only for sources in the allowed networks (404 for others, as if it did not exist),
/// and, on every `/cms` response, the page CSP: own stylesheet and script only, no inline
/// script, no framing, forms only to this origin.
struct AdminGate<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let isAllowedSource: @Sendable (String) -> Bool

    static var contentSecurityPolicy: String {
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let ip = context.remoteAddress?.ipAddress, isAllowedSource(ip) else {
            return Response(status: .notFound)
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError {
            // Errors are pages too, in the same frame as the rest.
            let page = HTML.page(title: error.status.reasonPhrase, account: nil, csrf: nil, body: HTML.message(error.body ?? error.status.reasonPhrase, kind: "error") + "<p><a href=\"/cms/\">Back</a></p>")
            response = Response(status: error.status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: page)))
        }
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.init("X-Frame-Options")!] = "DENY"
        response.headers[.init("Referrer-Policy")!] = "same-origin"
        response.headers[.cacheControl] = response.headers[.cacheControl] ?? "no-store"
        return response
    }
}

extension Store {
    /// 24 random bytes, base64url: CSRF tokens and decoy passwords.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
