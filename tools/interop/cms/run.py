#!/usr/bin/env python3
"""End-to-end tests of the administrators' web configuration (/cms) in headless Chromium.

Starts `tandem serve` on a fresh data directory (HTTPS on 127.0.0.1:7443, TURN on free
ports, no SIP platform) and drives Chromium through selenium:

  first-start   before any account exists /cms shows only how to create one (no form at all)
  sign-in       `tandem admin create` (and its refusals), a wrong password, the right one:
                the dashboard, the cookie's flags as the browser keeps them, the audit log,
                CSRF refusals outside the page, sign-out
  lock-out      repeated failures: 429 with Retry-After, even for the right password
  extensions    through Kamailio: a range added on the page registers, a number search, an edit,
                a removed extension unregisters and the session holding it ends, remove all
  turn-clients  the TURN secret changed on the page: coturn's turnutils_uclient relays with the
                new secret and still with the previous one (valid for one TTL), not with a wrong
                one; the TTL reaches the API; an OAuth client made on the page works until
                revoked there, then its token is refused; a click-to-contact service is saved
  transfer      extensions and configuration downloaded from one server's page, uploaded in
                Chromium to another: the preview lists what would be added, changed, removed;
                the confirmation applies it; the API's dry run reports the same file; the log level
                set on A's diagnostics page travels with the configuration, and B, running, takes it
                within seconds of a `tandem config import` from the CLI
  certificates  uploads in Chromium: a key of another certificate is refused next to its field;
                a good certificate (valid 20 days) is presented by the next HTTPS and TURN-TLS
                handshakes without a restart and every page warns of its expiry; removing the
                upload brings the self-signed certificate back
  diagnostics   log levels changed on the page take effect at once (a default of warning hides
                /cms sign-ins, Admin at info shows them again); the retention applies; the
                downloaded .tar.gz holds the logs, the redacted configuration, runtime settings,
                audit log, metrics, version and a 2 s dumpcap capture, and no secret at all
  import-kill   `tandem config import` killed with SIGKILL at 25 points of its run: each time the
                database holds all of the old extensions or all of the new, never a mix, and
                passes SQLite's integrity check
  networks      a client in a network namespace outside cms.allowed-networks gets 404 from /cms
                (loopback gets the page); with cms.listen, /cms answers on its own port only

  python3 tools/interop/cms/run.py --tandem .build/debug/tandem [--screenshots docs/cms] [scenario …]

Screenshots go to the run's temporary directory, or to --screenshots (docs/cms holds the
committed ones).
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
sys.path.insert(0, os.path.join(HERE, "..", "sip"))
from browser import Browser  # noqa: E402
from run import Kamailio, insecure_tls, stop, wait_for  # noqa: E402  (tools/interop/sip/run.py)

BASE = "https://127.0.0.1:7443"
ACCOUNT, PASSWORD = "ops", "correct horse battery staple"


def free_port(kind=socket.SOCK_DGRAM):
    """A free port below TURN's relay range (49152-65535), where a listener may not lie."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port < 49152:
            return port
    raise RuntimeError("no free port below 49152")


