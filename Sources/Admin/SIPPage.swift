import Foundation
import Hummingbird
import Store

/// The SIP platform page: the registrars/proxies the extensions register with, the transport,
/// an outbound proxy, the domain, the registration expiry (at least 300 s) and the keep-alive
/// interval. Saving applies them at once: each extension's binding on the old platform is
/// removed and it registers on the new one (RFC 3261 §10.2); calls in progress keep their
/// routes. "Use the configuration file" drops the values set here.
extension AdminRoutes {
    func addSIPRoutes(_ cms: RouterGroup<Context>) {
        cms.get("sip") { request, context in try await sipPage(request, context) }
        cms.post("sip") { request, context in try await saveSIPPlatform(request, context) }
        cms.post("sip/reset") { request, context in try await resetSIPPlatform(request, context) }
    }

    func sipPage(_ request: Request, _ context: Context, error: (field: String, reason: String)? = nil, form: FormBody? = nil,
                 status code: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let stored = try await store.sipPlatformSettings()
        let shown = stored ?? backend?.sip?.configured()
        var body = error.map { HTML.message("Not saved: \($0.reason).", kind: "error") } ?? ""
        switch request.uri.queryParameters.get("done") {
        case "saved": body += HTML.message("Saved. The extensions are registering on the platform now.", kind: "notice")
        case "reset": body += HTML.message("The configuration file's platform applies again.", kind: "notice")
        case "restart": body += HTML.message("Saved. SIP was off when Tandem started: it starts with the platform at the next restart.", kind: "warning")
        default: break
        }
        if let status = backend?.sip?.status() {
            func reach(_ r: Bool?) -> String { r.map { $0 ? "reachable" : "unreachable" } ?? "unknown yet" }
            /// `udp:192.0.2.1:5060` as the address, with the transport in the note.
            func side(_ label: String, _ destination: String, _ r: Bool?, id: String) -> String {
                guard let colon = destination.firstIndex(of: ":") else { return DashboardPage.card(label, "—", id: id) }
                return DashboardPage.card(label, String(destination[destination.index(after: colon)...]),
                                          note: "\(destination[..<colon].uppercased()), \(reach(r))", id: id)
            }
            body += "<div class=\"cards\">"
            body += DashboardPage.card("SIP", status.running ? "running" : "off", note: status.running ? nil : "starts with a platform after a restart", id: "sip-running")
            body += DashboardPage.card("Registered", "\(status.registered)", note: "\(status.registering) registering, \(status.failed) failed", id: "sip-registered")
            body += side("Primary", status.primary, status.primaryReachable, id: "sip-primary")
            if !status.secondary.isEmpty { body += side("Secondary", status.secondary, status.secondaryReachable, id: "sip-secondary") }
            body += "</div>"
            if !status.listeners.isEmpty {
                body += "<h2>Listeners</h2><ul id=\"sip-listeners\">" + status.listeners.map { "<li><code>\(HTML.escape($0))</code></li>" }.joined() + "</ul>"
                body += "<p class=\"muted\">From sip.listen-addresses, sip.listen-port, sip.tls-port and sip.transports in the configuration file (a restart applies them).</p>"
            }
        }
        body += "<h2>Platform</h2>"
        body += "<p id=\"sip-source\">" + (stored != nil ? "Set here on \(HTML.escape(ISO8601DateFormatter().string(from: stored!.updatedAt))); the configuration file's <code>sip.*</code> platform keys do not apply."
            : "From the configuration file's <code>sip.*</code> keys; saving here replaces them.") + "</p>"

        func value(_ name: String, _ current: String?) -> String { HTML.escape(form?[name] ?? current ?? "") }
        func field(_ name: String, _ label: String, _ current: String?, hint: String, required: Bool = false, type: String = "text", range: ClosedRange<Int>? = nil) -> String {
            let problem = error?.field == name ? error?.reason : nil
            let bounds = range.map { " min=\"\($0.lowerBound)\" max=\"\($0.upperBound)\"" } ?? ""
            return """
                <label for="\(name)">\(label)</label>
                <input type="\(type)" id="\(name)" name="\(name)" value="\(value(name, current))"\(bounds)\(required ? " required" : "") maxlength="255" autocomplete="off" aria-describedby="\(name)-hint\(problem != nil ? " \(name)-error" : "")"\(problem != nil ? " aria-invalid=\"true\"" : "")>
                \(HTML.fieldError(name, problem))<p class="muted" id="\(name)-hint">\(hint)</p>
                """
        }
        let transport = form?["transport"] ?? shown?.transport ?? "udp"
        let options = SIPPlatformSettings.transports.map { "<option value=\"\($0)\"\($0 == transport ? " selected" : "")>\($0.uppercased())</option>" }.joined()
        let transportError = error?.field == "transport" ? error?.reason : nil
        body += """
            <form class="panel wide" method="post" action="/cms/sip">\(HTML.csrfField(session.csrfToken))
            \(field("primary", "Primary registrar/proxy", shown?.primary, hint: "IP address or host name, optionally <code>:port</code>; names are resolved by DNS SRV and A/AAAA (RFC 3263).", required: true))
            \(field("secondary", "Secondary registrar/proxy", shown?.secondary, hint: "Extensions fail over to it when the primary stops answering; empty = none."))
            <label for="transport">Transport</label>
            <select id="transport" name="transport" aria-describedby="transport-hint">\(options)</select>
            \(HTML.fieldError("transport", transportError))<p class="muted" id="transport-hint">Toward the platform. TLS checks the platform's certificate unless sip.tls-verify-peer is false.</p>
            \(field("proxy", "Outbound proxy", shown?.outboundProxy, hint: "Every request goes there instead; it then does the failover and the secondary is not used. Empty = none."))
            \(field("domain", "Domain", shown?.domain, hint: "Of the addresses-of-record (<code>sip:3001@domain</code>); empty = the primary's host."))
            \(field("expires", "Registration expiry (seconds)", shown.map { String($0.registrationExpires) }, hint: "300–86400; refreshed before it ends.", required: true, type: "number", range: SIPPlatformSettings.registrationExpiresRange))
            \(field("keepalive", "Keep-alive interval (seconds)", shown.map { String($0.keepAliveInterval) }, hint: "OPTIONS to each side; 0 = none (then readiness follows the registrations).", required: true, type: "number", range: SIPPlatformSettings.keepAliveRange))
            <button type="submit" id="save-sip">Save and apply</button>
            </form>
            """
        if stored != nil {
            body += HTML.actionForm("/cms/sip/reset", csrf: session.csrfToken, text: "Drop the platform set here and use the configuration file's again.",
                                    buttonID: "reset-sip", label: "Use the configuration file")
        }
        return Self.html(code, HTML.page(title: "SIP platform", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/sip", body: body))
    }

    /// The form as settings, or the field that is not a number.
    static func sipSettings(_ form: FormBody) -> Result<SIPPlatformSettings, SIPFormError> {
        func text(_ name: String) -> String { (form[name] ?? "").trimmingCharacters(in: .whitespaces) }
        guard let expires = Int(text("expires")) else { return .failure(SIPFormError(field: "expires", reason: "the registration expiry must be a whole number of seconds")) }
        guard let keepAlive = Int(text("keepalive")) else { return .failure(SIPFormError(field: "keepalive", reason: "the keep-alive interval must be a whole number of seconds")) }
        let settings = SIPPlatformSettings(primary: text("primary"), secondary: text("secondary"), transport: text("transport").lowercased(),
                                           outboundProxy: text("proxy"), domain: text("domain"), registrationExpires: expires, keepAliveInterval: keepAlive)
        if let (field, reason) = settings.violation() { return .failure(SIPFormError(field: field, reason: reason)) }
        return .success(settings)
    }

    func saveSIPPlatform(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let settings: SIPPlatformSettings
        switch Self.sipSettings(form) {
        case .failure(let problem): return try await sipPage(request, context, error: (problem.field, problem.reason), form: form, status: .badRequest)
        case .success(let s): settings = s
        }
        if let problem = await backend?.sip?.validate(settings) {
            return try await sipPage(request, context, error: problem, form: form, status: .badRequest)
        }
        let before = try await store.sipPlatformSettings() ?? backend?.sip?.configured()
        let saved = try await store.saveSIPPlatformSettings(settings)
        await backend?.sip?.apply(saved)
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "SIP platform saved",
                                    detail: Self.sipChanges(before, saved))
        let running = backend?.sip?.status().running ?? false
        return Response(status: .seeOther, headers: [.location: "/cms/sip?done=\(running ? "saved" : "restart")"])
    }

    func resetSIPPlatform(_ request: Request, _ context: Context) async throws -> Response {
        try await resetToConfigurationFile(request, context, page: "/cms/sip", action: "SIP platform reset",
                                           clear: { try await store.clearSIPPlatformSettings() }, apply: { await backend?.sip?.apply(nil) })
    }

    /// What changed, for the audit log (`primary a → b; expires 600 → 900`).
    static func sipChanges(_ before: SIPPlatformSettings?, _ after: SIPPlatformSettings) -> String {
        let fields: [(String, (SIPPlatformSettings) -> String)] = [
            ("primary", \.primary), ("secondary", \.secondary), ("transport", \.transport), ("proxy", \.outboundProxy), ("domain", \.domain),
            ("expires", { String($0.registrationExpires) }), ("keep-alive", { String($0.keepAliveInterval) }),
        ]
        let changes = fields.compactMap { name, get -> String? in
            let old = before.map(get) ?? "", new = get(after)
            return old == new ? nil : "\(name) \(old.isEmpty ? "–" : old) → \(new.isEmpty ? "–" : new)"
        }
        return changes.isEmpty ? "no change" : changes.joined(separator: "; ")
    }
}

/// A SIP platform form field that is not valid, and why.
struct SIPFormError: Error, Equatable {
    var field: String
    var reason: String
}
