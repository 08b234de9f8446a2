#!/usr/bin/env python3
"""End-to-end tests of the gateway: headless Chromium on Tandem's agent demo page (the SDK,
/webkit/ws, WebRTC) bridged by Tandem to SIP peers behind Kamailio (digest auth), each run
in its own network namespace that has only `lo` (see shared/TESTING.md):

  demo             `make run`'s first call: no SIP platform, http.demo on; the agent page gets its
                   session from Tandem's demo endpoint and calls the built-in echo number, the
                   click-to-call page's element calls the echo service: each hears its own tone
  agent-incoming   the test is the application server (OAuth token -> session for 1001); the
                   page connects and 1001 registers; sipp calls 1001 through Kamailio streaming
                   a 440 Hz µ-law tone; the page auto-answers and must hear 440 Hz, sipp must
                   receive the page's 1 kHz fake-microphone tone (from a capture, by FFT);
                   sipp's BYE ends the page's call; the page is closed and 1001 unregisters
                   after the grace period; a bad session token is refused with 401
  agent-incoming-turn
                   the same with iceTransportPolicy "relay": the browser reaches Tandem's media
                   only through Tandem's own TURN server (UDP 3478), with the REST credentials
                   of the session's iceServers (turn.allowed-peers lets it relay to 127.0.0.1);
                   the selected candidate pair must be a relay one
  agent-outgoing   the page (extension 3001, which Kamailio challenges with 407 on INVITE) calls a
                   registered baresip (auto-answer, 440 Hz); tones are checked both ways (the
                   page's measurement, baresip's recording); DTMF "1234#" from the page's
                   RTCDTMFSender reaches baresip as RFC 4733 events; hold and resume send
                   re-INVITEs with a=sendonly and a=sendrecv; the page hangs up: BYE
  agent-outgoing-info
                   the same with sip.dtmf-mode info: the SIP SDP offers no telephone-event and
                   the page's "1234#" reaches baresip as five SIP INFOs (application/dtmf-relay)
  srtp             an administrator sets "Secure only" on /cms/payload in a second Chromium (no
                   restart); the page's call to a plain-RTP baresip is refused (its 488 to
                   Tandem's RTP/SAVP offer ends the call), its call to a baresip with mediaenc
                   srtp-mand carries SRTP both ways (tones checked on each side; every RTP packet
                   toward baresip carries the 10-byte HMAC-SHA1-80 tag, so none is plain RTP)
  opus             an administrator puts Opus first on /cms/payload: the page's call to a baresip with Opus carries the
                   browser's Opus untranscoded (the INVITE offers payload type 111 first, the call lists as
                   pass-through, tones checked both ways), its call to a PCMU-only baresip gets G.711 and is
                   transcoded; a click-to-contact caller reaches agent 3002 (a second page, registered at
                   Kamailio) through Kamailio: both SIP legs carry only Opus (PT 111), both calls are pass-through,
                   each page hears the other's tone
  signed-token     an administrator turns the WebRTC secret of the OAuth client on at /cms/clients (shown once); a
                   token the test signs with it (w1:client:3001:expiry:HMAC-SHA256, no API call) lets the agent page
                   connect and 3001 register at Kamailio, as one session that a reload keeps; forged, stale,
                   too-long and wrongly keyed tokens get 401 before the upgrade and make no session; once the
                   switch is off a well-signed token for the free 3002 gets 401
  restart          "Restart service" on /cms under load: with a call in progress, new sessions get
                   503 while it drains; the browser hangs up and Tandem restarts at once (same
                   PID, a new start time) and the page comes back by itself; a second call is
                   left up: past cms.drain-timeout Tandem ends it with BYE (the browser is told,
                   baresip gets the BYE), then restarts and serves again
  click-to-contact the test makes a guest session for caller +4989123456 and the service
                   "support" (number 2000: a sipp UAS echoing RTP, registered at Kamailio); the
                   click-to-call page's element calls it: the INVITE carries the caller's number in
                   From and P-Asserted-Identity, the page hears its own 1 kHz tone back; the guest
                   may call nothing else; the element hangs up: BYE
  faults           the browser is killed mid-call: the SIP leg gets a BYE within 30 s and the
                   extension unregisters after the grace period; a bad OAuth token gets 401; a
                   deleted session's socket is closed and its token refused with 401; a session
                   that expires while connected has its socket closed with a reason and its
                   extension unregistered at once; an expired session's token is refused with 401

  run.py --tandem .build/debug/tandem [SCENARIO ...]     (run with the venv's python: selenium)
"""
import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
_spec = importlib.util.spec_from_file_location("sip_interop", os.path.join(HERE, "..", "sip", "run.py"))
sip = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sip)
from browser import Browser, session_fragment  # noqa: E402

SCENARIOS = ["demo", "agent-incoming", "agent-incoming-turn", "agent-outgoing", "agent-outgoing-info", "srtp", "opus", "signed-token", "restart", "click-to-contact", "faults"]
GRACE = 3
RTP_PORTS = (30000, 30099)


class Tandem(sip.Tandem):
    """`tandem serve` with media on 127.0.0.1 and SIP toward Kamailio; extensions register while a browser holds them."""

    def __init__(self, binary, workdir, turn=False):
        super().__init__(binary, workdir, "udp", secondary=False)
        if turn:
            self.env.update({
                "TANDEM_TURN_ENABLED": "true",
                "TANDEM_TURN_LISTEN_ADDRESSES": "127.0.0.1",
                "TANDEM_TURN_TRANSPORTS": "udp,tcp",
                "TANDEM_TURN_RELAY_ADDRESSES": "127.0.0.1",
                "TANDEM_TURN_ALLOWED_PEERS": "127.0.0.1/32",
            })
        self.env.update({
            "TANDEM_MEDIA_ENABLED": "true",
            "TANDEM_MEDIA_BIND_ADDRESS": "127.0.0.1",
            "TANDEM_MEDIA_THREADS": "1",
            "TANDEM_SIP_UNREGISTER_GRACE": str(GRACE),
            "TANDEM_SIP_RTP_PORT_MIN": str(RTP_PORTS[0]),
            "TANDEM_SIP_RTP_PORT_MAX": str(RTP_PORTS[1]),
        })


