import Foundation
import Hummingbird
import Store

/// "Restart service": graceful — new sessions and calls are refused, the calls in progress
/// may end for up to `cms.drain-timeout` seconds, the rest are ended with BYE, then Tandem
/// starts again. The page follows the progress with a few lines of its own script
/// (`/cms/static/restart.js`, no inline script) and comes back by itself.
extension AdminRoutes {
    func addRestartRoutes(_ cms: RouterGroup<Context>) {
        cms.get("restart") { request, context in try await restartPage(request, context) }
        cms.post("restart") { request, context in try await requestRestart(request, context) }
        cms.get("restart/status") { request, _ in try await restartStatus(request) }
        cms.get("static/restart.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "no-cache"],
                     body: .init(byteBuffer: ByteBuffer(string: Self.restartScript)))
        }
    }

    func restartPage(_ request: Request, _ context: Context) async throws -> Response {
        guard let (session, _) = try await currentSession(request) else { return try await entry(request, context) }
        guard let backend = backend?.restart else { throw HTTPError(.notFound) }
        let status = await backend.status()
        var body = ""
        if request.uri.queryParameters.get("done") != nil {
            body += HTML.message("Tandem restarted at \(status.startedAt) and is serving again.", kind: "notice")
        }
        body += "<div class=\"cards\">"
        body += DashboardPage.card("State", status.phase, note: "since \(status.startedAt)", id: "restart-phase")
        body += DashboardPage.card("Calls in progress", "\(status.calls)", id: "restart-calls")
        body += DashboardPage.card("Drain timeout", "\(status.drainTimeout) s", note: "cms.drain-timeout", id: "restart-timeout")
        body += "</div>"
        body += "<p id=\"restart-progress\" role=\"status\" aria-live=\"polite\" data-started=\"\(HTML.escape(status.startedAt))\" data-phase=\"\(HTML.escape(status.phase))\"></p>"
        body += """
            <form class="panel wide" method="post" action="/cms/restart">\(HTML.csrfField(session.csrfToken))
            <p>New sessions and calls are refused at once. Calls in progress may go on for up to \(status.drainTimeout) s; those still up then end with BYE. Tandem then stops its services and starts again (under systemd the unit restarts it). This page follows and comes back by itself.</p>
            <p>Listen addresses, ports, transports and turn.enabled come from the configuration file and need this restart; everything else on these pages applies without one.</p>
            <label class="inline"><input type="checkbox" id="confirm-restart" name="confirm" required> Restart now</label>
            <button type="submit" id="restart" class="danger">Restart service</button>
            </form>
            <script src="/cms/static/restart.js" defer></script>
            """
        return Self.html(.ok, HTML.page(title: "Restart service", account: session.account, csrf: session.csrfToken, banner: certificateBanner(), current: "/cms/restart", body: body))
    }

    func requestRestart(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let (session, _, form) = try await authorizedForm(&request)
        guard let backend = backend?.restart else { throw HTTPError(.notFound) }
        guard form["confirm"] != nil else { throw HTTPError(.badRequest, message: "Tick \"Restart now\" to confirm.") }
        let calls = await backend.status().calls
        try await store.appendAudit(account: session.account, source: Self.source(context), action: "restart requested", detail: "\(calls) calls in progress")
        _ = await backend.begin()
        return Response(status: .seeOther, headers: [.location: "/cms/restart"])
    }

    func restartStatus(_ request: Request) async throws -> Response {
        guard try await currentSession(request) != nil else { throw HTTPError(.unauthorized, message: "Sign in first.") }
        guard let backend = backend?.restart else { throw HTTPError(.notFound) }
        let data = try JSONEncoder().encode(await backend.status())
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    /// Polls the status once a second: shows the drain, then waits for the new process (a new
    /// start time) and reloads the page with "done".
    static var restartScript: String {
        """
        "use strict";
        (() => {
          const progress = document.getElementById("restart-progress");
          if (!progress) return;
          const started = progress.dataset.started;
          let seenDown = false;
          const tick = async () => {
            try {
              const response = await fetch("/cms/restart/status", { cache: "no-store", credentials: "same-origin" });
              if (response.status === 401) { location.href = "/cms/login"; return; }
              const status = await response.json();
              if (status.startedAt !== started) { location.href = "/cms/restart?done=1"; return; }
              if (status.phase === "draining") {
                progress.textContent = `Draining: ${status.calls} call(s) in progress, ${status.secondsLeft} s before the rest are ended.`;
              } else if (status.phase === "restarting") {
                progress.textContent = "Stopping the services…";
              } else if (seenDown) {
                progress.textContent = "Back.";
              }
            } catch (error) {
              seenDown = true;
              progress.textContent = "Restarting: waiting for Tandem to come back…";
            }
            setTimeout(tick, 1000);
          };
          if (progress.dataset.phase !== "running") progress.textContent = "Restart under way…";
          setTimeout(tick, 500);
        })();
        """
    }
}
