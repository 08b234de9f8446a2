import Foundation
import Hummingbird
import Store

/// The payload page: SRTP on the SIP leg (SDES, RFC 4568: nonsecure only, secure preferred,
/// secure only), the G.711 laws the SIP leg offers and accepts and their order (RFC 3551),
/// and what is fixed (DTLS-SRTP on the WebRTC leg, RFC 5764). Saved settings apply to the
/// next call without a restart; calls in progress keep what they negotiated.
extension AdminRoutes {
    func addPayloadRoutes(_ cms: RouterGroup<Context>) {
        cms.get("payload") { request, context in try await payloadPage(request, context) }
        cms.post("payload") { request, context in try await savePayload(request, context) }
        cms.post("payload/reset") { request, context in try await resetPayload(request, context) }
    }

    static var srtpChoices: [(String, String, String)] { [
        ("off", "Nonsecure only", "Plain RTP. A platform that offers only SRTP (RTP/SAVP) is refused with 488."),
        ("preferred", "Secure preferred", "Offers SRTP (a=crypto AES_CM_128_HMAC_SHA1_80 on RTP/AVP); a platform without it gets plain RTP."),
        ("required", "Secure only", "Offers RTP/SAVP; a platform without SRTP is refused (488 to its offers, BYE after its answer)."),
    ] }
    static var lawNames: [String: String] { ["pcmu": "G.711 µ-law (PCMU)", "pcma": "G.711 A-law (PCMA)"] }

    func payloadPage(_ request: Request, _ context: Context, error: (field: String, reason: String)? = nil, status code: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let stored = try await store.payloadSettings()
        let shown = stored ?? backend?.payload?.configured() ?? PayloadSettings(srtpMode: "off", audioCodecs: ["pcmu", "pcma"])
        var body = error.map { HTML.message("Not saved: \($0.reason).", kind: "error") } ?? ""
        switch request.uri.queryParameters.get("done") {
        case "saved": body += HTML.message("Saved. The next call uses these settings; calls in progress keep theirs.", kind: "notice")
        case "reset": body += HTML.message("The configuration file's sip.srtp and media.sip-codec apply again.", kind: "notice")
        default: break
        }
        body += "<p id=\"payload-source\">" + (stored != nil ? "Set here; the configuration file's <code>sip.srtp</code> and <code>media.sip-codec</code> do not apply."
            : "From the configuration file's <code>sip.srtp</code> and <code>media.sip-codec</code>; saving here replaces them.") + "</p>"
        let radios = Self.srtpChoices.map { value, label, hint in
            """
            <div class="choice"><input type="radio" id="srtp-\(value)" name="srtp" value="\(value)"\(shown.srtpMode == value ? " checked" : "") aria-describedby="srtp-\(value)-hint">
            <label for="srtp-\(value)">\(label)</label><p class="muted" id="srtp-\(value)-hint">\(hint)</p></div>
            """
        }.joined()
        let order = shown.audioCodecs + PayloadSettings.audioCodecNames.filter { !shown.audioCodecs.contains($0) }
        let codecs = order.map { name in
            "<div class=\"choice\"><input type=\"checkbox\" id=\"codec-\(name)\" name=\"codec\" value=\"\(name)\"\(shown.audioCodecs.contains(name) ? " checked" : "")> <label for=\"codec-\(name)\">\(HTML.escape(Self.lawNames[name] ?? name))</label></div>"
        }.joined()
        let first = shown.audioCodecs.first ?? "pcmu"
        let firstOptions = PayloadSettings.audioCodecNames.map { "<option value=\"\($0)\"\($0 == first ? " selected" : "")>\(HTML.escape(Self.lawNames[$0] ?? $0))</option>" }.joined()
        body += """
            <form class="panel wide" method="post" action="/cms/payload">\(HTML.csrfField(session.csrfToken))
            <fieldset><legend>SRTP on the SIP leg</legend>\(radios)\(HTML.fieldError("srtp", error?.field == "srtp" ? error?.reason : nil))</fieldset>
            <fieldset><legend>Audio codecs of the SIP leg</legend>\(codecs)
            <label for="first">Offered first</label><select id="first" name="first">\(firstOptions)</select>
            \(HTML.fieldError("codecs", error?.field == "codecs" ? error?.reason : nil))
            <p class="muted">Browsers speak Opus or G.711; Tandem transcodes Opus to the first enabled law and passes a browser's G.711 through when the platform takes it. Opus toward the platform is not offered.</p></fieldset>
            <fieldset><legend>WebRTC leg</legend><p id="dtls">DTLS-SRTP (RFC 5764): always on — browsers require it.</p></fieldset>
            <button type="submit" id="save-payload">Save</button>
            </form>
            """
        if stored != nil {
            body += HTML.actionForm("/cms/payload/reset", csrf: session.csrfToken, text: "Drop the settings made here and use the configuration file's again.",
                                    buttonID: "reset-payload", label: "Use the configuration file")
        }
        return Self.html(code, HTML.page(title: "Payload", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/payload", body: body))
    }

    func savePayload(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let enabled = form.values("codec")
        let first = form["first"] ?? ""
        let codecs = (enabled.contains(first) ? [first] : []) + enabled.filter { $0 != first }
        let settings = PayloadSettings(srtpMode: form["srtp"] ?? "", audioCodecs: codecs)
        if let problem = settings.violation() { return try await payloadPage(request, context, error: problem, status: .badRequest) }
        let before = try await store.payloadSettings() ?? backend?.payload?.configured()
        let saved = try await store.savePayloadSettings(settings)
        await backend?.payload?.apply(saved)
        var changes: [String] = []
        if before?.srtpMode != saved.srtpMode { changes.append("srtp \(before?.srtpMode ?? "–") → \(saved.srtpMode)") }
        if before?.audioCodecs != saved.audioCodecs { changes.append("audio \(before?.audioCodecs.joined(separator: ",") ?? "–") → \(saved.audioCodecs.joined(separator: ","))") }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "payload saved",
                                    detail: changes.isEmpty ? "no change" : changes.joined(separator: "; "))
        return Response(status: .seeOther, headers: [.location: "/cms/payload?done=saved"])
    }

    func resetPayload(_ request: Request, _ context: Context) async throws -> Response {
        try await resetToConfigurationFile(request, context, page: "/cms/payload", action: "payload reset",
                                           clear: { try await store.clearPayloadSettings() }, apply: { await backend?.payload?.apply(nil) })
    }
}