# The candidate types of the current call's selected ICE pair, from the page's RTCPeerConnection.
RELAY_PAIR = """return (async () => {
const call = tandemAgent.current() && [...(await tandemAgent.ready).calls.values()].find(c => c.id === tandemAgent.current().id);
const pc = call && call.pc;
if (!pc) return {error: "no peer connection on the call object"};
const stats = await pc.getStats();
let out = {};
stats.forEach(s => {
  if (s.type === "transport" && s.selectedCandidatePairId) {
    const pair = stats.get(s.selectedCandidatePairId);
    out = {state: pair.state, local: stats.get(pair.localCandidateId).candidateType, remote: stats.get(pair.remoteCandidateId).candidateType};
  }
});
return out;
})();"""


# The current call's object in the SDK, for its RTCPeerConnection.
CURRENT_CALL = "const phone = await tandemAgent.ready; const call = [...phone.calls.values()].find(c => c.id === tandemAgent.current().id);"
RENEGOTIATE = "return (async () => { " + CURRENT_CALL + " await call.renegotiate(); return true; })();"
# Tandem's ICE ufrag in the remote description, and the connection state.
ICE_PAIR = ("return (async () => { " + CURRENT_CALL +
            " const m = /a=ice-ufrag:(\\S+)/.exec(call.pc.remoteDescription.sdp); return {ufrag: m && m[1], state: call.pc.connectionState}; })();")


def open_agent(browser, session, query=""):
    """The agent demo page with `session`, once its extension is registered."""
    browser.open("https://127.0.0.1:7443/webkit/demo/agent.html" + query + session_fragment(session))
    browser.wait_event("registration", 20, where={"state": "registered"})


def rtp_audio(path, to_port):
    """The µ-law payloads (as 16-bit samples) of the RTP packets of a capture sent to `to_port`."""
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "udp.dstport", "-e", "udp.payload", f"udp.dstport == {to_port}"],
                         capture_output=True, text=True)
    samples = []
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1]:
            continue
        payload = bytes.fromhex(parts[1].replace(":", ""))
        if len(payload) < 12 or payload[1] & 0x7F != 0:
            continue  # not PCMU (telephone-event, RTCP)
        samples += [ulaw_decode(b) for b in payload[12:]]
    return samples


def ulaw_decode(byte):
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    return -(magnitude - 0x84) if sign else magnitude - 0x84


def sipp_call(workdir, service, seconds, media_port):
    return subprocess.Popen(["sipp", "127.0.0.1:5060", "-sf", os.path.join(HERE, "uac-call.xml"), "-s", service, "-i", "127.0.0.1", "-p", "5070",
                             "-mp", str(media_port), "-d", str(seconds * 1000), "-m", "1", "-timeout", "60s", "-nostdin", "-trace_err"],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def scenario_agent_incoming(tandem_binary, workdir, relay=False):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    open(os.path.join(workdir, "tone.ulaw"), "wb").write(bytes(sip.ulaw(x) for x in sip.tone(440, 12)))
    tandem = Tandem(tandem_binary, workdir, turn=relay)
    try:
        tandem.cli("extensions", "add", "1001", "--digest", "--password", "pw1001")
        tandem.start()
        # Nothing registers before a browser holds the extension.
        time.sleep(2)
        assert "1001" not in (kamailio.contacts() or {}), kamailio.last_dump
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "1001"})
        status_, listed = tandem.api("GET", "/api/v1/extensions")
        assert listed["extensions"] == [{"extension": "1001", "state": "allocated"}], listed
        assert status == 201 and session["websocketURL"] == "wss://127.0.0.1:7443/webkit/ws", session
        if relay:
            urls = session["iceServers"][0]["urls"]
            assert "turn:127.0.0.1:3478?transport=udp" in urls and session["iceServers"][0]["username"], session
        # A bad token: the upgrade is refused with 401 (no socket).
        code, _ = tandem.get("/webkit/ws?token=not-a-token", status=True)
        assert code == 401, code
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            open_agent(browser, session, "?autoanswer=1" + ("&relay=1" if relay else ""))
            sip.wait_for("1001 in Kamailio", lambda: "1001" in (kamailio.contacts() or {}), 10)
            status, listed = tandem.api("GET", "/api/v1/extensions")
            assert {"extension": "1001", "state": "registered"}.items() <= next(e for e in listed["extensions"] if e["extension"] == "1001").items(), listed
            dump, pcap = sip.capture(workdir, "agent-incoming")
            caller = sipp_call(workdir, "1001", 10, 16000)
            try:
                incoming = browser.wait_event("incoming", 20)
                browser.wait_event("answered", 15, call=incoming["call"])
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 3)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15 and heard["peakShare"] > 0.3, heard
                facts["browser_heard"] = heard
                if relay:
                    pair = browser.js_async(RELAY_PAIR)
                    assert pair.get("local") == "relay" and pair.get("state") == "succeeded", pair
                    facts["selected_pair"] = pair
                    allocations = tandem.metric("tandem_turn_allocations")
                    assert allocations and allocations >= 1, allocations
                status, calls = tandem.api("GET", "/api/v1/calls")
                assert status == 200 and len(calls["calls"]) == 1 and calls["calls"][0]["state"] == "confirmed" and calls["calls"][0]["mos"] > 4, calls
                facts["api_calls"] = calls
                status, listed = tandem.api("GET", "/api/v1/extensions")
                assert next(e for e in listed["extensions"] if e["extension"] == "1001")["state"] == "in call", listed
                ended = browser.wait_event("ended", 30, call=incoming["call"])
                facts["ended"] = ended["detail"]
                output, _ = caller.communicate(timeout=30)
                assert caller.returncode == 0, output[-1500:]
            finally:
                sip.stop(caller)
                sip.stop(dump, signal.SIGINT)
            samples = rtp_audio(pcap, 16000)
            assert len(samples) >= 8000 * 4, f"only {len(samples)} samples reached sipp"
            hz, share = sip.dominant(samples)
            assert abs(hz - 1000) <= 20 and share > 0.3, (hz, share)
            facts["sipp_heard"] = {"hz": hz, "share": round(share, 3), "seconds": round(len(samples) / 8000, 1)}
        # The page is gone: 1001 stays registered for the grace period, then unregisters.
        closed = time.monotonic()
        sip.wait_for("1001 unregistered", lambda: "1001" not in (kamailio.contacts() or {}), GRACE + 15)
        facts["unregistered_after_s"] = round(time.monotonic() - closed, 1)
        assert facts["unregistered_after_s"] >= GRACE - 1, facts
        return facts
    finally:
        stop_all(tandem, kamailio)


