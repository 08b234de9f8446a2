import Foundation
import Hummingbird
import Store

/// The payload page: SRTP on the SIP leg (SDES, RFC 4568: nonsecure only, secure preferred,
/// secure only), the audio codecs the SIP leg offers and accepts and their order (Opus,
/// RFC 7587; G.711, RFC 3551), the video codecs and their order, and what is fixed (DTLS-SRTP on the WebRTC leg, RFC 5764). Saved settings apply to the
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
    static var codecNames: [String: String] { [
        "opus": "Opus (RFC 7587)", "pcmu": "G.711 µ-law (PCMU)", "pcma": "G.711 A-law (PCMA)",
        "vp8": "VP8 (RFC 7741)", "vp9": "VP9 (RFC 9628)", "h264": "H.264 (RFC 6184)",
    ] }

    /// One codec per row: an "enabled" box and its place in the order (`order-<name>`), the
    /// enabled ones first as stored, then the rest.
    static func codecRows(field: String, names: [String], enabled: [String]) -> String {
        let shown = enabled + names.filter { !enabled.contains($0) }
        return shown.enumerated().map { index, name in
            let places = (1...names.count).map { "<option value=\"\($0)\"\($0 == index + 1 ? " selected" : "")>\($0)</option>" }.joined()
            return """
                <div class="codec"><input type="checkbox" id="\(field)-\(name)" name="\(field)" value="\(name)"\(enabled.contains(name) ? " checked" : "")>
                <label for="\(field)-\(name)">\(HTML.escape(codecNames[name] ?? name))</label>
                <label class="place" for="order-\(name)">place</label><select id="order-\(name)" name="order-\(name)" aria-label="Place of \(HTML.escape(codecNames[name] ?? name)) in the order">\(places)</select></div>
                """
        }.joined()
    }

    /// The enabled codecs of `field` in the places chosen (ties keep the list's order).
    static func orderedCodecs(_ form: FormBody, field: String, names: [String]) -> [String] {
        let enabled = form.values(field)
        let place = { (name: String) in Int(form["order-\(name)"] ?? "") ?? Int.max }
        return enabled.enumerated().sorted { (place($0.element), $0.offset) < (place($1.element), $1.offset) }.map { $0.element }
    }

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
        body += """
            <form class="panel wide" method="post" action="/cms/payload">\(HTML.csrfField(session.csrfToken))
            <fieldset><legend>SRTP on the SIP leg</legend>\(radios)\(HTML.fieldError("srtp", error?.field == "srtp" ? error?.reason : nil))</fieldset>
            <fieldset><legend>Audio codecs of the SIP leg, in the order offered</legend>
            \(Self.codecRows(field: "codec", names: PayloadSettings.audioCodecNames, enabled: shown.audioCodecs))
            \(HTML.fieldError("codecs", error?.field == "codecs" ? error?.reason : nil))
            <p class="muted" id="codecs-hint">Browsers always speak Opus. With Opus first, a platform that accepts Opus gets the browser's Opus untranscoded (and a caller reaching a Tandem agent through the PBX talks Opus end to end); a platform that answers with G.711 gets G.711, transcoded. With G.711 first, Tandem transcodes Opus to it, and passes a browser's own G.711 through when the platform takes that law.</p></fieldset>
            <fieldset><legend>Video codecs, in the order offered</legend>
            \(Self.codecRows(field: "video", names: PayloadSettings.videoCodecNames, enabled: shown.videoCodecs))
            \(HTML.fieldError("video", error?.field == "video" ? error?.reason : nil))
            <p class="muted" id="video-hint">Not in effect yet: Tandem does not relay video, and declines a browser's video stream (port 0) whatever is set here. The codecs enabled here and their order apply once video relaying lands.</p></fieldset>
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
        let settings = PayloadSettings(srtpMode: form["srtp"] ?? "", audioCodecs: Self.orderedCodecs(form, field: "codec", names: PayloadSettings.audioCodecNames),
                                       videoCodecs: Self.orderedCodecs(form, field: "video", names: PayloadSettings.videoCodecNames))
        if let problem = settings.violation() { return try await payloadPage(request, context, error: problem, status: .badRequest) }
        let before = try await store.payloadSettings() ?? backend?.payload?.configured()
        let saved = try await store.savePayloadSettings(settings)
        await backend?.payload?.apply(saved)
        var changes: [String] = []
        if before?.srtpMode != saved.srtpMode { changes.append("srtp \(before?.srtpMode ?? "–") → \(saved.srtpMode)") }
        if before?.audioCodecs != saved.audioCodecs { changes.append("audio \(before?.audioCodecs.joined(separator: ",") ?? "–") → \(saved.audioCodecs.joined(separator: ","))") }
        if before?.videoCodecs != saved.videoCodecs { changes.append("video \(before?.videoCodecs.joined(separator: ",") ?? "–") → \(saved.videoCodecs.joined(separator: ","))") }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "payload saved",
                                    detail: changes.isEmpty ? "no change" : changes.joined(separator: "; "))
        return Response(status: .seeOther, headers: [.location: "/cms/payload?done=saved"])
    }

    func resetPayload(_ request: Request, _ context: Context) async throws -> Response {
        try await resetToConfigurationFile(request, context, page: "/cms/payload", action: "payload reset",
                                           clear: { try await store.clearPayloadSettings() }, apply: { await backend?.payload?.apply(nil) })
    }
}
