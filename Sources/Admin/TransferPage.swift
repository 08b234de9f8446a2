import Foundation
import Hummingbird
import NIOCore
import Store
import Synchronization

/// Uploaded imports waiting for the administrator's confirmation: the parsed file and the
/// state of the database it was compared with. A few, for a few minutes.
final class PendingImports: Sendable {
    struct Entry {
        let account: String
        let document: TransferDocument
        let basis: String
        let expires: Date
    }

    private let entries = Mutex<[String: Entry]>([:])
    static let lifetime: TimeInterval = 900
    static let capacity = 16

    func put(_ document: TransferDocument, basis: String, account: String, now: Date = Date()) -> String {
        let token = Store.randomToken()
        entries.withLock { e in
            e = e.filter { $0.value.expires > now }
            if e.count >= Self.capacity, let oldest = e.min(by: { $0.value.expires < $1.value.expires })?.key { e[oldest] = nil }
            e[token] = Entry(account: account, document: document, basis: basis, expires: now.addingTimeInterval(Self.lifetime))
        }
        return token
    }

    /// Takes the entry (once) when it belongs to `account` and has not expired.
    func take(_ token: String, account: String, now: Date = Date()) -> Entry? {
        entries.withLock { e in
            guard let entry = e[token], entry.account == account, entry.expires > now else { return nil }
            e[token] = nil
            return entry
        }
    }
}

/// Export and import between servers: extensions, and separately the configuration without
/// secrets, as a versioned JSON file. An upload is checked whole, then shown as what it would
/// add, change and remove; only a confirmation applies it, in one transaction.
extension AdminRoutes {
    func addTransferRoutes(_ cms: RouterGroup<Context>) {
        cms.get("transfer") { request, context in try await transferPage(request, context) }
        cms.get("transfer/extensions.json") { request, context in try await download(request, context, extensions: true) }
        cms.get("transfer/configuration.json") { request, context in try await download(request, context, extensions: false) }
        cms.post("transfer/preview") { request, context in try await previewImport(request, context) }
        cms.post("transfer/apply") { request, context in try await applyImport(request, context) }
    }

    func transferPage(_ request: Request, _ context: Context, body extra: String = "", status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        var body = extra
        if request.uri.queryParameters.get("done") == "imported" { body += HTML.message("Imported. Extensions register or unregister within seconds.", kind: "notice") }
        body += """
            <h2>Export</h2>
            <p><a href="/cms/transfer/extensions.json" id="export-extensions" download>Download the extensions</a> \
            (with their digest passwords: keep the file safe) · \
            <a href="/cms/transfer/configuration.json" id="export-configuration" download>Download the configuration</a> \
            (services, TURN TTL and addresses; no secrets).</p>
            <h2>Import</h2>
            <p>The file replaces what it holds: importing extensions removes those not in the file. Nothing changes until you confirm what it would do.</p>
            <form class="panel wide" method="post" action="/cms/transfer/preview" enctype="multipart/form-data">\(HTML.csrfField(session.csrfToken))
            <label for="file">Export file (JSON)</label><input type="file" id="file" name="file" accept="application/json,.json" required>
            <button type="submit" id="preview">Check the file</button>
            </form>
            """
        return Self.html(status, HTML.page(title: "Export and import", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/transfer", body: body))
    }

    func download(_ request: Request, _ context: Context, extensions: Bool) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let document = try await store.export(extensions: extensions, configuration: !extensions)
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let name = "tandem-\(extensions ? "extensions" : "configuration")-\(stamp).json"
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "exported",
                                    detail: extensions ? "\(document.extensions?.count ?? 0) extensions" : "configuration")
        return Response(status: .ok, headers: [.contentType: "application/json", .contentDisposition: "attachment; filename=\"\(name)\""],
                        body: .init(byteBuffer: ByteBuffer(data: document.encoded())))
    }