def capture_all(workdir, name):
    path = os.path.join(workdir, f"{name}.pcap")
    proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "udp", "-w", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1)
    return proc, path


def telephone_events(path, to_port, payload_type=101):
    """The RFC 4733 events (event codes, once per end-marked event) sent to `to_port`."""
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "udp.payload", f"udp.dstport == {to_port}"], capture_output=True, text=True)
    events, seen = [], set()
    for line in out.stdout.splitlines():
        payload = bytes.fromhex(line.strip().replace(":", "")) if line.strip() else b""
        if len(payload) < 16 or payload[1] & 0x7F != payload_type:
            continue
        timestamp = int.from_bytes(payload[4:8], "big")
        event, end = payload[12], payload[13] & 0x80
        if end and timestamp not in seen:  # the end packet is sent three times (RFC 4733 §2.5.1.4)
            seen.add(timestamp)
            events.append(event)
    return events


def sip_requests(path, port=5080):
    """(method, SDP direction or None) of the SIP requests sent to `port`, in order."""
    out = subprocess.run(["tshark", "-r", path, "-d", f"udp.port=={port},sip", "-Y", f"sip.Method && udp.dstport == {port}", "-T", "fields",
                          "-e", "sip.Method", "-e", "sdp.media_attr"], capture_output=True, text=True)
    requests = []
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        attrs = parts[1].split(",") if len(parts) > 1 else []
        direction = next((a for a in attrs if a in ("sendrecv", "sendonly", "recvonly", "inactive")), None)
        requests.append((parts[0], direction))
    return requests


def info_digits(path, port=5080):
    """The Signal= digits of the INFO requests (application/dtmf-relay) sent to `port`, in order."""
    import re
    out = subprocess.run(["tshark", "-r", path, "-d", f"udp.port=={port},sip", "-Y", f"sip.Method == \"INFO\" && udp.dstport == {port}", "-V"],
                         capture_output=True, text=True)
    return re.findall(r"^\s+Signal=(\S)\\r\\n$", out.stdout, re.MULTILINE)


def scenario_agent_outgoing(tandem_binary, workdir, info=False):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    if info:
        tandem.env["TANDEM_SIP_DTMF_MODE"] = "info"
    baresip, records = sip.baresip_callee(workdir, "1001", 440)
    try:
        tandem.cli("extensions", "add", "3001", "--digest", "--password", "pw3001")
        tandem.start()
        sip.wait_for("1001 (baresip) in Kamailio", lambda: "1001" in (kamailio.contacts() or {}), 15)
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 201, session
        dump, pcap = capture_all(workdir, "agent-outgoing")
        try:
            with Browser(tone_hz=1000, workdir=workdir) as browser:
                open_agent(browser, session)
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1001")
                assert isinstance(call, str), call
                browser.wait_event("answered", 20, call=call)
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 3)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15 and heard["peakShare"] > 0.3, heard
                facts["browser_heard"] = heard
                facts["dtmf_path"] = browser.js("return tandemAgent.dtmf(arguments[0])", "1234#")
                time.sleep(2)
                start = browser.now()
                browser.js_async("return tandemAgent.hold()")
                browser.wait_event("held", 10, call=call, where={"local": True}, after=start)
                time.sleep(1)
                start = browser.now()
                browser.js_async("return tandemAgent.resume()")
                browser.wait_event("held", 10, call=call, where={"local": False}, after=start)
                # An ICE restart (renegotiate): new credentials both ways, the call's audio goes on.
                before = browser.js_async(ICE_PAIR)
                browser.js_async(RENEGOTIATE)
                sip.wait_for("the ICE restart", lambda: (browser.js_async(ICE_PAIR) or {}).get("ufrag") not in (None, before.get("ufrag")), 10)
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 2)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15 and heard["peakShare"] > 0.3, heard
                facts["after_ice_restart"] = heard
                browser.js_async("return tandemAgent.hangup()")
                time.sleep(1.5)
        finally:
            sip.stop(dump, signal.SIGINT)
        requests = sip_requests(pcap)
        facts["sip_to_baresip"] = requests
        invites = [d for m, d in requests if m == "INVITE"]
        assert invites[:3] == ["sendrecv", "sendonly", "sendrecv"], requests
        assert requests[-1][0] == "BYE", requests
        # baresip's media port: where the first INVITE's RTP went (from Tandem's SIP RTP range).
        flows = sip.udp_flows(pcap)
        baresip_port = max(((dst, n) for (src, dst), n in flows.items() if RTP_PORTS[0] <= src <= RTP_PORTS[1]), key=lambda x: x[1])[0]
        facts["dtmf_events"] = telephone_events(pcap, baresip_port)
        if info:
            facts["dtmf_infos"] = info_digits(pcap)
            assert facts["dtmf_infos"] == ["1", "2", "3", "4", "#"] and facts["dtmf_events"] == [], facts
        else:
            assert facts["dtmf_events"] == [1, 2, 3, 4, 11], facts
        sip.stop(baresip)
        facts["baresip_heard"] = sip.recorded_tone(records)
        assert abs(facts["baresip_heard"]["hz"] - 1000) <= 20 and facts["baresip_heard"]["share"] > 0.3, facts
        return facts
    finally:
        stop_all(tandem, kamailio, [baresip])


def rtp_sizes(path, to_port):
    """UDP payload sizes of the datagrams sent to `to_port` in a capture."""
    out = subprocess.run(["tshark", "-r", path, "-Y", f"udp.dstport == {to_port}", "-T", "fields", "-e", "udp.length"],
                         capture_output=True, text=True, timeout=60)
    return [int(x) - 8 for x in out.stdout.split()]


ADMIN_ACCOUNT, ADMIN_PASSWORD = "ops", "correct horse battery staple"


