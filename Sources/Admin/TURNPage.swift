import Foundation
import Hummingbird
import Store

/// The TURN relay page: its state, the REST-API shared secret (rotation keeps the previous one
/// valid for one credential TTL, so clients holding credentials are not cut off), the
/// credential TTL, relay and external addresses, all applied without a restart.
extension AdminRoutes {
    func addTURNRoutes(_ cms: RouterGroup<Context>) {
        cms.get("turn") { request, context in try await turnPage(request, context) }
        cms.post("turn/rotate") { request, context in try await rotateSecret(request, context) }
        cms.post("turn/settings") { request, context in try await saveTURNSettings(request, context) }
    }

    static var ttlRange: ClosedRange<Int> { 60...86_400 }

    func turnPage(_ request: Request, _ context: Context, error: String? = nil, form: FormBody? = nil, status code: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let settings = try await store.turnSettings()
        let format = ISO8601DateFormatter()
        var body = error.map { HTML.message($0, kind: "error") } ?? ""
        switch request.uri.queryParameters.get("done") {
        case "rotated": body += HTML.message("The shared secret changed. The previous one stays valid until it retires, so credentials already handed out keep working.", kind: "notice")
        case "saved": body += HTML.message("Saved. New credentials use the TTL; new allocations use the relay and external addresses.", kind: "notice")
        default: break
        }
        if let status = backend?.turn?.status() {
            body += "<div class=\"cards\">"
            body += DashboardPage.card("Relay", status.enabled ? "enabled" : "disabled", note: "turn.enabled — changing it needs a restart", id: "turn-enabled")
            body += DashboardPage.card("Allocations", "\(status.allocations)", id: "turn-allocations")
            body += DashboardPage.card("Realm", status.realm, note: "turn.realm", id: "turn-realm")
            body += "</div>"
            body += "<h2>Listeners</h2>"
            body += status.listeners.isEmpty ? "<p class=\"muted\">None bound.</p>"
                : "<ul id=\"turn-listeners\">" + status.listeners.map { "<li><code>\(HTML.escape($0))</code></li>" }.joined() + "</ul>"
            body += "<p class=\"muted\">From turn.listen-addresses, turn.listen-port, turn.tls-port and turn.transports in the configuration file (a restart applies them).</p>"
        }

        body += "<h2>Shared secret</h2>"
        body += "<p>Credentials follow the TURN REST API (coturn's <code>use-auth-secret</code>): username <code>&lt;expiry&gt;:&lt;user&gt;</code>, password base64(HMAC-SHA1(secret, username)).</p>"
        body += "<details><summary>Show the current secret</summary><p><code id=\"turn-secret\">\(HTML.escape(settings.sharedSecret))</code></p></details>"
        if let previous = settings.previousSecretRetiresAt, previous > Date() {
            body += "<p id=\"turn-previous\">The previous secret stays valid until \(HTML.escape(format.string(from: previous))).</p>"
        }
        body += """
            <form class="panel wide" method="post" action="/cms/turn/rotate">\(HTML.csrfField(session.csrfToken))
            <label for="secret">New secret</label><input type="text" id="secret" name="secret" maxlength="256" autocomplete="off" placeholder="empty: 32 random bytes">
            <p class="muted">The previous secret stays valid for one credential TTL (\(settings.credentialTTL) s).</p>
            <button type="submit" id="rotate">Change the secret</button>
            </form>
            """

        func list(_ values: [String]) -> String { HTML.escape(values.joined(separator: "\n")) }
        body += "<h2>Credentials and addresses</h2>"
        body += """
            <form class="panel wide" method="post" action="/cms/turn/settings">\(HTML.csrfField(session.csrfToken))
            <label for="ttl">Credential time to live (seconds)</label><input type="number" id="ttl" name="ttl" min="\(Self.ttlRange.lowerBound)" max="\(Self.ttlRange.upperBound)" value="\(HTML.escape(form?["ttl"] ?? String(settings.credentialTTL)))" required>
            <label for="relay">Relay addresses (one per line; the first of each family is used)</label>
            <textarea id="relay" name="relay" rows="3">\(form.map { HTML.escape($0["relay"] ?? "") } ?? list(settings.relayAddresses))</textarea>
            <label for="external">External addresses (one per line: <code>relayIP=externalIP</code>, or one IP for every relay address)</label>
            <textarea id="external" name="external" rows="3">\(form.map { HTML.escape($0["external"] ?? "") } ?? list(settings.externalAddresses))</textarea>
            <button type="submit" id="save-turn">Save</button>
            </form>
            """
        return Self.html(code, HTML.page(title: "TURN server", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/turn", body: body))
    }

    func rotateSecret(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let wanted = (form["secret"] ?? "").trimmingCharacters(in: .whitespaces)
        let current = try await store.turnSettings()
        let settings: TURNSettings
        do {
            settings = try await store.rotateTURNSharedSecret(to: wanted.isEmpty ? nil : wanted, gracePeriod: TimeInterval(current.credentialTTL))
        } catch let error as StoreError {
            return try await turnPage(request, context, error: "The secret was not changed: \(error.description).", status: .badRequest)
        }
        await backend?.turn?.apply(settings)
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "TURN secret changed",
                                    detail: wanted.isEmpty ? "random" : "set by hand")
        return Response(status: .seeOther, headers: [.location: "/cms/turn?done=rotated"])
    }

    func saveTURNSettings(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        func lines(_ name: String) -> [String] {
            (form[name] ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let relay = lines("relay"), external = lines("external")
        guard let ttl = Int((form["ttl"] ?? "").trimmingCharacters(in: .whitespaces)), Self.ttlRange.contains(ttl) else {
            return try await turnPage(request, context, error: "Not saved: the TTL must be \(Self.ttlRange.lowerBound)–\(Self.ttlRange.upperBound) seconds.", form: form, status: .badRequest)
        }
        guard relay.count <= 16, external.count <= 16 else {
            return try await turnPage(request, context, error: "Not saved: at most 16 relay and 16 external addresses.", form: form, status: .badRequest)
        }
        if let problem = backend?.turn?.validateAddresses(relay, external) {
            return try await turnPage(request, context, error: "Not saved: \(problem).", form: form, status: .badRequest)
        }
        let before = try await store.turnSettings()
        let settings = try await store.updateTURNSettings { s in
            s.credentialTTL = ttl
            s.relayAddresses = relay
            s.externalAddresses = external
        }
        await backend?.turn?.apply(settings)
        var changes: [String] = []
        if before.credentialTTL != ttl { changes.append("ttl \(before.credentialTTL) → \(ttl)") }
        if before.relayAddresses != relay { changes.append("relay \(relay.joined(separator: ","))") }
        if before.externalAddresses != external { changes.append("external \(external.joined(separator: ","))") }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "TURN settings saved",
                                    detail: changes.isEmpty ? "no change" : changes.joined(separator: "; "))
        return Response(status: .seeOther, headers: [.location: "/cms/turn?done=saved"])
    }
}