class Tandem:
    def __init__(self, binary, workdir, **env):
        self.binary, self.workdir = binary, workdir
        self.env = dict(os.environ)
        self.env.update({
            "TANDEM_STORAGE_DATA_DIRECTORY": os.path.join(workdir, "data"),
            "TANDEM_LOG_DIRECTORY": os.path.join(workdir, "log"),
            "TANDEM_LOG_LEVEL": "info",
            "TANDEM_HTTP_LISTEN_ADDRESS": "127.0.0.1",
            "TANDEM_TURN_LISTEN_ADDRESSES": "127.0.0.1",
            "TANDEM_TURN_LISTEN_PORT": str(free_port()),
            "TANDEM_TURN_TLS_PORT": str(free_port(socket.SOCK_STREAM)),
            "TANDEM_TURN_TRANSPORTS": "udp",
            "TANDEM_TURN_RELAY_ADDRESSES": "127.0.0.1",
            "TANDEM_MEDIA_ENABLED": "false",
            "TANDEM_SIP_PLATFORM_PRIMARY": "",
        })
        self.env.update(env)
        self.proc = None
        self.client_secret = None

    def cli(self, *args, stdin=None, check=True):
        out = subprocess.run([self.binary, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise AssertionError(f"tandem {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        # The first command seeds the database and shows the generated OAuth secret once.
        m = re.search(r"client-secret=(\S+)", out.stderr)
        if m:
            self.client_secret = m.group(1)
        return out

    def api(self, method, path, body=None):
        """The control API as an application server uses it: a token by client credentials, then the call."""
        token = access_token("default-client-id", self.client_secret)["access_token"]
        status, _, text = request(path, method, None if body is None else json.dumps(body).encode(),
                                  {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        return status, json.loads(text) if text else None

    def start(self):
        self.out = open(os.path.join(self.workdir, "tandem.out"), "a")
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("tandem /healthz", lambda: request("/healthz")[0] == 200 or self.proc.poll() is not None, 60)
        if self.proc.poll() is not None:
            raise AssertionError("tandem exited at start")
        return self

    def stop(self):
        stop(self.proc)


def request(path, method="GET", data=None, headers=None):
    """(status, headers, body) of one HTTPS request, redirects not followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()), NoRedirect)
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
    except OSError:
        return None, None, ""


def access_token(client_id, secret):
    """The token endpoint's answer to client credentials (RFC 6749 §4.4) by HTTP Basic."""
    import base64
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    _, _, text = request("/oauth/token", "POST", b"grant_type=client_credentials",
                         {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
    return json.loads(text)


class Context:
    def __init__(self, tandem_binary, workdir, screenshots):
        self.binary, self.workdir, self.screenshots = tandem_binary, workdir, screenshots

    def shot(self, browser, name, height=900):
        """The page at desktop width, and at a phone's (390 px) under narrow/."""
        os.makedirs(os.path.join(self.screenshots, "narrow"), exist_ok=True)
        browser.driver.set_window_size(1280, height)
        browser.screenshot(os.path.join(self.screenshots, name))
        browser.driver.set_window_size(390, max(height, 1400) + 600)
        browser.screenshot(os.path.join(self.screenshots, "narrow", name))
        browser.driver.set_window_size(1280, height)


def click_through(driver, element):
    """Clicks a link or submit button and waits until the next page has loaded: a new document
    (its root element has another reference) that is complete. While the browser navigates,
    WebDriver calls may fail in several ways; they are retried."""
    from selenium.common.exceptions import WebDriverException
    old = driver.find_element("tag name", "html").id
    element.click()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if driver.find_element("tag name", "html").id != old and driver.execute_script("return document.readyState") == "complete":
                return
        except WebDriverException:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no new page within 15 s after the click (at {driver.current_url})")


def sign_in(browser, account, password):
    d = browser.driver
    browser.open(BASE + "/cms/login")
    d.find_element("id", "account").send_keys(account)
    d.find_element("id", "password").send_keys(password)
    click_through(d, d.find_element("id", "sign-in"))


def scenario_first_start_and_sign_in(ctx):
    facts = {}
    tandem = Tandem(ctx.binary, ctx.workdir)
    tandem.cli("extensions", "add", "3000-3009")
    tandem.start()
    try:
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser")) as b:
            d = b.driver
            b.open(BASE + "/cms/")
            assert d.find_element("tag name", "h1").text == "Set up the first administrator", d.page_source[:500]
            assert "tandem admin create NAME" in d.page_source
            assert not d.find_elements("tag name", "form"), "a form before any account exists"
            ctx.shot(b, "01-first-start.png")

            short = tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin="short\n", check=False)
            assert short.returncode != 0 and "at least 12 characters" in short.stderr, short.stderr
            tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
            again = tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n", check=False)
            assert again.returncode != 0 and "exists already" in again.stderr, again.stderr
            assert "1 administrator" in tandem.cli("admin", "list").stdout

            b.open(BASE + "/cms/")
            assert d.current_url == BASE + "/cms/login", d.current_url
            ctx.shot(b, "02-sign-in.png")

            sign_in(b, ACCOUNT, "not the password")
            assert "Wrong account name or password." in d.find_element("css selector", "p.error").text
            assert not any(c["name"] == "tandem_cms" for c in d.get_cookies())

            started = time.monotonic()
            sign_in(b, ACCOUNT, PASSWORD)
            facts["sign_in_s"] = round(time.monotonic() - started, 2)
            assert d.current_url == BASE + "/cms/", d.current_url
            assert d.find_element("tag name", "h1").text == "Dashboard"
            assert d.find_element("id", "account").text == ACCOUNT
            assert d.find_element("css selector", "#extensions-registered .value").text == "0 / 10"
            assert d.find_element("css selector", "#turn-allocations .value").text == "0"
            assert "free" in d.find_element("id", "registrations").text
            ctx.shot(b, "03-dashboard.png")

            cookie = next(c for c in d.get_cookies() if c["name"] == "tandem_cms")
            assert cookie["httpOnly"] and cookie["secure"] and cookie.get("sameSite") == "Strict" and cookie["path"] == "/cms", cookie
            assert "tandem_cms" not in d.execute_script("return document.cookie"), "the session cookie is readable by script"
            facts["cookie"] = {k: cookie[k] for k in ("httpOnly", "secure", "sameSite", "path")}

            # The same session from outside the page: no CSRF token, or another origin, is refused.
            jar = f"tandem_cms={cookie['value']}"
            form = {"Cookie": jar, "Content-Type": "application/x-www-form-urlencoded"}
            status, _, _ = request("/cms/logout", "POST", b"csrf=guess", form)
            assert status == 403, status
            token = d.find_element("css selector", "form.signout input[name=csrf]").get_attribute("value")
            status, _, _ = request("/cms/logout", "POST", f"csrf={token}".encode(), dict(form, Origin="https://evil.example"))
            assert status == 403, status
            status, headers, _ = request("/cms/", headers={"Cookie": jar})
            assert status == 200, "the refused requests ended the session"
            csp = headers["Content-Security-Policy"]
            assert "unsafe-inline" not in csp and "script-src 'self'" in csp and headers["X-Frame-Options"] == "DENY", csp
            assert headers.get("Access-Control-Allow-Origin") is None

            click_through(d, d.find_element("link text", "Audit log"))
            audit = d.find_element("id", "audit").text
            assert "sign-in failed" in audit and "sign-in" in audit and "admin created" in audit, audit
            ctx.shot(b, "04-audit.png")

            click_through(d, d.find_element("css selector", "form.signout button"))
            wait_for("the sign-in page", lambda: d.current_url == BASE + "/cms/login", 10)
            status, headers, _ = request("/cms/", headers={"Cookie": jar})
            assert status == 303 and headers["Location"] == "/cms/login", status
            actions = [line for line in tandem.cli("admin", "list").stdout.splitlines()]
            facts["accounts"] = actions[-1]
        return facts
    finally:
        tandem.stop()


def scenario_lock_out(ctx):
    tandem = Tandem(ctx.binary, ctx.workdir)
    tandem.cli("admin", "create", "locked", "--password-stdin", stdin=PASSWORD + "\n")
    tandem.start()
    try:
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-lock")) as b:
            d = b.driver
            for _ in range(4):
                sign_in(b, "locked", "guess")
                assert "Wrong account name or password." in d.page_source
            sign_in(b, "locked", PASSWORD)
            message = d.find_element("css selector", "p.error").text
            assert "Too many failed sign-ins" in message, message
            assert not any(c["name"] == "tandem_cms" for c in d.get_cookies())
            ctx.shot(b, "05-locked-out.png")
            time.sleep(1.2)
            sign_in(b, "locked", PASSWORD)
            assert d.find_element("tag name", "h1").text == "Dashboard"
        return {"locked_after_failures": 4}
    finally:
        tandem.stop()


def scenario_extensions(ctx):
    facts = {}
    kamailio = Kamailio(ctx.workdir, "primary", "127.0.0.1", max_expires=300).start()
    other = Kamailio(ctx.workdir, "other", "127.0.0.2", max_expires=300).start()
    tandem = Tandem(ctx.binary, ctx.workdir, TANDEM_SIP_LISTEN_ADDRESSES="127.0.0.1", TANDEM_SIP_LISTEN_PORT="5062", TANDEM_SIP_TRANSPORTS="udp",
                    TANDEM_SIP_PLATFORM_PRIMARY="127.0.0.1:5060", TANDEM_SIP_PLATFORM_TRANSPORT="udp", TANDEM_SIP_DOMAIN="tandem.test",
                    TANDEM_SIP_REGISTRATION_EXPIRES="300", TANDEM_SIP_REGISTER_ALL_EXTENSIONS="true")
    try:
        tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
        tandem.start()
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-ext")) as b:
            d = b.driver
            sign_in(b, ACCOUNT, PASSWORD)
            click_through(d, d.find_element("link text", "Extensions"))
            for field, value in (("from", "3000"), ("to", "3004"), ("username", "3000"), ("password", "pw3000")):
                d.find_element("id", field).send_keys(value)
            for box in ("digest", "username-increment", "password-increment"):
                d.find_element("id", box).click()
            started = time.monotonic()
            click_through(d, d.find_element("id", "add"))
            assert "Added 5 extensions" in d.find_element("css selector", "p.notice").text, d.page_source[:800]
            wanted = {str(n) for n in range(3000, 3005)}
            wait_for("5 bindings in Kamailio", lambda: wanted <= set(kamailio.contacts() or {}), 20)
            facts["registered_after_add_s"] = round(time.monotonic() - started, 2)
            assert "3000–3004" in d.find_element("id", "ranges").text

            b.open(BASE + "/cms/extensions?q=3002")
            found = d.find_element("id", "search-result").text
            assert found.startswith("3002 is an extension (registered") and "3000–3004 of 5" in found, found
            b.open(BASE + "/cms/extensions?q=3010")
            assert "belongs to no range" in d.find_element("id", "search-result").text
            b.open(BASE + "/cms/extensions?q=3002")
            ctx.shot(b, "06-extensions.png", height=1500)

            # The SIP platform page: a bad expiry is refused next to its field; a new primary
            # moves every registration over without a restart (bindings leave the old one).
            click_through(d, d.find_element("link text", "SIP"))
            assert d.find_element("id", "primary").get_attribute("value") == "127.0.0.1:5060"
            assert d.find_element("id", "sip-registered").text.split("\n")[1] == "5", d.find_element("id", "sip-registered").text
            for field, value in (("primary", "127.0.0.2:5060"), ("expires", "120")):
                d.find_element("id", field).clear()
                d.find_element("id", field).send_keys(value)
            d.execute_script("document.getElementById('expires').removeAttribute('min')")  # past the browser's own check, to the server's
            click_through(d, d.find_element("id", "save-sip"))
            assert "300 to 86400" in d.find_element("id", "expires-error").text, d.page_source[:1500]
            assert other.contacts() == {}, "nothing applied"
            d.find_element("id", "expires").clear()
            d.find_element("id", "expires").send_keys("600")
            started = time.monotonic()
            click_through(d, d.find_element("id", "save-sip"))
            assert "registering on the platform now" in d.find_element("css selector", "p.notice").text
            wait_for("5 bindings at the new primary", lambda: wanted <= set(other.contacts() or {}), 20)
            wait_for("no bindings left at the old one", lambda: kamailio.contacts() == {}, 20)
            facts["moved_to_new_primary_s"] = round(time.monotonic() - started, 2)
            def primary_card():
                b.open(BASE + "/cms/sip")
                return d.find_element("id", "sip-primary").text
            wait_for("the page to show the new primary reachable", lambda: "unreachable" not in primary_card() and "reachable" in primary_card(), 10)
            assert "127.0.0.2" in primary_card()
            b.open(BASE + "/cms/audit")
            assert "SIP platform saved" in d.page_source and "primary 127.0.0.1:5060 → 127.0.0.2:5060" in d.page_source
            b.open(BASE + "/cms/sip")
            ctx.shot(b, "10-sip.png", height=1750)
            click_through(d, d.find_element("link text", "Payload"))
            assert d.find_element("id", "srtp-off").is_selected() and "always on" in d.find_element("id", "dtls").text
            ctx.shot(b, "12-payload.png", height=1700)
            # The same through an import from the CLI (another process): the server follows within seconds.
            exported = os.path.join(ctx.workdir, "platform.json")
            tandem.cli("config", "export", "--configuration", "--output", exported)
            document = json.load(open(exported))
            assert document["configuration"]["sipPlatform"]["primary"] == "127.0.0.2:5060", document["configuration"]
            document["configuration"]["sipPlatform"]["primary"] = "127.0.0.1:5060"
            json.dump(document, open(exported, "w"))
            started = time.monotonic()
            tandem.cli("config", "import", exported)
            wait_for("5 bindings back at the first Kamailio", lambda: wanted <= set(kamailio.contacts() or {}), 20)
            wait_for("none left at the second", lambda: other.contacts() == {}, 20)
            facts["moved_back_by_cli_import_s"] = round(time.monotonic() - started, 2)

            # Edit one: its realm shows in the list afterwards.
            b.open(BASE + "/cms/extensions/edit?number=3004")
            d.find_element("id", "realm").send_keys("tandem.test")
            click_through(d, d.find_element("id", "save"))
            assert "Saved the extension" in d.find_element("css selector", "p.notice").text
            row = next(r for r in d.find_elements("css selector", "#extensions tbody tr") if r.text.startswith("3004"))
            assert "tandem.test" in row.text, row.text

            # A session holds 3001; removing 3001 unregisters it and ends the session.
            status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
            assert status == 201, (status, session)
            row = next(r for r in d.find_elements("css selector", "#extensions tbody tr") if r.text.startswith("3001"))
            click_through(d, row.find_element("css selector", "button"))
            assert "Removed 1 extension" in d.find_element("css selector", "p.notice").text
            wait_for("3001 to unregister", lambda: (lambda c: c is not None and "3001" not in c)(kamailio.contacts()), 20)
            status, sessions = tandem.api("GET", "/api/v1/sessions")
            assert status == 200 and all(s.get("extension") != "3001" for s in sessions["sessions"]), sessions

            click_through(d, d.find_element("id", "remove-all"))
            assert "removes all 4 extensions" in d.find_element("css selector", "p.warning").text
            d.find_element("id", "confirm").click()
            click_through(d, d.find_element("id", "remove-all-confirm"))
            assert "Removed 4 extensions" in d.find_element("css selector", "p.notice").text
            wait_for("no bindings in Kamailio", lambda: kamailio.contacts() == {}, 20)
            audit = tandem.cli("admin", "list").stdout
            facts["admins"] = audit.strip().splitlines()[-1]
        return facts
    finally:
        tandem.stop()
        kamailio.kill()
        other.kill()


def uclient(port, peer_port, secret):
    """turnutils_uclient through Tandem to turnutils_peer with REST-API credentials from `secret`:
    (sent, received); -m 1 makes two sessions of 20 messages."""
    out = subprocess.run(["turnutils_uclient", "-W", secret, "-u", "cms", "-e", "127.0.0.1", "-r", str(peer_port), "-p", str(port),
                          "-n", "20", "-l", "172", "-m", "1", "-z", "5", "127.0.0.1"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    # The summary line (progress lines before it carry the same names).
    totals = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", text)
    uclient.last = text
    return (int(totals[-1][0]), int(totals[-1][1])) if totals else (0, 0)


def scenario_turn_and_clients(ctx):
    facts = {}
    peer_port = free_port()
    peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    tandem = Tandem(ctx.binary, ctx.workdir, TANDEM_TURN_ALLOWED_PEERS="127.0.0.1/32")
    turn_port = int(tandem.env["TANDEM_TURN_LISTEN_PORT"])
    try:
        tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
        tandem.start()
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-turn")) as b:
            d = b.driver
            sign_in(b, ACCOUNT, PASSWORD)
            click_through(d, d.find_element("link text", "TURN"))
            assert d.find_element("css selector", "#turn-enabled .value").text == "enabled"
            assert f"udp 127.0.0.1:{turn_port}" in d.find_element("id", "turn-listeners").text
            old = d.find_element("id", "turn-secret").get_attribute("textContent")
            assert uclient(turn_port, peer_port, old) == (40, 40), "the first secret relays: " + uclient.last[-1500:]

            click_through(d, d.find_element("id", "rotate"))
            assert "The shared secret changed" in d.find_element("css selector", "p.notice").text
            new = d.find_element("id", "turn-secret").get_attribute("textContent")
            assert new != old and len(new) == 64, new
            assert "stays valid until" in d.find_element("id", "turn-previous").text
            facts["new_secret"] = uclient(turn_port, peer_port, new)
            facts["previous_secret"] = uclient(turn_port, peer_port, old)
            facts["wrong_secret"] = uclient(turn_port, peer_port, "not-the-secret-at-all")
            assert facts["new_secret"] == (40, 40) and facts["previous_secret"] == (40, 40), facts
            assert facts["wrong_secret"][1] == 0, facts

            ttl = d.find_element("id", "ttl")
            ttl.clear()
            ttl.send_keys("120")
            click_through(d, d.find_element("id", "save-turn"))
            assert "Saved." in d.find_element("css selector", "p.notice").text
            status, credential = tandem.api("POST", "/api/v1/turn-credentials", {})
            assert status == 200 and credential["ttl"] == 120, (status, credential)
            ctx.shot(b, "07-turn.png", height=1300)

            click_through(d, d.find_element("link text", "Clients"))
            d.find_element("id", "client-id").send_keys("crm")
            minutes = d.find_element("id", "minutes")
            minutes.clear()
            minutes.send_keys("5")
            click_through(d, d.find_element("id", "create-client"))
            secret = d.find_element("id", "new-secret").text
            assert len(secret) == 64, secret
            row = next(r for r in d.find_elements("css selector", "#clients tbody tr") if r.text.startswith("crm"))
            click_through(d, row.find_element("css selector", "form[action='/cms/clients/webrtc'] button"))
            assert len(d.find_element("id", "webrtc-secret").text) == 64 and d.find_element("id", "webrtc-crm").text == "on"
            ctx.shot(b, "08-clients.png")
            b.open(BASE + "/cms/clients")
            assert secret not in d.page_source, "the secret is shown once"

            token = access_token("crm", secret)
            assert token["expires_in"] == 300, token
            bearer = {"Authorization": "Bearer " + token["access_token"]}
            assert request("/api/v1/extensions", headers=bearer)[0] == 200
            row = next(r for r in d.find_elements("css selector", "#clients tbody tr") if r.text.startswith("crm"))
            click_through(d, row.find_elements("css selector", "form[action='/cms/clients/revoke'] button")[0])
            assert "revoked" in d.find_element("css selector", "p.notice").text
            status, _, text = request("/api/v1/extensions", headers=bearer)
            assert status == 401 and "revoked" in text, (status, text)
            facts["revoked_token"] = status

            click_through(d, d.find_element("link text", "Services"))
            d.find_element("id", "key").send_keys("support")
            d.find_element("id", "number").send_keys("2000")
            d.find_element("id", "display-name").send_keys("Customer support")
            click_through(d, d.find_element("id", "save-service"))
            assert "support" in d.find_element("id", "services").text
            assert "support\t2000\tCustomer support" in tandem.cli("services", "list").stdout
        return facts
    finally:
        tandem.stop()
        stop(peer)


def scenario_transfer(ctx):
    facts = {}
    for side in ("a", "b"):
        os.makedirs(os.path.join(ctx.workdir, side), exist_ok=True)
    a = Tandem(ctx.binary, os.path.join(ctx.workdir, "a"))
    a.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
    a.cli("extensions", "add", "3000-3004", "--digest", "--username", "3000", "--password", "pw3000", "--increment")
    a.cli("services", "add", "support", "2000", "--name", "Support")
    a.start()
    files = {}
    try:
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-a")) as b:
            sign_in(b, ACCOUNT, PASSWORD)
            # A's log level set on its page travels with the configuration.
            from selenium.webdriver.support.ui import Select
            b.open(BASE + "/cms/diagnostics")
            Select(b.driver.find_element("id", "level")).select_by_value("debug")
            click_through(b.driver, b.driver.find_element("id", "save-logging"))
            jar = "tandem_cms=" + next(c["value"] for c in b.driver.get_cookies() if c["name"] == "tandem_cms")
            for part in ("extensions", "configuration"):
                status, headers, text = request(f"/cms/transfer/{part}.json", headers={"Cookie": jar})
                assert status == 200 and headers["Content-Disposition"].startswith(f'attachment; filename="tandem-{part}-'), (status, headers)
                files[part] = os.path.join(ctx.workdir, f"{part}.json")
                open(files[part], "w").write(text)
        assert '"pw3003"' in open(files["extensions"]).read()
        assert a.client_secret is None or a.client_secret not in open(files["configuration"]).read()
    finally:
        a.stop()

    b_side = Tandem(ctx.binary, os.path.join(ctx.workdir, "b"))
    b_side.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
    b_side.cli("extensions", "add", "3004,3100", "--digest", "--password", "other")
    b_side.start()
    try:
        status, answer = b_side.api("POST", "/api/v1/import?dryRun=true", json.load(open(files["configuration"])))
        assert status == 200 and answer["applied"] is False and answer["plan"]["services"]["added"] == ["support"], (status, answer)
        assert "diagnostics.defaultLevel – → debug" in answer["plan"]["settings"], answer
        # The configuration through the CLI (another process): the running server takes A's log level within seconds.
        b_side.cli("config", "import", files["configuration"])
        wait_for("B to follow the imported log level", lambda: "Log levels and retention changed in the database" in open(os.path.join(ctx.workdir, "b", "tandem.out")).read(), 10)
        facts["diagnostics_followed"] = True
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-b")) as b:
            d = b.driver
            sign_in(b, ACCOUNT, PASSWORD)
            click_through(d, d.find_element("link text", "Export/import"))
            d.find_element("id", "file").send_keys(files["extensions"])
            click_through(d, d.find_element("id", "preview"))
            plan = d.find_element("id", "import-plan").text
            assert "4: 3000, 3001, 3002, 3003" in plan and "1: 3004" in plan and "1: 3100" in plan, plan
            ctx.shot(b, "09-import.png")
            assert "3000" not in b_side.cli("extensions", "list").stdout, "a preview changes nothing"
            click_through(d, d.find_element("id", "apply-import"))
            assert "Imported." in d.find_element("css selector", "p.notice").text
        listed = b_side.cli("extensions", "list").stdout
        assert "5 extensions" in listed and "3100" not in listed and "3003\tdigest\t3003" in listed, listed
        facts["after_import"] = listed.strip().splitlines()[-1]
        return facts
    finally:
        b_side.stop()


def make_certificate(workdir, name, host, days):
    """A self-signed ECDSA P-256 certificate for `host` and 127.0.0.1 valid `days`, as PEM
    files (certificate, key) in `workdir`; its DER."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host), x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    paths = (os.path.join(workdir, f"{name}.crt"), os.path.join(workdir, f"{name}.key"))
    open(paths[0], "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    open(paths[1], "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths, cert.public_bytes(serialization.Encoding.DER)


def presented(port, host="127.0.0.1"):
    """The DER certificate a new TLS handshake to `host:port` presents."""
    with socket.create_connection((host, port), timeout=5) as raw:
        with insecure_tls().wrap_socket(raw, server_hostname="gw.tandem.test") as tls:
            return tls.getpeercert(binary_form=True)


def scenario_certificates(ctx):
    facts = {}
    turn_tls = free_port(socket.SOCK_STREAM)
    tandem = Tandem(ctx.binary, ctx.workdir, TANDEM_TLS_HOST_NAME="gw.tandem.test", TANDEM_TURN_TRANSPORTS="udp,tls", TANDEM_TURN_TLS_PORT=str(turn_tls))
    good, good_der = make_certificate(ctx.workdir, "good", "gw.tandem.test", days=20)
    other, _ = make_certificate(ctx.workdir, "other", "gw.tandem.test", days=365)
    try:
        tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
        tandem.start()
        self_signed = presented(7443)
        assert presented(turn_tls) == self_signed
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-cert")) as b:
            d = b.driver
            sign_in(b, ACCOUNT, PASSWORD)
            assert not d.find_elements("id", "certificate-banner")
            click_through(d, d.find_element("link text", "Certificates"))
            assert "self-signed" in d.find_element("id", "certificate-source").text
            # The key of another certificate: refused next to the key field, nothing changes.
            d.find_element("id", "certificate").send_keys(good[0])
            d.find_element("id", "key").send_keys(other[1])
            click_through(d, d.find_element("id", "upload-certificate"))
            assert "does not belong to the certificate" in d.find_element("id", "key-error").text, d.page_source[:1500]
            assert presented(7443) == self_signed
            # The right key: the next handshakes present it, HTTPS and TURN over TLS alike.
            d.find_element("id", "certificate").send_keys(good[0])
            d.find_element("id", "key").send_keys(good[1])
            click_through(d, d.find_element("id", "upload-certificate"))
            assert "Installed." in d.find_element("css selector", "p.notice").text, d.page_source[:1500]
            assert presented(7443) == good_der and presented(turn_tls) == good_der
            assert "gw.tandem.test" in d.find_element("id", "alternative-names").text
            assert "expires on" in d.find_element("id", "certificate-banner").text, "20 days left: every page warns"
            ctx.shot(b, "11-certificates.png", height=1250)
            b.open(BASE + "/cms/")
            assert d.find_elements("id", "certificate-banner")
            b.open(BASE + "/cms/audit")
            assert "certificate installed" in d.page_source
            b.open(BASE + "/cms/certificates")
            click_through(d, d.find_element("id", "remove-certificate"))
            assert "removed" in d.find_element("css selector", "p.notice").text
            assert presented(7443) == self_signed and presented(turn_tls) == self_signed
            assert not d.find_elements("id", "certificate-banner")
        facts["presented"] = "uploaded then self-signed again, HTTPS and TURN-TLS"
        return facts
    finally:
        tandem.stop()


def scenario_diagnostics(ctx):
    import io
    import tarfile
    facts = {}
    tandem = Tandem(ctx.binary, ctx.workdir)
    try:
        tandem.cli("admin", "create", ACCOUNT, "--password-stdin", stdin=PASSWORD + "\n")
        assert tandem.client_secret, "the first command shows the generated OAuth secret"
        tandem.start()
        log = os.path.join(ctx.workdir, "log", "tandem.log")
        with Browser(tone_hz=None, workdir=os.path.join(ctx.workdir, "browser-diag")) as b:
            d = b.driver
            sign_in(b, ACCOUNT, PASSWORD)
            b.open(BASE + "/cms/turn")
            turn_secret = d.find_element("id", "turn-secret").get_attribute("textContent").strip()
            assert len(turn_secret) >= 32
            click_through(d, d.find_element("link text", "Diagnostics"))
            # Default warning: the next sign-in (info, [Admin]) is not logged.
            d.find_element("css selector", "#level option[value='warning']").click()
            d.find_element("id", "max-files").clear()
            d.find_element("id", "max-files").send_keys("3")
            click_through(d, d.find_element("id", "save-logging"))
            assert "in force now" in d.find_element("css selector", "p.notice").text, d.page_source[:1500]
            before = open(log).read().count("CMS sign-in")
            click_through(d, d.find_element("css selector", "form.signout button"))
            sign_in(b, ACCOUNT, PASSWORD)
            time.sleep(0.5)
            assert open(log).read().count("CMS sign-in") == before, "a default of warning hides info lines"
            # Admin at info: sign-ins are logged again, the rest stays at warning.
            b.open(BASE + "/cms/diagnostics")
            d.find_element("css selector", "#level-Admin option[value='info']").click()
            click_through(d, d.find_element("id", "save-logging"))
            click_through(d, d.find_element("css selector", "form.signout button"))
            sign_in(b, ACCOUNT, PASSWORD)
            wait_for("the sign-in logged again", lambda: open(log).read().count("CMS sign-in") == before + 1, 5)
            b.open(BASE + "/cms/diagnostics")
            assert "3" == d.find_element("id", "max-files").get_attribute("value")
            ctx.shot(b, "13-diagnostics.png", height=1900)
            b.open(BASE + "/cms/restart")
            assert "running" in d.find_element("id", "restart-phase").text
            ctx.shot(b, "14-restart.png", height=800)
            b.open(BASE + "/cms/diagnostics")
            # The download, as the page's form posts it (its CSRF token and the session cookie).
            csrf = d.find_element("css selector", "form[action='/cms/diagnostics/download'] input[name=csrf]").get_attribute("value")
            jar = "tandem_cms=" + next(c["value"] for c in d.get_cookies() if c["name"] == "tandem_cms")
        body = urllib.parse.urlencode({"csrf": csrf, "capture": "2"}).encode()
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()))
        req = urllib.request.Request(BASE + "/cms/diagnostics/download", data=body, method="POST",
                                     headers={"Cookie": jar, "Content-Type": "application/x-www-form-urlencoded"})
        with opener.open(req, timeout=60) as r:
            disposition, archive = r.headers["Content-Disposition"], r.read()
        assert re.match(r'attachment; filename="tandem-diagnostics-\d{8}T\d{6}Z\.tar\.gz"', disposition), disposition
        members = {}
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for m in tar.getmembers():
                if m.isfile():
                    members[m.name.split("/", 1)[1]] = tar.extractfile(m).read()
        facts["members"] = sorted(members)
        for name in ("logs/tandem.log", "configuration.yaml", "runtime-settings.json", "audit.log", "metrics.txt", "version.txt", "capture.pcapng"):
            assert name in members, (name, sorted(members))
        assert b"shared-secret: \"(set)\"" in members["configuration.yaml"] or b"shared-secret:" in members["configuration.yaml"]
        assert b"logging changed" in members["audit.log"] and b"diagnostics downloaded" in members["audit.log"]
        assert b"tandem_" in members["metrics.txt"]
        for secret in (turn_secret, tandem.client_secret, PASSWORD):
            leaks = [n for n, data in members.items() if secret.encode() in data]
            assert not leaks, f"a secret is in {leaks}"
        facts["archive_kib"] = len(archive) // 1024
        return facts
    finally:
        tandem.stop()


def scenario_import_kill(ctx):
    import random
    import sqlite3
    tandem = Tandem(ctx.binary, ctx.workdir)
    tandem.cli("extensions", "add", "3000-3004", "--digest", "--username", "3000", "--password", "pw3000", "--increment")
    old_file = os.path.join(ctx.workdir, "old.json")
    tandem.cli("config", "export", "--output", old_file)
    document = json.load(open(old_file))
    template = document["extensions"][0]
    document["extensions"] = [dict(template, extension=str(n), digestUsername=str(n), digestPassword=f"pw{n}") for n in range(4000, 6000)]
    new_file = os.path.join(ctx.workdir, "new.json")
    json.dump(document, open(new_file, "w"))
    old = {str(n) for n in range(3000, 3005)}
    new = {str(n) for n in range(4000, 6000)}

    def numbers():
        listed = tandem.cli("extensions", "list").stdout
        return {line.split("\t")[0] for line in listed.splitlines() if "\t" in line and line[:1].isdigit()}

    # How long an import takes here, to spread the kills over all of it.
    started = time.monotonic()
    tandem.cli("config", "import", new_file)
    whole = time.monotonic() - started
    assert numbers() == new
    tandem.cli("config", "import", old_file)
    outcomes = {"old": 0, "new": 0}
    rng = random.Random(7)
    for i in range(25):
        target = new_file if numbers() == old else old_file
        proc = subprocess.Popen([ctx.binary, "config", "import", target], env=tandem.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Evenly over 0–2× an import's time (a little jitter), so early and late kills both happen.
        time.sleep(max(0.0, (i / 24) * 2 * whole + rng.uniform(-0.02, 0.02)))
        proc.kill()
        proc.wait()
        db = sqlite3.connect(os.path.join(ctx.workdir, "data", "tandem.sqlite"))
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        assert check == "ok", check
        have = numbers()
        assert have in (old, new), f"kill {i}: {len(have)} extensions, a mix of old and new"
        outcomes["old" if have == old else "new"] += 1
    assert outcomes["old"] > 0 and outcomes["new"] > 0, f"the kills did not spread over the import: {outcomes}"
    return {"import_s": round(whole, 2), "after_kills": outcomes}


def scenario_networks(ctx):
    """/cms from a network outside cms.allowed-networks: a client in a network namespace of its
    own (veth 10.77.0.2 → 10.77.0.1) gets 404 where loopback gets the page; then /cms on its
    own listener (cms.listen): 404 on 7443, served on the other port."""
    facts = {}
    ns = f"tandem-cms-{os.getpid()}"
    host_if, ns_if = f"tcms{os.getpid() % 100000}a", f"tcms{os.getpid() % 100000}b"

    def sh(*args):
        subprocess.run(args, check=True, capture_output=True, timeout=20)
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", "10.77.0.1/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", "10.77.0.2/24", "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        tandem = Tandem(ctx.binary, ctx.workdir, TANDEM_HTTP_LISTEN_ADDRESS="0.0.0.0", TANDEM_CMS_ALLOWED_NETWORKS="127.0.0.0/8")
        tandem.start()
        try:
            probe = ("import ssl, urllib.request, urllib.error, sys\n"
                     "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
                     "for path in sys.argv[1:]:\n"
                     "    try: print(urllib.request.urlopen('https://10.77.0.1:7443' + path, context=ctx, timeout=5).status)\n"
                     "    except urllib.error.HTTPError as e: print(e.code)\n")
            paths = ["/cms", "/cms/", "/cms/login", "/cms/static/cms.css", "/healthz"]
            out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe, *paths], capture_output=True, text=True, timeout=60)
            statuses = dict(zip(paths, (int(x) for x in out.stdout.split())))
            facts["from_other_network"] = statuses
            assert all(statuses[p] == 404 for p in paths[:-1]) and statuses["/healthz"] == 200, (statuses, out.stderr)
            facts["from_loopback"] = request("/cms/login")[0]
            assert facts["from_loopback"] == 200, facts
        finally:
            tandem.stop()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=20)
    # /cms on its own listener.
    port = free_port(socket.SOCK_STREAM)
    tandem = Tandem(ctx.binary, os.path.join(ctx.workdir), TANDEM_CMS_LISTEN=f"127.0.0.1:{port}")
    tandem.start()
    try:
        main = request("/cms/login")[0]
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure_tls()))
        with opener.open(f"https://127.0.0.1:{port}/cms/login", timeout=10) as r:
            own = r.status
        facts["cms_listen"] = {"7443": main, str(port): own}
        assert main == 404 and own == 200, facts
        assert request("/healthz")[0] == 200
        return facts
    finally:
        tandem.stop()


SCENARIOS = {
    "first-start": scenario_first_start_and_sign_in,
    "lock-out": scenario_lock_out,
    "extensions": scenario_extensions,
    "turn-clients": scenario_turn_and_clients,
    "transfer": scenario_transfer,
    "certificates": scenario_certificates,
    "diagnostics": scenario_diagnostics,
    "import-kill": scenario_import_kill,
    "networks": scenario_networks,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--screenshots", help="directory for the screenshots (default: the run's temporary directory)")
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    binary = os.path.abspath(args.tandem)
    failed = []
    for name in args.scenarios:
        workdir = tempfile.mkdtemp(prefix=f"tandem-cms-{name}-")
        ctx = Context(binary, workdir, os.path.abspath(args.screenshots) if args.screenshots else os.path.join(workdir, "screenshots"))
        started = time.monotonic()
        try:
            facts = SCENARIOS[name](ctx)
            print(f"PASS {name} ({time.monotonic() - started:.1f} s) {facts}", flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
        except Exception:
            failed.append(name)
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s); kept {workdir}", flush=True)
            traceback.print_exc()
            log = os.path.join(workdir, "tandem.out")
            if os.path.exists(log):
                print("--- tandem.out (last 40 lines) ---\n" + "".join(open(log).readlines()[-40:]))
    print(f"{len(args.scenarios) - len(failed)}/{len(args.scenarios)} /cms scenarios passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