def create_admin(tandem_binary, tandem):
    """The /cms account of the scenarios that drive the pages, made before `tandem serve` starts."""
    subprocess.run([tandem_binary, "admin", "create", ADMIN_ACCOUNT, "--password-stdin"], env=tandem.env, input=ADMIN_PASSWORD + "\n",
                   text=True, capture_output=True, timeout=120, check=True)


def cms_admin(workdir):
    """A second Chromium signed in to /cms; the caller closes it (`__exit__`)."""
    browser = Browser(tone_hz=None, workdir=os.path.join(workdir, "admin")).__enter__()
    try:
        d = browser.driver
        browser.open("https://127.0.0.1:7443/cms/login")
        d.find_element("id", "account").send_keys(ADMIN_ACCOUNT)
        d.find_element("id", "password").send_keys(ADMIN_PASSWORD)
        d.find_element("id", "sign-in").click()
        sip.wait_for("the dashboard", lambda: d.find_elements("id", "account") and "/cms/" in d.current_url and "login" not in d.current_url, 15)
    except BaseException:
        browser.__exit__(None, None, None)
        raise
    return browser


def baresip_heard(proc, records, hz=1000):
    """Stops a baresip and checks that its recording holds the page's tone."""
    sip.stop(proc)
    heard = sip.recorded_tone(records)
    assert abs(heard["hz"] - hz) <= 20 and heard["share"] > 0.3, heard
    return heard


def stop_all(tandem, kamailio, peers=(), admin=None):
    """A scenario's cleanup: the admin browser, the SIP peers (baresip, sipp), Tandem, Kamailio."""
    if admin:
        admin.__exit__(None, None, None)
    for proc in peers:
        sip.stop(proc)
    tandem.stop()
    kamailio.kill()


def scenario_srtp(tandem_binary, workdir):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    plain, _ = sip.baresip_callee(workdir, "1001", 440)
    secure, records = sip.baresip_callee(workdir, "1002", 440, port=5090, mediaenc="srtp-mand")
    admin = None
    try:
        tandem.cli("extensions", "add", "3001", "--digest", "--password", "pw3001")
        create_admin(tandem_binary, tandem)
        tandem.start()
        sip.wait_for("both baresips in Kamailio", lambda: {"1001", "1002"} <= set(kamailio.contacts() or {}), 15)
        admin = cms_admin(workdir)

        def set_srtp(mode):
            admin.open("https://127.0.0.1:7443/cms/payload")
            admin.driver.find_element("id", f"srtp-{mode}").click()
            admin.driver.find_element("id", "save-payload").click()
            sip.wait_for("the payload saved", lambda: "Saved." in admin.driver.page_source, 10)
        set_srtp("required")
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 201, session
        dump, pcap = capture_all(workdir, "srtp")
        try:
            with Browser(tone_hz=1000, workdir=workdir) as browser:
                open_agent(browser, session)
                refused = browser.js_async("return tandemAgent.call(arguments[0])", "1001")
                ended = browser.wait_event("ended", 20, call=refused)
                facts["plain_rtp_call"] = ended["detail"]
                assert ended["detail"].get("code") == 488, ended
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1002")
                browser.wait_event("answered", 20, call=call)
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 3)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15 and heard["peakShare"] > 0.3, heard
                facts["browser_heard"] = heard
                browser.js_async("return tandemAgent.hangup()")
                time.sleep(1)
                # Secure preferred: the plain-RTP baresip is called again and answers; RTP, no tag.
                set_srtp("preferred")
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1001")
                browser.wait_event("answered", 20, call=call)
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 2)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15, heard
                facts["preferred_fell_back"] = heard["peakHz"]
                browser.js_async("return tandemAgent.hangup()")
                time.sleep(1.5)
        finally:
            sip.stop(dump, signal.SIGINT)
        requests = sip_requests(pcap, port=5090)
        assert requests and requests[0][0] == "INVITE", requests
        out = subprocess.run(["tshark", "-r", pcap, "-d", "udp.port==5090,sip", "-Y", "sip.Method == INVITE && udp.dstport == 5090", "-T", "fields", "-e", "sdp.media", "-e", "sdp.media_attr"],
                             capture_output=True, text=True, timeout=60).stdout
        assert "RTP/SAVP" in out and "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in out, out
        flows = sip.udp_flows(pcap)
        port = max(((dst, n) for (src, dst), n in flows.items() if RTP_PORTS[0] <= src <= RTP_PORTS[1]), key=lambda x: x[1])[0]
        sizes = rtp_sizes(pcap, port)
        facts["srtp_to_baresip"] = {"packets": len(sizes), "sizes": sorted(set(sizes))[:4]}
        assert len(sizes) >= 100 and all(n == 12 + 160 + 10 for n in sizes if n > 100), facts
        invites = subprocess.run(["tshark", "-r", pcap, "-Y", "sip.Method == INVITE && udp.dstport == 5080", "-T", "fields", "-e", "sdp.media", "-e", "sdp.media_attr"],
                                 capture_output=True, text=True, timeout=60).stdout.splitlines()
        assert "RTP/SAVP" in invites[0] and "RTP/AVP" in invites[-1] and "crypto:1" in invites[-1], invites
        plain_port = max(((dst, n) for (src, dst), n in flows.items() if RTP_PORTS[0] <= src <= RTP_PORTS[1] and dst != port), key=lambda x: x[1])[0]
        plain_sizes = rtp_sizes(pcap, plain_port)
        facts["rtp_to_plain_baresip"] = {"packets": len(plain_sizes), "sizes": sorted(set(plain_sizes))[:4]}
        assert len(plain_sizes) >= 50 and all(n == 12 + 160 for n in plain_sizes if n > 100), facts
        facts["baresip_heard"] = baresip_heard(secure, records)
        return facts
    finally:
        stop_all(tandem, kamailio, [plain, secure], admin)


def rtp_payload_types(path, to_port):
    """{payload type: packets} of the RTP sent to `to_port` in a capture (RTCP left out)."""
    out = subprocess.run(["tshark", "-r", path, "-Y", f"udp.dstport == {to_port}", "-T", "fields", "-e", "udp.payload"],
                         capture_output=True, text=True, timeout=60)
    types = {}
    for line in out.stdout.split():
        payload = bytes.fromhex(line.replace(":", ""))
        if len(payload) >= 12 and payload[0] >> 6 == 2 and not 200 <= payload[1] <= 204:
            types[payload[1] & 0x7F] = types.get(payload[1] & 0x7F, 0) + 1
    return types


