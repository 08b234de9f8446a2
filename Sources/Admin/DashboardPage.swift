import Foundation

/// The dashboard's body: figure cards, registrations by state, the last hour's chart, and
/// every call with its media quality.
enum DashboardPage {
    static func render(_ s: DashboardSnapshot, history: DashboardHistory?) -> String {
        let totalExtensions = s.extensionsByState.values.reduce(0, +)
        let registered = s.extensionsByState.filter { ["registered", "in call"].contains($0.key) }.values.reduce(0, +)
        let transcoded = s.calls.filter { $0.mode == "transcode" }.count
        let passThrough = s.calls.filter { $0.mode == "pass-through" }.count
        let last = history?.all.last
        var body = "<div class=\"cards\">"
        body += card("Extensions registered", "\(registered) / \(totalExtensions)", id: "extensions-registered")
        body += card("Active calls", "\(s.calls.count)", note: "\(transcoded) transcoded · \(passThrough) pass-through", id: "active-calls")
        body += card("TURN allocations", "\(s.turnAllocations)", id: "turn-allocations")
        body += card("TURN relayed", last.map { bitRate($0.turnBitsPerSecond) } ?? "—", note: "\(bytes(s.turnRelayedBytes)) since start", id: "turn-relayed")
        body += card("CPU", last.map { String(format: "%.1f %%", $0.cpuPercent) } ?? "—", note: String(format: "%.0f s since start", s.cpuSeconds), id: "cpu")
        body += card("Memory", bytes(s.residentBytes), note: "up \(duration(s.uptimeSeconds))", id: "memory")
        body += "</div>"

        body += "<h2>Registrations</h2>"
        let states = s.extensionsByState.sorted { $0.key < $1.key }
        body += states.isEmpty ? "<p class=\"muted\">No extensions are configured.</p>"
            : HTML.table(["State", "Extensions"], states.map { [HTML.escape($0.key), "\($0.value)"] }, id: "registrations")

        body += "<h2>Calls and quality, last hour</h2>"
        if let history {
            body += history.chartSVG()
            body += "<p class=\"muted\">Solid: calls (left scale). Dashed: mean MOS estimate (right scale, 1–5). One sample every \(Int(history.interval)) s.</p>"
        }

        body += "<h2>Active calls</h2>"
        if s.calls.isEmpty {
            body += "<p class=\"muted\">No calls.</p>"
        } else {
            body += HTML.table(
                ["Call", "Direction", "Extension", "Remote", "State", "Codec", "Media", "Jitter ms", "Loss %", "RTT ms", "MOS"],
                s.calls.map { c in
                    [HTML.escape(String(c.id.prefix(12))), HTML.escape(c.direction), HTML.escape(c.extension ?? "—"), HTML.escape(c.remote), HTML.escape(c.state),
                     HTML.escape(c.codec ?? "—"), HTML.escape(c.mode ?? "—"), number(c.jitterMs), number(c.lossPercent), number(c.rttMs), number(c.mos, digits: 2)]
                }, id: "calls")
        }
        return body
    }

    static func card(_ label: String, _ value: String, note: String? = nil, id: String) -> String {
        "<div class=\"card\" id=\"\(id)\"><div class=\"label\">\(HTML.escape(label))</div><div class=\"value\(value.count > 10 ? " long" : "")\">\(HTML.escape(value))</div>"
            + (note.map { "<div class=\"muted\">\(HTML.escape($0))</div>" } ?? "") + "</div>"
    }

    static func number(_ v: Double?, digits: Int = 1) -> String {
        v.map { String(format: "%.\(digits)f", $0) } ?? "—"
    }

    static func bitRate(_ bps: Double) -> String {
        bps >= 1e6 ? String(format: "%.1f Mbit/s", bps / 1e6) : String(format: "%.0f kbit/s", bps / 1e3)
    }

    static func bytes(_ n: Int) -> String {
        let d = Double(n)
        if d >= 1_073_741_824 { return String(format: "%.1f GiB", d / 1_073_741_824) }
        if d >= 1_048_576 { return String(format: "%.1f MiB", d / 1_048_576) }
        return String(format: "%.0f KiB", d / 1024)
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s >= 86400 { return "\(s / 86400) d \(s % 86400 / 3600) h" }
        if s >= 3600 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 60) min"
    }
}
