import Foundation
import Hummingbird
import Store

/// OAuth clients (RFC 6749 §2: the application servers that get sessions and TURN
/// credentials) and the click-to-contact services. A client's secret is shown once, when it
/// is made or reset; the store keeps a salted hash. Revoking a client stops its tokens at once.
/// A client's WebRTC secret (shown once when switched on) lets it sign session tokens itself.
extension AdminRoutes {
    func addClientRoutes(_ cms: RouterGroup<Context>) {
        cms.get("clients") { request, context in try await clientsPage(request, context) }
        cms.post("clients/create") { request, context in try await createClient(request, context) }
        cms.post("clients/validity") { request, context in try await setValidity(request, context) }
        cms.post("clients/reset") { request, context in try await resetClient(request, context) }
        cms.post("clients/revoke") { request, context in try await revokeClient(request, context) }
        cms.post("clients/webrtc") { request, context in try await switchWebRTCSecret(request, context) }
        cms.get("services") { request, context in try await servicesPage(request, context) }
        cms.post("services/put") { request, context in try await putService(request, context) }
        cms.post("services/remove") { request, context in try await removeService(request, context) }
    }

    static var validityRange: ClosedRange<Int> { 0...525_600 }

    func clientsPage(_ request: Request, _ context: Context, message: String? = nil, kind: String = "error", secret: (id: String, secret: String)? = nil,
                     webRTCSecret: (id: String, secret: String)? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let clients = try await store.oauthClients()
        let format = ISO8601DateFormatter()
        var body = message.map { HTML.message($0, kind: kind) } ?? ""
        switch request.uri.queryParameters.get("done") {
        case "revoked": body += HTML.message("The client was revoked: its tokens no longer work.", kind: "notice")
        case "validity": body += HTML.message("Saved. Tokens issued from now on have the new validity.", kind: "notice")
        case "webrtc-off": body += HTML.message("The WebRTC secret is off: tokens signed with it are refused from now on (sessions already made run on).", kind: "notice")
        default: break
        }
        if let secret {
            body += """
                <div class="notice" role="status" id="new-client">The secret of <code>\(HTML.escape(secret.id))</code> is \
                <code id="new-secret">\(HTML.escape(secret.secret))</code>. Copy it now: it is stored only as a hash and is not shown again.</div>
                """
        }
        if let webRTCSecret {
            body += """
                <div class="notice" role="status" id="new-webrtc-secret">The WebRTC secret of <code>\(HTML.escape(webRTCSecret.id))</code> is \
                <code id="webrtc-secret">\(HTML.escape(webRTCSecret.secret))</code>. Copy it now: it is not shown again. With it the application \
                server signs session tokens itself, with no API call: <code>w1:&lt;client id&gt;:&lt;extension&gt;:&lt;expiry, Unix seconds&gt;:&lt;signature&gt;</code>, \
                the signature being the unpadded base64url HMAC-SHA256 under this secret of everything before its colon; at most 24 h ahead. \
                A browser connecting with such a token gets a session holding the extension until the expiry.</div>
                """
        }
        if clients.contains(where: { $0.tokenValidityMinutes == 0 }) {
            body += HTML.message("A client has tokens of unlimited validity (0 minutes): such a token, once leaked, works until the client is revoked.", kind: "warning")
        }
        body += HTML.table(["Client id", "Token validity", "WebRTC secret", "Created", ""], clients.map { c in
            let id = HTML.escape(c.clientID)
            let hidden = HTML.csrfField(session.csrfToken) + "<input type=\"hidden\" name=\"id\" value=\"\(id)\">"
            let validity = """
                <form class="inline" method="post" action="/cms/clients/validity">\(hidden)<input type="number" name="minutes" min="0" max="\(Self.validityRange.upperBound)" value="\(c.tokenValidityMinutes)" class="narrow" aria-label="minutes"> min \
                <button type="submit" class="small">Set</button></form>\(c.tokenValidityMinutes == 0 ? " <span class=\"warn-text\">unlimited</span>" : "")
                """
            let actions = """
                <form class="inline" method="post" action="/cms/clients/reset">\(hidden)<button type="submit" class="small">New secret</button></form> \
                <form class="inline" method="post" action="/cms/clients/revoke">\(hidden)<button type="submit" class="small danger">Revoke</button></form>
                """
            let webRTC = """
                <form class="inline" method="post" action="/cms/clients/webrtc">\(hidden)<input type="hidden" name="enabled" value="\(c.webRTCSecretEnabled ? "off" : "on")">\
                <span id="webrtc-\(id)">\(c.webRTCSecretEnabled ? "on" : "off")</span> \
                <button type="submit" class="small" aria-describedby="webrtc-\(id)">\(c.webRTCSecretEnabled ? "Turn off" : "Turn on")</button></form>
                """
            return [id, validity, webRTC, HTML.escape(format.string(from: c.createdAt)), actions]
        }, id: "clients")
        body += """
            <h2>Add a client</h2>
            <form class="panel" method="post" action="/cms/clients/create">\(HTML.csrfField(session.csrfToken))
            <label for="client-id">Client id</label><input type="text" id="client-id" name="id" required maxlength="128">
            <label for="minutes">Token validity (minutes; 0 = unlimited, not recommended)</label><input type="number" id="minutes" name="minutes" min="0" max="\(Self.validityRange.upperBound)" value="20" required>
            <button type="submit" id="create-client">Create</button>
            </form>
            """
        return Self.html(status, HTML.page(title: "Client credentials", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/clients", body: body))
    }

    func minutes(_ form: FormBody) -> Int? {
        Int((form["minutes"] ?? "").trimmingCharacters(in: .whitespaces)).flatMap { Self.validityRange.contains($0) ? $0 : nil }
    }

    func createClient(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let id = (form["id"] ?? "").trimmingCharacters(in: .whitespaces)
        guard let minutes = minutes(form) else {
            return try await clientsPage(request, context, message: "Not created: the validity must be 0–\(Self.validityRange.upperBound) minutes.", status: .badRequest)
        }
        let secret: String
        do {
            secret = try await store.createOAuthClient(id: id, tokenValidityMinutes: minutes)
        } catch let error as StoreError {
            return try await clientsPage(request, context, message: "Not created: \(error.description).", status: .badRequest)
        }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "OAuth client created", detail: "\(id), \(minutes) min")
        return try await clientsPage(request, context, secret: (id, secret))
    }

    func setValidity(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let id = form["id"] ?? ""
        guard let minutes = minutes(form) else {
            return try await clientsPage(request, context, message: "Not saved: the validity must be 0–\(Self.validityRange.upperBound) minutes.", status: .badRequest)
        }
        do {
            try await store.setOAuthClientTokenValidity(id: id, minutes: minutes)
        } catch let error as StoreError {
            return try await clientsPage(request, context, message: "Not saved: \(error.description).", status: .badRequest)
        }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "OAuth client validity", detail: "\(id), \(minutes) min")
        return Response(status: .seeOther, headers: [.location: "/cms/clients?done=validity"])
    }