def set_codecs(admin, order):
    """/cms/payload: exactly the audio codecs of `order` enabled, in that order."""
    from selenium.webdriver.support.ui import Select
    admin.open("https://127.0.0.1:7443/cms/payload")
    d = admin.driver
    for name in ("opus", "pcmu", "pcma"):
        box = d.find_element("id", f"codec-{name}")
        if box.is_selected() != (name in order):
            box.click()
        if name in order:
            Select(d.find_element("id", f"order-{name}")).select_by_value(str(order.index(name) + 1))
    d.find_element("id", "save-payload").click()
    sip.wait_for("the payload saved", lambda: "Saved." in d.page_source, 10)


def api_calls(tandem, count):
    """`GET /api/v1/calls` once `count` calls are confirmed."""
    def confirmed():
        status, calls = tandem.api("GET", "/api/v1/calls")
        return calls["calls"] if status == 200 and sum(c["state"] == "confirmed" for c in calls["calls"]) == count else None
    return sip.wait_for(f"{count} confirmed calls", confirmed, 10)


def scenario_opus(tandem_binary, workdir):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    plain, _ = sip.baresip_callee(workdir, "1001", 440)
    opus, records = sip.baresip_callee(workdir, "1002", 440, port=5090, codecs="opus/48000/2,PCMU")
    admin = None
    try:
        for number in ("3001", "3002"):
            tandem.cli("extensions", "add", number, "--digest", "--password", "pw" + number)
        tandem.cli("services", "add", "support", "3002", "--name", "Support")
        create_admin(tandem_binary, tandem)
        tandem.start()
        sip.wait_for("both baresips in Kamailio", lambda: {"1001", "1002"} <= set(kamailio.contacts() or {}), 15)
        admin = cms_admin(workdir)
        set_codecs(admin, ["opus", "pcmu", "pcma"])
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 201, session
        dump, pcap = capture_all(workdir, "opus")
        try:
            with Browser(tone_hz=1000, workdir=workdir) as browser:
                open_agent(browser, session)
                # A platform that takes Opus gets the browser's Opus, untranscoded.
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1002")
                browser.wait_event("answered", 20, call=call)
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 3)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15 and heard["peakShare"] > 0.3, heard
                facts["browser_heard_opus_baresip"] = heard
                listed = api_calls(tandem, 1)
                assert listed[0]["codec"] == "opus" and listed[0]["mode"] == "pass-through", listed
                facts["opus_call"] = {k: listed[0][k] for k in ("codec", "mode", "mos")}
                browser.js_async("return tandemAgent.hangup()")
                time.sleep(1)
                # One that answers with G.711 gets it, transcoded.
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1001")
                browser.wait_event("answered", 20, call=call)
                heard = browser.js_async("return tandemAgent.measure(arguments[0])", 2)
                assert "error" not in heard and abs(heard["peakHz"] - 440) <= 15 and heard["peakShare"] > 0.3, heard
                listed = api_calls(tandem, 1)
                assert listed[0]["codec"] == "opus" and listed[0]["mode"] == "transcode", listed
                facts["g711_call"] = {k: listed[0][k] for k in ("codec", "mode")}
                browser.js_async("return tandemAgent.hangup()")
                time.sleep(1)
            # A click-to-contact caller reaches the agent 3002 through the PBX: Opus end to end.
            status, agent_session = tandem.api("POST", "/api/v1/sessions", {"extension": "3002"})
            assert status == 201, agent_session
            status, guest = tandem.api("POST", "/api/v1/sessions", {"guest": {"from": "+4989123456", "destination": "support"}})
            assert status == 201, guest
            with Browser(tone_hz=600, workdir=os.path.join(workdir, "agent")) as agent, Browser(tone_hz=1000, workdir=os.path.join(workdir, "caller")) as caller:
                open_agent(agent, agent_session, "?autoanswer=1")
                sip.wait_for("3002 in Kamailio", lambda: "3002" in (kamailio.contacts() or {}), 10)
                caller.open("https://127.0.0.1:7443/webkit/demo/click-to-call.html?service=support" + session_fragment(guest))
                caller.js_async("return tandemClickToCall.start().then(c => c.id)")
                caller.wait_event("answered", 20, source="tandemClickToCall")
                listed = api_calls(tandem, 2)
                assert all(c["codec"] == "opus" and c["mode"] == "pass-through" for c in listed), listed
                facts["click_to_contact_calls"] = [{k: c[k] for k in ("direction", "codec", "mode")} for c in listed]
                heard = caller.js_async("return tandemClickToCall.measure(arguments[0])", 3)
                assert "error" not in heard and abs(heard["peakHz"] - 600) <= 15 and heard["peakShare"] > 0.3, heard
                facts["caller_heard_agent"] = heard
                heard = agent.js_async("return tandemAgent.measure(arguments[0])", 3)
                assert "error" not in heard and abs(heard["peakHz"] - 1000) <= 15 and heard["peakShare"] > 0.3, heard
                facts["agent_heard_caller"] = heard
                caller.js_async("return tandemClickToCall.hangup()")
                agent.wait_event("ended", 15)
        finally:
            sip.stop(dump, signal.SIGINT)
        # The INVITE to baresip offers Opus first; what Tandem sends it is Opus (PT 111).
        media = subprocess.run(["tshark", "-r", pcap, "-d", "udp.port==5090,sip", "-Y", "sip.Method == INVITE && udp.dstport == 5090", "-T", "fields", "-e", "sdp.media"],
                               capture_output=True, text=True, timeout=60).stdout.split()
        assert media[:4] == ["audio", media[1], "RTP/AVP", "111"], media
        flows = sip.udp_flows(pcap)
        in_range = lambda port: RTP_PORTS[0] <= port <= RTP_PORTS[1]
        # Toward the two baresips: one stream all Opus, one all PCMU (payload type 0).
        to_baresips = [dst for (src, dst), n in flows.items() if in_range(src) and not in_range(dst) and dst not in (5060, 5080, 5090) and n >= 50]
        facts["rtp_to_baresips"] = sorted((rtp_payload_types(pcap, port) for port in to_baresips), key=lambda t: sorted(t))
        assert [sorted(t) for t in facts["rtp_to_baresips"]] == [[0], [111]], facts
        # The SIP legs between Tandem and itself (via Kamailio) carry Opus both ways, nothing else.
        between = [dst for (src, dst), n in flows.items() if in_range(src) and in_range(dst) and n >= 50]
        assert len(between) == 2, flows
        facts["rtp_between_legs"] = {port: rtp_payload_types(pcap, port) for port in between}
        assert all(set(t) == {111} for t in facts["rtp_between_legs"].values()), facts
        facts["baresip_heard"] = baresip_heard(opus, records)
        return facts
    finally:
        stop_all(tandem, kamailio, [plain, opus], admin)


