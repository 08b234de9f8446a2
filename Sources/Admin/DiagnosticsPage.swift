import Foundation
import Hummingbird
import Store

/// The diagnostics page: the log level, per subsystem, changed at once; the log file's
/// retention (number and size of files); "Download diagnostics" — a `.tar.gz` named with its
/// time, of the logs, the configuration with secrets redacted, the runtime settings, the audit
/// log, metrics and version, with an optional time-limited packet capture of the SIP and
/// media ports.
extension AdminRoutes {
    func addDiagnosticsRoutes(_ cms: RouterGroup<Context>) {
        cms.get("diagnostics") { request, context in try await diagnosticsPage(request, context) }
        cms.post("diagnostics/logging") { request, context in try await saveLogging(request, context) }
        cms.post("diagnostics/reset") { request, context in try await resetLogging(request, context) }
        cms.post("diagnostics/download") { request, context in try await downloadDiagnostics(request, context) }
    }

    func diagnosticsPage(_ request: Request, _ context: Context, error: (field: String, reason: String)? = nil, form: FormBody? = nil,
                         status code: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        guard let backend = backend?.diagnostics else { throw HTTPError(.notFound) }
        let stored = try await store.diagnosticsSettings()
        let shown = backend.current() ?? stored ?? backend.configured()
        var body = error.map { HTML.message("Not saved: \($0.reason).", kind: "error") } ?? ""
        switch request.uri.queryParameters.get("done") {
        case "saved": body += HTML.message("Saved and in force now.", kind: "notice")
        case "reset": body += HTML.message("The configuration file's log.level, log.max-files and log.max-file-size apply again.", kind: "notice")
        default: break
        }
        func options(_ selected: String, inherit: Bool) -> String {
            (inherit ? ["<option value=\"\"\(selected.isEmpty ? " selected" : "")>(default)</option>"] : [])
                .joined() + DiagnosticsSettings.levelNames.map { "<option value=\"\($0)\"\($0 == selected ? " selected" : "")>\($0)</option>" }.joined()
        }
        let rows = backend.subsystems.map { source, covers in
            let id = "level-\(source)"
            let problem = error?.field == id ? error?.reason : nil
            return "<tr><td><label for=\"\(id)\"><code>\(HTML.escape(source))</code></label></td><td>\(HTML.escape(covers))</td>"
                + "<td><select id=\"\(id)\" name=\"\(id)\">\(options(form?[id] ?? shown.levels[source] ?? "", inherit: true))</select>\(HTML.fieldError(id, problem))</td></tr>"
        }.joined()
        func number(_ name: String, _ label: String, _ value: Int, _ range: ClosedRange<Int>, hint: String) -> String {
            let problem = error?.field == name ? error?.reason : nil
            return """
                <label for="\(name)">\(label)</label>
                <input type="number" id="\(name)" name="\(name)" min="\(range.lowerBound)" max="\(range.upperBound)" value="\(HTML.escape(form?[name] ?? String(value)))" required aria-describedby="\(name)-hint">
                \(HTML.fieldError(name, problem))<p class="muted" id="\(name)-hint">\(hint)</p>
                """
        }
        body += "<p id=\"diagnostics-source\">" + (stored != nil ? "Set here; the configuration file's <code>log.*</code> levels and retention do not apply."
            : "From the configuration file's <code>log.level</code>, <code>log.max-files</code> and <code>log.max-file-size</code>; saving here replaces them.") + "</p>"
        body += """
            <h2>Logging</h2>
            <form class="panel wide" method="post" action="/cms/diagnostics/logging">\(HTML.csrfField(session.csrfToken))
            <label for="level">Default level</label><select id="level" name="level">\(options(form?["level"] ?? shown.defaultLevel, inherit: false))</select>
            \(HTML.fieldError("level", error?.field == "level" ? error?.reason : nil))
            <table id="subsystems"><thead><tr><th>Subsystem</th><th>Covers</th><th>Level</th></tr></thead><tbody>\(rows)</tbody></table>
            \(number("max-files", "Log files kept", shown.maxFiles, DiagnosticsSettings.maxFilesRange, hint: "tandem.log and its rotated files, 1–100."))
            \(number("max-file-size", "Size of a log file (KiB)", shown.maxFileSize / 1024, 64...1_048_576, hint: "tandem.log rotates at this size, 64 KiB – 1 GiB."))
            <button type="submit" id="save-logging">Apply</button>
            </form>
            """
        if stored != nil {
            body += HTML.actionForm("/cms/diagnostics/reset", csrf: session.csrfToken, text: "Drop the levels and retention set here and use the configuration file's again.",
                                    buttonID: "reset-logging", label: "Use the configuration file")
        }
        let capture = backend.captureTool.map { tool in
            """
            <label for="capture">Packet capture first (seconds, 0 = none)</label>
            <input type="number" id="capture" name="capture" min="0" max="\(backend.maximumCaptureSeconds)" value="0" aria-describedby="capture-hint">
            <p class="muted" id="capture-hint">\(HTML.escape(tool)) records the SIP and media ports for up to \(backend.maximumCaptureSeconds) s into capture.pcapng; the download waits for it.</p>
            """
        } ?? "<p class=\"muted\" id=\"capture-hint\">No packet capture: dumpcap is not installed (Debian: tshark).</p>"
        body += """
            <h2>Download diagnostics</h2>
            <form class="panel wide" method="post" action="/cms/diagnostics/download">\(HTML.csrfField(session.csrfToken))
            <p>A .tar.gz of the log files, the configuration with every secret redacted, the runtime settings (no secrets), the audit log, a metrics snapshot and version facts.</p>
            \(capture)
            <button type="submit" id="download-diagnostics">Download diagnostics</button>
            </form>
            """
        return Self.html(code, HTML.page(title: "Diagnostics", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/diagnostics", body: body))
    }

    func saveLogging(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        guard let backend = backend?.diagnostics else { throw HTTPError(.notFound) }
        var levels: [String: String] = [:]
        for (source, _) in backend.subsystems {
            if let value = form["level-\(source)"], !value.isEmpty { levels[source] = value }
        }
        guard let files = Int(form["max-files"] ?? ""), let kibibytes = Int(form["max-file-size"] ?? ""), kibibytes <= 1_048_576 else {
            return try await diagnosticsPage(request, context, error: ("max-files", "the retention must be whole numbers"), form: form, status: .badRequest)
        }
        let settings = DiagnosticsSettings(defaultLevel: form["level"] ?? "", levels: levels, maxFiles: files, maxFileSize: kibibytes * 1024)
        if let problem = settings.violation() { return try await diagnosticsPage(request, context, error: problem, form: form, status: .badRequest) }
        try await store.saveDiagnosticsSettings(settings)
        backend.apply(settings)
        let detail = "level \(settings.defaultLevel)" + levels.sorted { $0.key < $1.key }.map { "; \($0.key) \($0.value)" }.joined()
            + "; \(files) files of \(kibibytes) KiB"
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "logging changed", detail: detail)
        return Response(status: .seeOther, headers: [.location: "/cms/diagnostics?done=saved"])
    }

    func resetLogging(_ request: Request, _ context: Context) async throws -> Response {
        try await resetToConfigurationFile(request, context, page: "/cms/diagnostics", action: "logging reset",
                                           clear: { try await store.clearDiagnosticsSettings() }, apply: { backend?.diagnostics?.apply(nil) })
    }

    func downloadDiagnostics(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        guard let backend = backend?.diagnostics else { throw HTTPError(.notFound) }
        let seconds = min(max(Int(form["capture"] ?? "0") ?? 0, 0), backend.captureTool == nil ? 0 : backend.maximumCaptureSeconds)
        // Audited first, so the archive's audit log shows its own download.
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "diagnostics downloaded",
                                    detail: seconds > 0 ? "with a \(seconds) s capture" : "no capture")
        let (name, data) = try await backend.archive(seconds)
        return Response(status: .ok, headers: [.contentType: "application/gzip", .contentDisposition: "attachment; filename=\"\(name)\""],
                        body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}