    func previewImport(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        guard let (session, form) = try await authorizedUpload(&request, limit: TransferDocument.maximumSize + 64 * 1024) else {
            return try await transferPage(request, context, body: HTML.message("Nothing was imported: \(TransferDocument.Problem.tooLarge(limit: TransferDocument.maximumSize)).", kind: "error"), status: .contentTooLarge)
        }
        guard let file = form["file"] else { throw HTTPError(.badRequest, message: "No file was uploaded.") }
        let document: TransferDocument
        do {
            document = try TransferDocument.parse(file.body)
        } catch {
            return try await transferPage(request, context, body: HTML.message("Nothing was imported: \(error).", kind: "error"), status: .badRequest)
        }
        let plan = try await store.importPlan(document)
        let token = pending.put(document, basis: plan.basis, account: session.account)
        var body = "<h2>What the file would do</h2>" + Self.planTable(plan)
        if plan.isEmpty {
            body += HTML.message("The file holds what the server holds already: nothing would change.", kind: "notice")
        } else {
            body += """
                <form class="panel" method="post" action="/cms/transfer/apply">\(HTML.csrfField(session.csrfToken))
                <input type="hidden" name="token" value="\(HTML.escape(token))">
                <button type="submit" id="apply-import">Apply these changes</button> <a href="/cms/transfer">Cancel</a>
                </form>
                """
        }
        return try await transferPage(request, context, body: body)
    }

    /// The plan as a table: part, added, changed, removed (the first names of each).
    static func planTable(_ plan: ImportPlan) -> String {
        func names(_ list: [String]) -> String {
            list.isEmpty ? "—" : "\(list.count): " + HTML.escape(list.prefix(20).joined(separator: ", ")) + (list.count > 20 ? ", …" : "")
        }
        var rows: [[String]] = []
        if let e = plan.extensions { rows.append(["Extensions", names(e.added), names(e.changed), names(e.removed)]) }
        if let s = plan.services { rows.append(["Services", names(s.added), names(s.changed), names(s.removed)]) }
        if let t = plan.turn { rows.append(["TURN", "—", t.isEmpty ? "—" : HTML.escape(t.joined(separator: "; ")), "—"]) }
        if let s = plan.settings, !s.isEmpty { rows.append(["SIP platform and payload", "—", HTML.escape(s.joined(separator: "; ")), "—"]) }
        return HTML.table(["Part", "Added", "Changed", "Removed"], rows, id: "import-plan")
    }

    func applyImport(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        guard let entry = pending.take(form["token"] ?? "", account: session.account) else {
            throw HTTPError(.conflict, message: "This import has expired or was applied already; upload the file again.")
        }
        let result: ImportResult
        do {
            result = try await store.apply(entry.document, expecting: entry.basis)
        } catch StoreError.changedSincePlan {
            throw HTTPError(.conflict, message: StoreError.changedSincePlan.description)
        }
        // Sessions whose extension or service went with the import end, with their calls.
        for id in result.endedSessions { await backend?.endSession(id) }
        let plan = result.plan
        if entry.document.configuration != nil { await backend?.turn?.apply(try await store.turnSettings()) }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "imported", detail: Self.summary(plan))
        return Response(status: .seeOther, headers: [.location: "/cms/transfer?done=imported"])
    }

    static func summary(_ plan: ImportPlan) -> String {
        var parts: [String] = []
        if let e = plan.extensions { parts.append("extensions +\(e.added.count) ~\(e.changed.count) -\(e.removed.count)") }
        if let s = plan.services { parts.append("services +\(s.added.count) ~\(s.changed.count) -\(s.removed.count)") }
        if let t = plan.turn, !t.isEmpty { parts.append("turn: " + t.joined(separator: "; ")) }
        if let s = plan.settings, !s.isEmpty { parts.append("settings: " + s.joined(separator: "; ")) }
        return parts.joined(separator: ", ")
    }
}