def signed_token(client_id, extension, expires, secret):
    """A session token signed as an application server does it with its client's WebRTC secret (w1:…:HMAC-SHA256)."""
    import base64
    import hashlib
    import hmac
    signed = f"w1:{client_id}:{extension}:{expires}"
    mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
    return signed + ":" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def scenario_signed_token(tandem_binary, workdir):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    admin = None
    try:
        for number in ("3001", "3002"):
            tandem.cli("extensions", "add", number, "--digest", "--password", "pw" + number)
        create_admin(tandem_binary, tandem)
        tandem.start()
        admin = cms_admin(workdir)

        def switch():
            admin.open("https://127.0.0.1:7443/cms/clients")
            form = admin.driver.find_element("css selector", "#clients tbody tr form[action='/cms/clients/webrtc']")
            form.find_element("css selector", "button").click()
        switch()
        secret = sip.wait_for("the secret shown once", lambda: [e.text for e in admin.driver.find_elements("id", "webrtc-secret")], 10)[0]
        assert len(secret) == 64, secret
        admin.open("https://127.0.0.1:7443/cms/clients")
        assert secret not in admin.driver.page_source and admin.driver.find_element("id", "webrtc-default-client-id").text == "on"
        now = int(time.time())
        token = signed_token("default-client-id", "3001", now + 300, secret)
        # Forged, stale and too-long tokens are refused before the upgrade, and make no session.
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        for name, bad in (("forged", forged), ("stale", signed_token("default-client-id", "3001", now - 5, secret)),
                          ("too-long", signed_token("default-client-id", "3001", now + 90000, secret)), ("other-secret", signed_token("default-client-id", "3001", now + 300, "x" * 64))):
            code, _ = tandem.get("/webkit/ws?token=" + urllib.parse.quote(bad, safe=""), status=True)
            assert code == 401, (name, code)
        facts["refused_before_upgrade"] = ["forged", "stale", "too-long", "other-secret"]
        status, listed = tandem.api("GET", "/api/v1/sessions")
        assert status == 200 and listed["sessions"] == [], listed
        # No API call: the page connects with the token it was handed, and 3001 registers.
        session = {"websocketURL": "wss://127.0.0.1:7443/webkit/ws", "token": token}
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            open_agent(browser, session)
            sip.wait_for("3001 in Kamailio", lambda: "3001" in (kamailio.contacts() or {}), 10)
            status, listed = tandem.api("GET", "/api/v1/sessions")
            made = [s for s in listed["sessions"] if s.get("extension") == "3001"]
            assert status == 200 and len(made) == 1 and made[0]["clientId" if "clientId" in made[0] else "clientID"] == "default-client-id", listed
            facts["session"] = {"extension": made[0]["extension"], "expiresAt": made[0]["expiresAt"]}
            # The same token again (a reload) is the same session.
            open_agent(browser, session)
            status, again = tandem.api("GET", "/api/v1/sessions")
            assert [s["id"] for s in again["sessions"]] == [made[0]["id"]], again
            # Another signed token for the extension this session holds is refused.
            code, _ = tandem.get("/webkit/ws?token=" + urllib.parse.quote(signed_token("default-client-id", "3001", now + 301, secret), safe=""), status=True)
            assert code == 401, code
        # The switch off: a well-signed token for the free 3002 is refused at once.
        fresh = signed_token("default-client-id", "3002", now + 300, secret)
        switch()
        # The click submits the form: wait for the page it loads, not the one still shown.
        sip.wait_for("the switch turned off", lambda: "tokens signed with it are refused" in admin.driver.page_source, 10)
        code, _ = tandem.get("/webkit/ws?token=" + urllib.parse.quote(fresh, safe=""), status=True)
        assert code == 401, code
        facts["after_switch_off"] = code
        sip.wait_for("the refusal logged", lambda: "Signed session token refused" in open(os.path.join(workdir, "tandem.out")).read(), 5)
        return facts
    finally:
        stop_all(tandem, kamailio, admin=admin)


