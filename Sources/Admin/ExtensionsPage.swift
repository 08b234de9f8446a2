import Foundation
import Hummingbird
import NIOCore
import Store

/// Contiguous runs of numbered extensions (`3000`–`3099`, `+4930100`–`+4930199`): what the
/// administrator added as ranges, recovered from the numbers themselves.
struct ExtensionRun: Equatable {
    var first: String
    var last: String
    var count: Int

    /// The runs of `numbers` (sorted in Store order): numbers of the same width and prefix
    /// (`+` or none) that follow one another by one. Names that are not numbers are left out.
    static func runs(_ numbers: [String]) -> [ExtensionRun] {
        var runs: [ExtensionRun] = []
        var previous: (prefix: String, width: Int, value: Int)?
        for number in numbers {
            guard let parsed = parse(number) else { previous = nil; continue }
            if let p = previous, p.prefix == parsed.prefix, p.width == parsed.width, parsed.value == p.value + 1, !runs.isEmpty {
                runs[runs.count - 1].last = number
                runs[runs.count - 1].count += 1
            } else {
                runs.append(ExtensionRun(first: number, last: number, count: 1))
            }
            previous = parsed
        }
        return runs
    }

    static func parse(_ number: String) -> (prefix: String, width: Int, value: Int)? {
        let prefix = number.hasPrefix("+") ? "+" : ""
        let digits = number.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits) else { return nil }
        return (prefix, digits.count, value)
    }

    /// Whether `number` lies between this run's bounds (it need not be an extension).
    func spans(_ number: String) -> Bool {
        guard let n = Self.parse(number), let a = Self.parse(first), let b = Self.parse(last), n.prefix == a.prefix, n.width == a.width else { return false }
        return (a.value...b.value).contains(n.value)
    }

    var label: String { first == last ? first : "\(first)–\(last)" }
}

extension AdminRoutes {
    static var extensionsPerPage: Int { 100 }

    func addExtensionRoutes(_ cms: RouterGroup<Context>) {
        cms.get("extensions") { request, context in try await extensionsPage(request, context) }
        cms.post("extensions/add") { request, context in try await addExtensions(request, context) }
        cms.get("extensions/edit") { request, context in try await editExtensionPage(request, context) }
        cms.post("extensions/edit") { request, context in try await editExtension(request, context) }
        cms.post("extensions/remove") { request, context in try await removeExtension(request, context) }
        cms.get("extensions/remove-all") { request, context in try await removeAllPage(request, context) }
        cms.post("extensions/remove-all") { request, context in try await removeAll(request, context) }
    }

    /// The outcomes a redirect after a change may name (fixed texts: nothing from the URL is shown).
    static func notice(_ request: Request) -> String? {
        let n = Int(request.uri.queryParameters.get("n") ?? "") ?? 0
        switch request.uri.queryParameters.get("done") {
        case "added": return "Added \(n) extension\(n == 1 ? "" : "s"). They register (or become available to sessions) within seconds."
        case "edited": return "Saved the extension. The new credentials are used from its next registration."
        case "removed": return "Removed \(n) extension\(n == 1 ? "" : "s"): they unregister, and the sessions holding them end with their calls."
        default: return nil
        }
    }