    func resetClient(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let id = form["id"] ?? ""
        let secret: String
        do {
            secret = try await store.resetOAuthClientSecret(id: id)
        } catch let error as StoreError {
            return try await clientsPage(request, context, message: "Not reset: \(error.description).", status: .badRequest)
        }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "OAuth client secret reset", detail: id)
        return try await clientsPage(request, context, secret: (id, secret))
    }

    /// The WebRTC-secret switch: on makes a new secret (shown once), off drops it.
    func switchWebRTCSecret(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let id = form["id"] ?? ""
        let enabled = form["enabled"] == "on"
        let secret: String?
        do {
            secret = try await store.setOAuthClientWebRTCSecret(id: id, enabled: enabled)
        } catch let error as StoreError {
            return try await clientsPage(request, context, message: "Not changed: \(error.description).", status: .badRequest)
        }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "OAuth client WebRTC secret", detail: "\(id), \(enabled ? "on (new secret)" : "off")")
        guard let secret else { return Response(status: .seeOther, headers: [.location: "/cms/clients?done=webrtc-off"]) }
        return try await clientsPage(request, context, webRTCSecret: (id, secret))
    }

    func revokeClient(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let id = form["id"] ?? ""
        guard try await store.deleteOAuthClient(id: id) else { throw HTTPError(.notFound, message: "There is no client \(id).") }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "OAuth client revoked", detail: id)
        return Response(status: .seeOther, headers: [.location: "/cms/clients?done=revoked"])
    }

    // MARK: services

    func servicesPage(_ request: Request, _ context: Context, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let services = try await store.services()
        var body = error.map { HTML.message($0, kind: "error") } ?? ""
        if request.uri.queryParameters.get("done") == "saved" { body += HTML.message("Saved.", kind: "notice") }
        body += "<p>A click-to-contact guest session names a destination key; it may call only that service's number on the platform.</p>"
        body += services.isEmpty ? "<p class=\"muted\">No services.</p>" : HTML.table(["Key", "Number", "Display name", ""], services.map { s in
            let key = HTML.escape(s.key)
            return [key, HTML.escape(s.number), HTML.escape(s.displayName),
                    "<form class=\"inline\" method=\"post\" action=\"/cms/services/remove\">\(HTML.csrfField(session.csrfToken))<input type=\"hidden\" name=\"key\" value=\"\(key)\"><button type=\"submit\" class=\"small danger\">Remove</button></form>"]
        }, id: "services")
        body += """
            <h2>Add or replace a service</h2>
            <form class="panel" method="post" action="/cms/services/put">\(HTML.csrfField(session.csrfToken))
            <label for="key">Destination key</label><input type="text" id="key" name="key" required maxlength="64" placeholder="support">
            <label for="number">Number</label><input type="text" id="number" name="number" required maxlength="64" placeholder="2000">
            <label for="display-name">Display name</label><input type="text" id="display-name" name="name" maxlength="128" placeholder="Customer support">
            <button type="submit" id="save-service">Save</button>
            </form>
            """
        return Self.html(status, HTML.page(title: "Services", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/services", body: body))
    }

    func putService(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let service = ServiceRecord(key: (form["key"] ?? "").trimmingCharacters(in: .whitespaces), number: (form["number"] ?? "").trimmingCharacters(in: .whitespaces),
                                    displayName: String((form["name"] ?? "").trimmingCharacters(in: .whitespaces).prefix(128)))
        do {
            try await store.putService(service)
        } catch let error as StoreError {
            return try await servicesPage(request, context, error: "Not saved: \(error.description).", status: .badRequest)
        }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "service saved", detail: "\(service.key) → \(service.number)")
        return Response(status: .seeOther, headers: [.location: "/cms/services?done=saved"])
    }

    func removeService(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let key = form["key"] ?? ""
        // Its guest sessions go with it in the store; the gateway ends their calls.
        let holding = try await store.sessions().filter { $0.guest?.service.key == key }.map(\.id)
        guard try await store.removeService(key: key) else { throw HTTPError(.notFound, message: "There is no service \(key).") }
        for id in holding { await backend?.endSession(id) }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "service removed", detail: key)
        return Response(status: .seeOther, headers: [.location: "/cms/services?done=saved"])
    }
}