def scenario_restart(tandem_binary, workdir):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    tandem.env["TANDEM_CMS_DRAIN_TIMEOUT"] = "6"
    baresip, _ = sip.baresip_callee(workdir, "1001", 440)
    admin = None
    try:
        tandem.cli("extensions", "add", "3001-3002", "--digest", "--username", "3001", "--password", "pw3001", "--increment")
        create_admin(tandem_binary, tandem)
        tandem.start()
        pid = tandem.proc.pid
        sip.wait_for("1001 (baresip) in Kamailio", lambda: "1001" in (kamailio.contacts() or {}), 15)
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 201, session
        admin = cms_admin(workdir)
        token = tandem.token()  # taken before the drain: the token endpoint stays up, sessions do not

        def restart_from_page():
            admin.open("https://127.0.0.1:7443/cms/restart")
            started = admin.driver.find_element("id", "restart-progress").get_attribute("data-started")
            admin.driver.find_element("id", "confirm-restart").click()
            admin.driver.find_element("id", "restart").click()
            sip.wait_for("the drain", lambda: "Draining: 1 call" in progress_text(), 10)
            return started, time.monotonic()

        def progress_text():
            from selenium.common.exceptions import WebDriverException
            try:  # the page is replaced after the POST and again when Tandem is back
                return admin.driver.find_element("id", "restart-progress").text or ""
            except WebDriverException:
                return ""

        def back(started, since):
            sip.wait_for("the page to come back by itself", lambda: "done=1" in admin.driver.current_url, 40)
            sip.wait_for("the page loaded", lambda: admin.driver.execute_script("return document.readyState") == "complete", 10)
            notice = admin.driver.find_element("css selector", "p.notice").text
            assert "restarted" in notice and started not in notice, notice
            return round(time.monotonic() - since, 1)

        dump, pcap = capture_all(workdir, "restart")
        try:
            with Browser(tone_hz=1000, workdir=workdir) as browser:
                # 1: the call ends during the drain; Tandem restarts at once.
                open_agent(browser, session)
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1001")
                browser.wait_event("answered", 20, call=call)
                started, since = restart_from_page()
                import urllib.request
                request = urllib.request.Request("https://127.0.0.1:7443/api/v1/sessions", data=json.dumps({"extension": "3002"}).encode(), method="POST",
                                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
                try:
                    urllib.request.urlopen(request, context=sip.insecure_tls(), timeout=5)
                    raise AssertionError("a session was granted while draining")
                except urllib.error.HTTPError as e:
                    facts["session_while_draining"] = e.code
                    assert e.code == 503 and json.loads(e.read())["error"] == "restarting", e.code
                time.sleep(1)
                browser.js_async("return tandemAgent.hangup()")
                facts["back_after_hangup_s"] = back(started, since)
                assert facts["back_after_hangup_s"] < 6 + 20, facts
                assert tandem.proc.poll() is None and tandem.proc.pid == pid, "re-executed in place"
                # 2: the call stays up; past the drain timeout Tandem ends it with BYE.
                open_agent(browser, session)
                call = browser.js_async("return tandemAgent.call(arguments[0])", "1001")
                browser.wait_event("answered", 20, call=call)
                started, since = restart_from_page()
                ended = browser.wait_event("ended", 20, call=call)
                facts["ended_by_drain"] = {"after_s": round(time.monotonic() - since, 1), **ended["detail"]}
                assert ended["detail"]["reason"] == "Tandem is restarting" and facts["ended_by_drain"]["after_s"] >= 5, facts
                facts["back_after_timeout_s"] = back(started, since)
                status, again = tandem.api("POST", "/api/v1/sessions", {"extension": "3002"})
                assert status == 201, again
        finally:
            sip.stop(dump, signal.SIGINT)
        byes = [m for m, _ in sip_requests(pcap) if m == "BYE"]
        assert len(byes) >= 2, sip_requests(pcap)
        facts["bye_to_baresip"] = len(byes)
        return facts
    finally:
        stop_all(tandem, kamailio, [baresip], admin)


def scenario_demo(tandem_binary, workdir):
    facts = {}
    tandem = Tandem(tandem_binary, workdir)
    tandem.env.update({"TANDEM_SIP_PLATFORM_PRIMARY": "", "TANDEM_HTTP_DEMO": "true"})
    try:
        tandem.start()
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            browser.open("https://127.0.0.1:7443/webkit/demo/agent.html")
            connected = browser.wait_event("connected", 20)
            assert connected["detail"]["guest"] is True, connected
            call = browser.js_async("return tandemAgent.call(arguments[0])", "echo")
            browser.wait_event("answered", 15, call=call)
            heard = browser.js_async("return tandemAgent.measure(arguments[0])", 3)
            assert "error" not in heard and abs(heard["peakHz"] - 1000) <= 15 and heard["peakShare"] > 0.3, heard
            facts["agent_page_echo"] = heard
            browser.js_async("return tandemAgent.hangup()")
            browser.open("https://127.0.0.1:7443/webkit/demo/click-to-call.html?service=echo")
            browser.js_async("return tandemClickToCall.start().then(c => c.id)")
            browser.wait_event("answered", 15, source="tandemClickToCall")
            heard = browser.js_async("return tandemClickToCall.measure(arguments[0])", 3)
            assert "error" not in heard and abs(heard["peakHz"] - 1000) <= 15 and heard["peakShare"] > 0.3, heard
            facts["click_to_call_echo"] = heard
        return facts
    finally:
        tandem.stop()


def scenario_click_to_contact(tandem_binary, workdir):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    uas = None
    try:
        tandem.cli("services", "add", "support", "2000", "--name", "Customer support")
        assert "support\t2000\tCustomer support" in tandem.cli("services", "list")
        registered = subprocess.run(["sipp", "127.0.0.1:5060", "-sf", os.path.join(HERE, "uas-register.xml"), "-s", "2000", "-au", "2000", "-ap", "pw2000",
                                     "-i", "127.0.0.1", "-p", "5090", "-m", "1", "-timeout", "15s", "-nostdin"], cwd=workdir, capture_output=True, text=True, timeout=30)
        assert registered.returncode == 0, registered.stdout[-1500:]
        uas = subprocess.Popen(["sipp", "-sn", "uas", "-rtp_echo", "-i", "127.0.0.1", "-p", "5090", "-mp", "17000", "-m", "1", "-timeout", "60s",
                                "-nostdin", "-trace_msg", "-message_file", os.path.join(workdir, "uas-messages.log")],
                               cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        tandem.start()
        status, refused = tandem.api("POST", "/api/v1/sessions", {"guest": {"from": "+4989123456", "destination": "sales"}})
        assert status == 404 and refused["error"] == "unknown_service", (status, refused)
        status, refused = tandem.api("POST", "/api/v1/sessions", {"guest": {"from": "sip:evil@x", "destination": "support"}})
        assert status == 400 and refused["error"] == "invalid_from", (status, refused)
        status, session = tandem.api("POST", "/api/v1/sessions", {"guest": {"from": "+4989123456", "destination": "support"}})
        assert status == 201 and session["extension"] is None if "extension" in session else status == 201, session
        assert session["guest"] == {"from": "+4989123456", "destination": "support", "displayName": "Customer support"}, session
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            browser.open("https://127.0.0.1:7443/webkit/demo/click-to-call.html?service=support" + session_fragment(session))
            started = browser.js_async("return tandemClickToCall.start().then(c => c.id)")
            assert isinstance(started, str), started
            browser.wait_event("answered", 20, source="tandemClickToCall")
            heard = browser.js_async("return tandemClickToCall.measure(arguments[0])", 3)
            assert "error" not in heard and abs(heard["peakHz"] - 1000) <= 15 and heard["peakShare"] > 0.3, heard
            facts["guest_heard_echo"] = heard
            # The guest may call its service only.
            other = browser.js_async("const c = tandemClickToCall.phone.call('3001'); return new Promise(r => c.on('ended', d => r(d)))")
            assert "one call" in json.dumps(other) or "service only" in json.dumps(other), other
            browser.js_async("return tandemClickToCall.hangup()")
            output, _ = uas.communicate(timeout=20)
            assert uas.returncode == 0, output[-1500:]
        messages = open(os.path.join(workdir, "uas-messages.log"), errors="replace").read()
        invite = messages[messages.index("INVITE sip:"):]
        invite = invite[:invite.index("\n\n") if "\n\n" in invite else 2000]
        assert "From: <sip:+4989123456@tandem.test>" in invite and "P-Asserted-Identity: <sip:+4989123456@tandem.test>" in invite, invite
        facts["invite_from"] = "+4989123456"
        return facts
    finally:
        stop_all(tandem, kamailio, [uas])


def scenario_faults(tandem_binary, workdir):
    facts = {}
    kamailio = sip.Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir)
    tandem.env["TANDEM_HTTP_SESSION_LIFETIME"] = "20"
    open(os.path.join(workdir, "tone.ulaw"), "wb").write(bytes(sip.ulaw(x) for x in sip.tone(440, 40)))
    try:
        tandem.cli("extensions", "add", "1001-1002", "--digest", "--username", "1001", "--password", "pw1001", "--increment")
        tandem.start()
        # A bad OAuth token: 401 with the RFC 6750 challenge.
        import urllib.request
        request = urllib.request.Request("https://127.0.0.1:7443/api/v1/sessions", headers={"Authorization": "Bearer not.a.jwt"})
        try:
            urllib.request.urlopen(request, context=sip.insecure_tls(), timeout=5)
            raise AssertionError("a bad OAuth token was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 401 and "invalid_token" in e.headers.get("WWW-Authenticate", ""), (e.code, dict(e.headers))
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "1001"})
        assert status == 201, session
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            open_agent(browser, session, "?autoanswer=1")
            dump, pcap = capture_all(workdir, "faults")
            caller = subprocess.Popen(["sipp", "127.0.0.1:5060", "-sf", os.path.join(HERE, "..", "sip", "uac-wait-bye.xml"), "-s", "1001", "-i", "127.0.0.1", "-p", "5070",
                                       "-mp", "16000", "-m", "1", "-timeout", "60s", "-nostdin", "-trace_err"],
                                      cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                incoming = browser.wait_event("incoming", 20)
                browser.wait_event("answered", 15, call=incoming["call"])
                time.sleep(2)
                killed = time.monotonic()
                browser.kill()
                output, _ = caller.communicate(timeout=40)
                facts["bye_after_kill_s"] = round(time.monotonic() - killed, 1)
                assert caller.returncode == 0, output[-1500:]
                assert facts["bye_after_kill_s"] < 30, facts
            finally:
                sip.stop(caller)
                sip.stop(dump, signal.SIGINT)
            gone = time.monotonic()
            sip.wait_for("1001 unregistered", lambda: "1001" not in (kamailio.contacts() or {}), GRACE + 15)
            facts["unregistered_after_s"] = round(time.monotonic() - gone, 1)
        # A deleted session: its socket is closed with a reason, its token refused.
        status, second = tandem.api("POST", "/api/v1/sessions", {"extension": "1002"})
        assert status == 201, second
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            open_agent(browser, second)
            status, _ = tandem.api("DELETE", f"/api/v1/sessions/{second['id']}")
            assert status == 204, status
            error = browser.wait_event("error", 10)
            assert error["detail"]["code"] == "session-ended", error
            browser.wait_event("disconnected", 10)
        code, _ = tandem.get(f"/webkit/ws?token={second['token']}", status=True)
        assert code == 401, code
        # A session that expires while its browser is connected: the socket is closed with a
        # reason and the extension unregisters at once (no grace period).
        status, third = tandem.api("POST", "/api/v1/sessions", {"extension": "1002"})
        assert status == 201, third
        with Browser(tone_hz=1000, workdir=workdir) as browser:
            open_agent(browser, third)
            error = browser.wait_event("error", 30)
            assert error["detail"]["code"] == "session-ended" and "expired" in error["detail"]["message"], error
            expired = time.monotonic()
            sip.wait_for("1002 unregistered", lambda: "1002" not in (kamailio.contacts() or {}), 5)
            facts["expired_session_unregistered_s"] = round(time.monotonic() - expired, 1)
        # The first session expires (http.session-lifetime 20 s): its token is refused.
        remaining = 21 - (time.monotonic() - gone)
        if remaining > 0:
            time.sleep(remaining)
        sip.wait_for("the expired token refused", lambda: tandem.get(f"/webkit/ws?token={session['token']}", status=True)[0] == 401, 15)
        facts["expired_token"] = 401
        return facts
    finally:
        stop_all(tandem, kamailio)


def inner(args):
    scenarios = {"demo": scenario_demo, "agent-incoming": scenario_agent_incoming,
                 "agent-incoming-turn": lambda t, w: scenario_agent_incoming(t, w, relay=True), "agent-outgoing": scenario_agent_outgoing,
                 "agent-outgoing-info": lambda t, w: scenario_agent_outgoing(t, w, info=True), "srtp": scenario_srtp, "opus": scenario_opus, "signed-token": scenario_signed_token, "restart": scenario_restart, "click-to-contact": scenario_click_to_contact,
                 "faults": scenario_faults}
    return sip.run_scenarios("gateway end-to-end", "tandem-gateway", args.scenarios, {n: (lambda w, f=f: f(args.tandem, w)) for n, f in scenarios.items()})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tandem", required=True)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS)
    a = p.parse_args()
    a.tandem = os.path.abspath(a.tandem)
    sip.main_in_namespace("tandem-gw", __file__, a, ["--tandem", a.tandem, *a.scenarios], inner)


if __name__ == "__main__":
    main()