    func extensionsPage(_ request: Request, _ context: Context, error: String? = nil, form: FormBody? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let all = try await store.extensions()
        let states = await backend?.extensionStates() ?? [:]
        let runs = ExtensionRun.runs(all.map(\.number))
        var body = ""
        if let error { body += HTML.message(error, kind: "error") }
        if let notice = Self.notice(request) { body += HTML.message(notice, kind: "notice") }

        // Number search: does this number belong to a range?
        let query = (request.uri.queryParameters.get("q") ?? "").trimmingCharacters(in: .whitespaces)
        body += """
            <form class="inline" method="get" action="/cms/extensions"><label for="q">Find a number</label>
            <input type="text" id="q" name="q" value="\(HTML.escape(query))" maxlength="64" placeholder="3042 or +4930100"> <button type="submit" id="find">Find</button></form>
            """
        if !query.isEmpty {
            let run = runs.first { $0.spans(query) }
            let text: String
            if let record = all.first(where: { $0.number == query }) {
                text = "\(record.number) is an extension (\(states[record.number] ?? "unregistered"))" + (run.map { ", in the range \($0.label) of \($0.count)." } ?? ".")
            } else if let run {
                text = "\(query) is not an extension, but lies inside the range \(run.label)."
            } else {
                text = "\(query) is not an extension and belongs to no range."
            }
            body += "<p id=\"search-result\" class=\"notice\">\(HTML.escape(text))</p>"
        }

        body += "<h2>Add a range</h2>" + addForm(csrf: session.csrfToken, form: form)

        body += "<h2>Ranges</h2>"
        body += runs.isEmpty ? "<p class=\"muted\">None.</p>"
            : HTML.table(["Range", "Extensions"], runs.prefix(200).map { [HTML.escape($0.label), "\($0.count)"] }, id: "ranges")

        let page = max(0, Int(request.uri.queryParameters.get("page") ?? "") ?? 0)
        let slice = all.dropFirst(page * Self.extensionsPerPage).prefix(Self.extensionsPerPage)
        body += "<h2>Extensions (\(all.count))</h2>"
        if all.isEmpty {
            body += "<p class=\"muted\">No extensions yet.</p>"
        } else {
            body += HTML.table(["Extension", "State", "Authentication", "Digest username", "Realm", ""], slice.map { r in
                let number = HTML.escape(r.number)
                let actions = """
                    <a href="/cms/extensions/edit?number=\(FormBody.encode(r.number))">Edit</a> \
                    <form class="inline" method="post" action="/cms/extensions/remove">\(HTML.csrfField(session.csrfToken))<input type="hidden" name="number" value="\(number)"><button type="submit" class="small danger">Remove</button></form>
                    """
                return [number, HTML.escape(states[r.number] ?? "unregistered"), r.authentication.rawValue, HTML.escape(r.digestUsername), HTML.escape(r.realm), actions]
            }, id: "extensions")
            let pages = (all.count + Self.extensionsPerPage - 1) / Self.extensionsPerPage
            if pages > 1 {
                var links: [String] = []
                if page > 0 { links.append("<a href=\"/cms/extensions?page=\(page - 1)\">Previous</a>") }
                links.append("page \(page + 1) of \(pages)")
                if page + 1 < pages { links.append("<a href=\"/cms/extensions?page=\(page + 1)\" id=\"next-page\">Next</a>") }
                body += "<p>" + links.joined(separator: " · ") + "</p>"
            }
            body += "<p><a href=\"/cms/extensions/remove-all\" id=\"remove-all\">Remove all extensions…</a></p>"
        }
        return Self.html(status, HTML.page(title: "Extensions", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/extensions", body: body))
    }

    func addForm(csrf: String, form: FormBody?) -> String {
        func value(_ name: String) -> String { HTML.escape(form?[name] ?? "") }
        func checked(_ name: String) -> String { form?[name] != nil ? " checked" : "" }
        return """
            <form class="panel wide" method="post" action="/cms/extensions/add">\(HTML.csrfField(csrf))
            <div class="row"><div><label for="from">From</label><input type="text" id="from" name="from" value="\(value("from"))" required maxlength="64" placeholder="3000 or +4930100"></div>
            <div><label for="to">To</label><input type="text" id="to" name="to" value="\(value("to"))" maxlength="64" placeholder="3099 (empty: one extension)"></div></div>
            <label class="check"><input type="checkbox" id="digest" name="digest"\(checked("digest"))> Digest authentication</label>
            <div class="row"><div><label for="username">Digest username</label><input type="text" id="username" name="username" value="\(value("username"))" maxlength="256" placeholder="empty: the extension's number"></div>
            <div><label class="check"><input type="checkbox" id="username-increment" name="username-increment"\(checked("username-increment"))> count up</label></div></div>
            <div class="row"><div><label for="password">Digest password</label><input type="text" id="password" name="password" value="\(value("password"))" maxlength="256" autocomplete="off"></div>
            <div><label class="check"><input type="checkbox" id="password-increment" name="password-increment"\(checked("password-increment"))> count up</label></div></div>
            <div class="row"><div><label for="realm">Realm</label><input type="text" id="realm" name="realm" value="\(value("realm"))" maxlength="256" placeholder="empty: whichever the platform names"></div>
            <div><label class="check"><input type="checkbox" id="realm-increment" name="realm-increment"\(checked("realm-increment"))> count up</label></div></div>
            <label class="check"><input type="checkbox" id="replace" name="replace"\(checked("replace"))> Replace extensions that exist</label>
            <button type="submit" id="add">Add</button>
            </form>
            """
    }

    func addExtensions(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let from = (form["from"] ?? "").trimmingCharacters(in: .whitespaces)
        let to = (form["to"] ?? "").trimmingCharacters(in: .whitespaces)
        let username = (form["username"] ?? "").trimmingCharacters(in: .whitespaces)
        var increment = Set<ExtensionProvisioning.CountedField>()
        for field in ExtensionProvisioning.CountedField.allCases where form["\(field.rawValue)-increment"] != nil { increment.insert(field) }
        let records: [ExtensionRecord]
        do {
            let numbers = try ExtensionProvisioning.numbers(to.isEmpty ? from : "\(from)-\(to)")
            records = try ExtensionProvisioning.records(numbers: numbers, digest: form["digest"] != nil, username: username.isEmpty ? nil : username,
                                                        password: form["password"], realm: (form["realm"] ?? "").trimmingCharacters(in: .whitespaces), increment: increment)
            try await store.addExtensions(records, replace: form["replace"] != nil)
        } catch let error as ExtensionProvisioning.Error {
            return try await extensionsPage(request, context, error: "Nothing was added: \(error.description).", form: form, status: .badRequest)
        } catch let error as StoreError {
            return try await extensionsPage(request, context, error: "Nothing was added: \(error.description).", form: form, status: .badRequest)
        }
        let label = records.count == 1 ? records[0].number : "\(records[0].number)–\(records[records.count - 1].number)"
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "extensions added", detail: "\(label) (\(records.count))")
        return Response(status: .seeOther, headers: [.location: "/cms/extensions?done=added&n=\(records.count)"])
    }

    func editExtensionPage(_ request: Request, _ context: Context, number given: String? = nil, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let number = given ?? request.uri.queryParameters.get("number") ?? ""
        guard let record = try await store.extensions().first(where: { $0.number == number }) else {
            throw HTTPError(.notFound, message: "There is no extension \(number).")
        }
        var body = error.map { HTML.message($0, kind: "error") } ?? ""
        body += """
            <form class="panel" method="post" action="/cms/extensions/edit">\(HTML.csrfField(session.csrfToken))
            <input type="hidden" name="number" value="\(HTML.escape(record.number))">
            <label class="check"><input type="checkbox" id="digest" name="digest"\(record.authentication == .digest ? " checked" : "")> Digest authentication</label>
            <label for="username">Digest username</label><input type="text" id="username" name="username" value="\(HTML.escape(record.digestUsername))" maxlength="256">
            <label for="password">Digest password</label><input type="password" id="password" name="password" value="" maxlength="256" autocomplete="new-password" placeholder="unchanged">
            <label for="realm">Realm</label><input type="text" id="realm" name="realm" value="\(HTML.escape(record.realm))" maxlength="256">
            <button type="submit" id="save">Save</button> <a href="/cms/extensions">Cancel</a>
            </form>
            """
        return Self.html(status, HTML.page(title: "Extension \(record.number)", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/extensions", body: body))
    }

    func editExtension(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let number = form["number"] ?? ""
        guard var record = try await store.extensions().first(where: { $0.number == number }) else {
            throw HTTPError(.notFound, message: "There is no extension \(number).")
        }
        record.authentication = form["digest"] != nil ? .digest : .none
        record.digestUsername = (form["username"] ?? "").trimmingCharacters(in: .whitespaces)
        if let password = form["password"], !password.isEmpty { record.digestPassword = password }
        record.realm = (form["realm"] ?? "").trimmingCharacters(in: .whitespaces)
        if record.authentication == .digest, record.digestUsername.isEmpty { record.digestUsername = record.number }
        do {
            try await store.addExtensions([record], replace: true)
        } catch let error as StoreError {
            return try await editExtensionPage(request, context, number: number, error: "Not saved: \(error.description).", status: .badRequest)
        }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "extension edited", detail: number)
        return Response(status: .seeOther, headers: [.location: "/cms/extensions?done=edited"])
    }

    func removeExtension(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let number = form["number"] ?? ""
        let removed = try await remove([number])
        guard removed > 0 else { throw HTTPError(.notFound, message: "There is no extension \(number).") }
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "extension removed", detail: number)
        return Response(status: .seeOther, headers: [.location: "/cms/extensions?done=removed&n=\(removed)"])
    }

    func removeAllPage(_ request: Request, _ context: Context) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        let count = try await store.extensions().count
        let body = """
            <p class="warning">This removes all \(count) extensions. They unregister from the platform, and every browser session \
            holding one ends, with its calls. It cannot be undone (export them first to keep a copy).</p>
            <form class="panel" method="post" action="/cms/extensions/remove-all">\(HTML.csrfField(session.csrfToken))
            <input type="hidden" name="count" value="\(count)">
            <label class="check"><input type="checkbox" id="confirm" name="confirm" required> Yes, remove all \(count) extensions</label>
            <button type="submit" class="danger" id="remove-all-confirm">Remove all</button> <a href="/cms/extensions">Cancel</a>
            </form>
            """
        return Self.html(.ok, HTML.page(title: "Remove all extensions", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/extensions", body: body))
    }

    func removeAll(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        let numbers = try await store.extensions().map(\.number)
        // The count the page showed: a stale confirmation does not remove extensions added since.
        guard form["confirm"] != nil, form["count"] == String(numbers.count) else {
            throw HTTPError(.conflict, message: "Not removed: the confirmation was missing, or the extensions changed since the page was shown.")
        }
        let removed = try await remove(numbers)
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "all extensions removed", detail: "\(removed)")
        return Response(status: .seeOther, headers: [.location: "/cms/extensions?done=removed&n=\(removed)"])
    }

    /// Removes extensions, then ends the sessions that held them (the Store removes those
    /// sessions with them; the running gateway ends their calls and closes their sockets).
    func remove(_ numbers: [String]) async throws -> Int {
        let wanted = Set(numbers)
        let holding = try await store.sessions().filter { $0.extension.map(wanted.contains) ?? false }.map(\.id)
        let removed = try await store.removeExtensions(numbers)
        for id in holding { await backend?.endSession(id) }
        return removed
    }
}
