import Foundation

/// Server-rendered HTML: every text that is not Tandem's own goes through ``escape(_:)``.
/// No inline script or style (the CSP forbids both); the one stylesheet and the one script are
/// served from `/cms/static/`.
enum HTML {
    /// Escapes text for an element body or a quoted attribute value.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// The navigation of a signed-in page: (path, label).
    static let navigation: [(String, String)] = [
        ("/cms/", "Dashboard"),
        ("/cms/extensions", "Extensions"),
        ("/cms/sip", "SIP"),
        ("/cms/payload", "Payload"),
        ("/cms/turn", "TURN"),
        ("/cms/clients", "Clients"),
        ("/cms/services", "Services"),
        ("/cms/transfer", "Export/import"),
        ("/cms/certificates", "Certificates"),
        ("/cms/diagnostics", "Diagnostics"),
        ("/cms/restart", "Restart"),
        ("/cms/audit", "Audit log"),
    ]

    /// A whole page. `account` nil: a page outside a session (sign-in, first start).
    /// `banner`: a warning shown above the title of every signed-in page (an expiring certificate).
    static func page(title: String, account: String?, csrf: String?, banner: String = "", current: String = "", refreshSeconds: Int? = nil, body: String) -> String {
        var nav = ""
        if let account, let csrf {
            let links = navigation.map { path, label in
                "<a href=\"\(path)\"\(path == current ? " aria-current=\"page\"" : "")>\(escape(label))</a>"
            }.joined()
            nav = """
                <nav>\(links)</nav>
                <form class="signout" method="post" action="/cms/logout">\(csrfField(csrf))<span id="account">\(escape(account))</span> <button type="submit">Sign out</button></form>
                """
        }
        let refresh = refreshSeconds.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">" } ?? ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">\(refresh)
            <title>\(escape(title)) · Tandem</title><link rel="stylesheet" href="/cms/static/cms.css"></head>
            <body><header><span class="brand">Tandem</span>\(nav)</header>
            <main>\(banner)<h1>\(escape(title))</h1>
            \(body)
            </main></body></html>
            """
    }

    static func csrfField(_ token: String) -> String {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(escape(token))\">"
    }

    /// A message box: `kind` is `error`, `warning` or `notice`.
    static func message(_ text: String, kind: String) -> String {
        "<p class=\"\(kind)\" role=\"\(kind == "error" ? "alert" : "status")\">\(escape(text))</p>"
    }

    /// A form of one sentence and one secondary button (drop what was set here, remove an upload).
    static func actionForm(_ action: String, csrf: String, text: String, buttonID: String, label: String) -> String {
        """
        <form class="panel wide" method="post" action="\(action)">\(csrfField(csrf))
        <p>\(text)</p>
        <button type="submit" id="\(buttonID)" class="secondary">\(label)</button>
        </form>
        """
    }

    /// The error of one form field, next to it (the input names it in `aria-describedby`).
    static func fieldError(_ field: String, _ text: String?) -> String {
        guard let text else { return "" }
        return "<p class=\"error field-error\" id=\"\(escape(field))-error\" role=\"alert\">\(escape(text))</p>"
    }

    /// A table from a header and rows of already-escaped cells.
    static func table(_ header: [String], _ rows: [[String]], id: String? = nil) -> String {
        let head = header.map { "<th>\(escape($0))</th>" }.joined()
        let body = rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>" }.joined(separator: "\n")
        return "<table\(id.map { " id=\"\($0)\"" } ?? "")><thead><tr>\(head)</tr></thead><tbody>\(body)</tbody></table>"
    }

    static let stylesheet = """
        :root { --fg: #1d232a; --muted: #5b6670; --line: #d9dee3; --accent: #0b6bcb; --bad: #b3261e; --warn: #8a5a00; --ok: #1e7b34; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7f9; }
        header { display: flex; flex-wrap: wrap; align-items: center; gap: .6rem 1.5rem; padding: .6rem 1.2rem; background: #14202b; color: #fff; }
        header .brand { font-weight: 700; letter-spacing: .03em; }
        header nav { display: flex; flex-wrap: wrap; gap: .3rem 1rem; flex: 1; }
        header nav a { color: #cfe3f7; text-decoration: none; }
        header nav a[aria-current=page] { color: #fff; border-bottom: 2px solid #fff; }
        header .signout { margin: 0; display: flex; gap: .6rem; align-items: center; }
        main { max-width: 72rem; margin: 1.2rem auto; padding: 0 1.2rem; }
        @media (max-width: 40rem) {
          table { display: block; overflow-x: auto; }
          header { padding: .5rem .8rem; }
          header nav { order: 3; flex-basis: 100%; }
          main { padding: 0 .7rem; }
          form.panel, form.panel.wide { max-width: none; }
          .cards { grid-template-columns: repeat(auto-fill, minmax(9rem, 1fr)); }
        }
        h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
        h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
        table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
        th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { background: #eef1f4; font-weight: 600; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); gap: .8rem; }
        .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .7rem .9rem; }
        .card .label { color: var(--muted); font-size: .85rem; }
        .card .value { font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
        .card .value.long { font-size: 1.15rem; padding-top: .3rem; }
        form.panel + form.panel { margin-top: 1rem; }
        fieldset { border: 1px solid var(--line); border-radius: 4px; margin: 0 0 1rem; padding: .6rem .8rem; }
        legend { font-weight: 600; padding: 0 .3rem; }
        .choice { margin: .3rem 0; }
        .choice label { display: inline; font-weight: 600; }
        .choice p { margin: .1rem 0 .4rem 1.6rem; }
        .codec { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem .8rem; margin: .3rem 0; }
        .codec label { display: inline; margin: 0; }
        .codec .place { font-weight: normal; }
        .codec select { width: auto; }
        form.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem; max-width: 26rem; }
        label { display: block; margin: .5rem 0 .2rem; font-weight: 600; }
        input[type=text], input[type=password], input[type=number], select, textarea { width: 100%; padding: .4rem .5rem; border: 1px solid #aab4bd; border-radius: 4px; font: inherit; }
        button { margin-top: .8rem; padding: .4rem .9rem; border: 0; border-radius: 4px; background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
        header button { margin: 0; background: #33475a; }
        .error { color: var(--bad); background: #fbeaea; border: 1px solid #f0c4c1; padding: .5rem .7rem; border-radius: 4px; }
        .field-error { margin: .2rem 0 .5rem; padding: .25rem .5rem; font-size: .9em; }
        .warning { color: var(--warn); background: #fff4e0; border: 1px solid #f1d9a6; padding: .5rem .7rem; border-radius: 4px; }
        .notice { color: var(--ok); background: #e8f5ec; border: 1px solid #bfe0c8; padding: .5rem .7rem; border-radius: 4px; }
        code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9em; }
        code { overflow-wrap: anywhere; }
        pre { background: #fff; border: 1px solid var(--line); padding: .6rem .8rem; overflow-x: auto; }
        svg.chart { background: #fff; border: 1px solid var(--line); width: 100%; max-width: 48rem; height: auto; }
        svg.chart .calls { fill: none; stroke: var(--accent); stroke-width: 2; }
        svg.chart .mos { fill: none; stroke: var(--ok); stroke-width: 2; stroke-dasharray: 4 3; }
        svg.chart .axis { stroke: var(--line); }
        svg.chart text { font-size: 11px; fill: var(--muted); }
        .muted { color: var(--muted); }
        form.panel.wide { max-width: 44rem; }
        form.inline { display: inline; margin: 0; }
        form.inline label { display: inline; margin-right: .4rem; }
        form.inline input[type=text] { width: 16rem; }
        .row { display: grid; grid-template-columns: 2fr 1fr; gap: .8rem; align-items: end; }
        label.check { font-weight: normal; display: flex; gap: .4rem; align-items: center; }
        button.small { margin: 0; padding: .15rem .5rem; font-size: .85rem; }
        button.danger { background: var(--bad); }
        label.inline { display: inline; font-weight: normal; margin-right: 1rem; }
        input.narrow { width: 6rem !important; }
        .warn-text { color: var(--warn); font-weight: 600; }
        details { margin: .4rem 0; }
        """
}
