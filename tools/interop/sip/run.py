#!/usr/bin/env python3
"""SIP interop tests of Tandem against Kamailio (tools/interop/sip/kamailio.cfg), each run in
its own network namespace that has only `lo` (see shared/TESTING.md):

  register   100 extensions register with digest over UDP, refresh, and unregister (removed
             from the database while running, then at shutdown); one with a wrong password is
             reported on its own while the others register
  failover   a primary and a secondary Kamailio over TCP: the primary is killed, the extensions
             move to the secondary; it comes back, they move back; then both die, and the
             staggered back-off (random 0…N/10 s, then 15 s) shows in the log until one returns

  calls      a sipp UAC calls extension 3001 through Kamailio; Tandem's UA (sip-peer) answers
             with a G.711 SDP and echoes RTP: BYE from sipp, BYE from Tandem, CANCEL while ringing
  baresip    Tandem's UA calls a registered baresip through Kamailio (answering Kamailio's 407)
             with a 1 kHz tone; baresip auto-answers playing 440 Hz: Tandem must hear 440 Hz and
             baresip's recording of Tandem's audio must be 1 kHz

  forking    extension 1002 is registered twice (two sip-peers); Kamailio forks Tandem's INVITE
             to both, both answer at once: Tandem keeps one call (and hears its tone echoed by
             it), the other fork is cancelled by Kamailio or ACKed and ended with BYE by Tandem

  run.py --tandem .build/debug/tandem --peer .build/debug/sip-peer [SCENARIO ...]

The script re-runs itself inside a fresh namespace (`ip netns exec`), so every peer, probe and
Tandem itself see only that namespace's loopback.
"""
import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ["register", "failover", "calls", "baresip", "forking"]
KAMAILIO_CFG = os.path.join(HERE, "kamailio.cfg")
SIP_PORT = 5062


def insecure_tls():
    """TLS toward the Tandem under test: its certificate is self-signed, in a throwaway namespace."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_for(what, predicate, timeout, interval=0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def stop(proc, sig=signal.SIGTERM, timeout=20):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Kamailio:
    """A registrar/proxy from kamailio.cfg on `address` (udp and tcp), with a binrpc socket
    for `kamcmd ul.dump`; `max_expires` caps the expiry it grants."""

    def __init__(self, workdir, name, address, max_expires, children=1):
        self.workdir, self.name, self.address, self.max_expires, self.children = workdir, name, address, max_expires, children
        self.ctl = os.path.join(workdir, f"{name}.ctl")
        self.proc = None

    def start(self):
        text = open(KAMAILIO_CFG).read()
        text = text.replace("children=1", f"children={self.children}")
        text = text.replace("listen=udp:127.0.0.1:5060", f"listen=udp:{self.address}:5060\nlisten=tcp:{self.address}:5060")
        text = text.replace('modparam("usrloc", "db_mode", 0)',
                            f'modparam("usrloc", "db_mode", 0)\nloadmodule "ctl.so"\nmodparam("ctl", "binrpc", "unix:{self.ctl}")\n'
                            f'modparam("registrar", "max_expires", {self.max_expires})')
        cfg = os.path.join(self.workdir, f"{self.name}.cfg")
        open(cfg, "w").write(text)
        rundir = os.path.join(self.workdir, f"{self.name}-run")
        os.makedirs(rundir, exist_ok=True)
        self.log = open(os.path.join(self.workdir, f"{self.name}.log"), "a")
        self.proc = subprocess.Popen(["kamailio", "-f", cfg, "-DD", "-E", "-Y", rundir], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"{self.name} to answer kamcmd", lambda: self.contacts() is not None, 15)
        return self

    def kill(self):
        stop(self.proc, signal.SIGKILL)
        self.proc = None

    def contacts(self):
        """{AoR user: CSeq} of the bindings, or None when kamcmd cannot reach it."""
        out = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", "ul.dump"], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        self.last_dump = out.stdout
        bindings = {}
        aor = None
        for line in out.stdout.splitlines():
            m = re.search(r"AoR:\s*(\S+)", line)
            if m:
                aor = m.group(1).split("@")[0]
                continue
            m = re.search(r"CSeq:\s*(\d+)", line)
            if m and aor:
                bindings[aor] = int(m.group(1))
        return bindings


class Tandem:
    """`tandem serve` with SIP toward the Kamailios, media and TURN off."""

    def __init__(self, binary, workdir, transport, secondary):
        self.binary, self.workdir = binary, workdir
        self.env = dict(os.environ)
        self.env.update({
            "TANDEM_STORAGE_DATA_DIRECTORY": os.path.join(workdir, "data"),
            "TANDEM_LOG_DIRECTORY": os.path.join(workdir, "log"),
            "TANDEM_LOG_LEVEL": "info",
            "TANDEM_HTTP_LISTEN_ADDRESS": "127.0.0.1",
            "TANDEM_TURN_ENABLED": "false",
            "TANDEM_MEDIA_ENABLED": "false",
            "TANDEM_SIP_LISTEN_ADDRESSES": "127.0.0.1",
            "TANDEM_SIP_LISTEN_PORT": str(SIP_PORT),
            "TANDEM_SIP_TRANSPORTS": transport,
            "TANDEM_SIP_PLATFORM_TRANSPORT": transport,
            "TANDEM_SIP_PLATFORM_PRIMARY": "127.0.0.1:5060",
            "TANDEM_SIP_PLATFORM_SECONDARY": "127.0.0.2:5060" if secondary else "",
            "TANDEM_SIP_DOMAIN": "tandem.test",
            "TANDEM_SIP_REGISTRATION_EXPIRES": "300",
            "TANDEM_SIP_KEEP_ALIVE_INTERVAL": "2",
        })
        self.proc = None
        self.client_secret = None
        self.logpath = os.path.join(workdir, "tandem.out")

    def cli(self, *args):
        out = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"tandem {' '.join(args)} failed: {out.stderr}")
        # The first command seeds the database and shows the generated OAuth secret once.
        m = re.search(r"client-secret=(\S+)", out.stderr)
        if m:
            self.client_secret = m.group(1)
        return out.stdout

    def token(self):
        """An access token by client credentials (RFC 6749 §4.4), as an application server gets one."""
        import base64
        basic = base64.b64encode(f"default-client-id:{self.client_secret}".encode()).decode()
        token_request = urllib.request.Request("https://127.0.0.1:7443/oauth/token", data=b"grant_type=client_credentials", method="POST",
                                               headers={"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(token_request, context=insecure_tls(), timeout=5) as r:
            return json.loads(r.read())["access_token"]

    def api(self, method, path, body=None):
        """The control API as an application server uses it: a token by client credentials, then the call."""
        context = insecure_tls()
        token = self.token()
        request = urllib.request.Request(f"https://127.0.0.1:7443{path}", data=None if body is None else json.dumps(body).encode(), method=method,
                                         headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def start(self):
        self.out = open(self.logpath, "a")
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("tandem /healthz", lambda: self.get("/healthz") is not None or self.proc.poll() is not None, 60)
        if self.proc.poll() is not None:
            raise AssertionError("tandem exited at start")
        return self

    def stop(self):
        stop(self.proc)

    def get(self, path, status=False):
        context = insecure_tls()
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:7443{path}", context=context, timeout=3) as r:
                return (r.status, r.read().decode()) if status else r.read().decode()
        except urllib.error.HTTPError as e:
            return (e.code, e.read().decode()) if status else None
        except OSError:
            return None

    def metric(self, name, **labels):
        text = self.get("/metrics") or ""
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            m = re.match(r"(\w+)(\{[^}]*\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                return float(m.group(3))
        return None

    def log(self):
        return open(self.logpath).read()


def extensions(first, count):
    return {str(n) for n in range(first, first + count)}


def scenario_register(tandem_binary, workdir, _peer=None):
    facts = {}
    kamailio = Kamailio(workdir, "primary", "127.0.0.1", max_expires=20).start()
    tandem = Tandem(tandem_binary, workdir, "udp", secondary=False)
    try:
        tandem.cli("extensions", "add", "3000-3099", "--digest", "--username", "3000", "--password", "pw3000", "--increment")
        tandem.cli("extensions", "add", "3100", "--digest", "--password", "wrong")
        listed = tandem.cli("extensions", "list")
        assert "101 extensions" in listed and "pw3000" not in listed, listed
        tandem.start()
        started = time.monotonic()
        wanted = extensions(3000, 100)
        bindings = wait_for("100 bindings in Kamailio", lambda: (lambda b: b if b is not None and wanted <= set(b) else None)(kamailio.contacts()), 30)
        facts["registered_s"] = round(time.monotonic() - started, 2)
        assert "3100" not in bindings, "the wrong password registered"
        # RFC 5626: each Contact carries a stable +sip.instance and reg-id.
        instances = set(re.findall(r"urn:uuid:[0-9a-f-]{36}", kamailio.last_dump))
        assert len(instances) == 100, f"{len(instances)} instance ids: {kamailio.last_dump[:1500]}"
        facts["instance_ids"] = len(instances)
        wait_for("3100 reported with wrong credentials", lambda: re.search(r"extension=3100 .*Wrong credentials|Wrong credentials.*extension=3100", tandem.log()), 10)
        wait_for("registered gauge 100", lambda: tandem.metric("tandem_sip_registrations", state="registered") == 100, 10)
        assert tandem.metric("tandem_sip_registrations", state="failed") == 1
        status, body = tandem.get("/readyz", status=True)
        assert status == 200, (status, body)
        # The control API reports the same, per extension.
        status, body = tandem.api("GET", "/api/v1/extensions")
        listed = {e["extension"]: e for e in body["extensions"]}
        assert sum(1 for e in listed.values() if e["state"] == "registered") == 100, listed
        assert listed["3100"]["state"] == "failed" and "Wrong credentials" in listed["3100"].get("failure", ""), listed["3100"]
        facts["api_extensions"] = len(listed)
        # A session holds an extension; a second one for it is refused until the first ends.
        status, session = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 201 and session["extension"] == "3001" and len(session["token"]) == 43, (status, session)
        status, clash = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 409 and clash["error"] == "extension_in_use", (status, clash)
        status, _ = tandem.api("DELETE", f"/api/v1/sessions/{session['id']}")
        assert status == 204, status
        status, again = tandem.api("POST", "/api/v1/sessions", {"extension": "3001"})
        assert status == 201, (status, again)
        facts["api_sessions"] = "201, 409, 204, 201"
        # Kamailio grants 20 s: each refreshes 15 s later (a quarter before expiry), over the same Call-ID with a higher CSeq.
        refreshed = wait_for("every binding refreshed", lambda: (lambda b: b if b and all(b.get(u, 0) > bindings[u] for u in wanted) else None)(kamailio.contacts()), 30)
        facts["refreshed"] = len([u for u in wanted if refreshed[u] > bindings[u]])
        assert "3100" not in refreshed
        # Removed from the database while running: unregistered (Expires: 0) within the poll interval.
        tandem.cli("extensions", "remove", "3050-3100")
        wait_for("50 bindings after removing 3050-3100", lambda: (lambda b: b is not None and set(b) == extensions(3000, 50))(kamailio.contacts()), 20)
        # Graceful shutdown unregisters the rest.
        tandem.stop()
        wait_for("no bindings after shutdown", lambda: kamailio.contacts() == {}, 10)
        return facts
    finally:
        tandem.stop()
        kamailio.kill()


def scenario_failover(tandem_binary, workdir, _peer=None):
    facts = {}
    primary = Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    secondary = Kamailio(workdir, "secondary", "127.0.0.2", max_expires=300).start()
    tandem = Tandem(tandem_binary, workdir, "tcp", secondary=True)
    wanted = extensions(4000, 100)

    def on(k):
        return lambda: (lambda b: b if b is not None and wanted <= set(b) else None)(k.contacts())

    try:
        tandem.cli("extensions", "add", "4000-4099", "--digest", "--username", "4000", "--password", "pw4000", "--increment")
        tandem.start()
        wait_for("100 bindings on the primary", on(primary), 30)
        assert not secondary.contacts(), "bindings on the secondary before any failure"
        # The primary dies: the keep-alive notices, and every extension moves to the secondary at once.
        primary.kill()
        killed = time.monotonic()
        wait_for("100 bindings on the secondary", on(secondary), 30)
        facts["moved_to_secondary_s"] = round(time.monotonic() - killed, 2)
        assert "Platform side unreachable" in tandem.log()
        assert re.search(r"next-side=secondary", tandem.log())
        # The primary comes back (empty): the extensions move back, spread over 0…N/10 s, and
        # their bindings on the secondary are removed.
        primary.start()
        back = time.monotonic()
        wait_for("100 bindings back on the primary", on(primary), 40)
        facts["moved_back_s"] = round(time.monotonic() - back, 2)
        wait_for("the secondary's bindings removed", lambda: secondary.contacts() == {}, 15)
        # Both die: the back-off shows — at once to the other side, then a random wait of at
        # most N/10 = 10 s, then 15 s between rounds.
        mark = len(tandem.log())
        primary.kill()
        secondary.kill()
        died = time.monotonic()
        wait_for("a 15 s round wait in the log", lambda: "back-off-ms=15000" in tandem.log()[mark:], 40)
        waits = [int(x) for x in re.findall(r"back-off-ms=(\d+)", tandem.log()[mark:])]
        randomized = [w for w in waits if 0 < w <= 10_000]
        assert randomized and len(set(randomized)) > 10, f"no spread of random waits: {sorted(set(waits))[:20]}"
        facts["random_waits_ms"] = [min(randomized), max(randomized)]
        facts["first_15s_wait_after_s"] = round(time.monotonic() - died, 1)
        secondary.start()
        wait_for("100 bindings on the secondary after the back-off", on(secondary), 60)
        facts["recovered_after_s"] = round(time.monotonic() - died, 1)
        status, _ = tandem.get("/readyz", status=True)
        assert status == 200
        return facts
    finally:
        tandem.stop()
        primary.kill()
        secondary.kill()


def ulaw(sample):
    """G.711 µ-law of a 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    while exponent > 0 and not magnitude & (0x4000 >> (7 - exponent)):
        exponent -= 1
    return ~(sign | (exponent << 4) | ((magnitude >> (exponent + 3)) & 0x0F)) & 0xFF


def tone(hz, seconds, rate=8000, amplitude=8000):
    import math
    return [int(amplitude * math.sin(2 * math.pi * hz * n / rate)) for n in range(int(seconds * rate))]


def dominant(samples, rate=8000):
    """(frequency, share of power) of the strongest 10 Hz step of a 1 s window mid-recording."""
    import math
    mid = len(samples) // 2
    window = samples[max(0, mid - rate // 2):mid + rate // 2]
    best, total = (0, 0.0), 0.0
    for hz in range(50, 3500, 10):
        c = 2 * math.cos(2 * math.pi * hz / rate)
        s1 = s2 = 0.0
        for x in window:
            s1, s2 = x + c * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - c * s1 * s2
        total += power
        if power > best[1]:
            best = (hz, power)
    return best[0], (best[1] / total if total else 0)


class Peer:
    """sip-peer: Tandem's SIP stack registered as one extension."""

    def __init__(self, binary, workdir, *args):
        self.out = open(os.path.join(workdir, "sip-peer.out"), "a")
        self.proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=self.out, text=True, start_new_session=True)
        self.registered = self.line(30)
        assert "registered" in self.registered, self.registered

    def line(self, timeout):
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("sip-peer said nothing in time")
        text = self.proc.stdout.readline()
        if not text:
            raise AssertionError(f"sip-peer exited ({self.proc.wait()})")
        return json.loads(text)

    def stop(self):
        """Lets it finish on its own (its BYE answered, its extension unregistered), then stops it."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop(self.proc)


def call_from_3001(peer_binary, workdir, target, seconds):
    """sip-peer as extension 3001 calls `target` with a 1 kHz tone for `seconds`; its result line."""
    caller = Peer(peer_binary, workdir, "--mode", "call", "--listen", f"127.0.0.1:{SIP_PORT}", "--user", "3001", "--password", "pw3001",
                  "--target", target, "--tone-hz", "1000", "--seconds", str(seconds), "--timeout", "30")
    try:
        return caller.line(30)
    finally:
        caller.stop()


def capture(workdir, name):
    path = os.path.join(workdir, f"{name}.pcap")
    proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "udp and not port 5060 and not port 5062", "-w", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1)
    return proc, path


def udp_flows(path):
    """{(src port, dst port): packets} of a capture."""
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport"], capture_output=True, text=True)
    flows = {}
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] and parts[1]:
            key = (int(parts[0]), int(parts[1]))
            flows[key] = flows.get(key, 0) + 1
    return flows


def sipp(workdir, scenario, service):
    out = subprocess.run(["sipp", "127.0.0.1:5060", "-sf", os.path.join(HERE, scenario), "-s", service, "-i", "127.0.0.1", "-p", "5070",
                          "-m", "1", "-timeout", "30s", "-nostdin", "-trace_err"], cwd=workdir, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"sipp {scenario} failed ({out.returncode}): {out.stdout[-1500:]}")


def scenario_calls(tandem_binary, workdir, peer_binary):
    facts = {}
    kamailio = Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    open(os.path.join(workdir, "tone.ulaw"), "wb").write(bytes(ulaw(x) for x in tone(440, 10)))
    base = ["--mode", "answer", "--listen", f"127.0.0.1:{SIP_PORT}", "--user", "3001", "--password", "pw3001", "--answer-delay-ms", "1000", "--timeout", "40"]
    try:
        for case, scenario, extra in [("bye-from-sipp", "uac-bye.xml", []), ("bye-from-tandem", "uac-wait-bye.xml", ["--hangup-after", "3"]), ("cancel", "uac-cancel.xml", [])]:
            dump, pcap = capture(workdir, case)
            peer = Peer(peer_binary, workdir, *base, *extra)
            try:
                wait_for("3001 in Kamailio", lambda: "3001" in (kamailio.contacts() or {}), 10)
                sipp(workdir, scenario, "3001")
                result = peer.line(20)
            finally:
                peer.stop()
                stop(dump, signal.SIGINT)
            flows = udp_flows(pcap)
            port = peer.registered["media_port"]
            to_peer = sum(n for (src, dst), n in flows.items() if dst == port)
            from_peer = sum(n for (src, dst), n in flows.items() if src == port)
            if case == "cancel":
                assert result["code"] == 487 and "cancelled" in result["ended"], result
                assert to_peer == 0 and from_peer == 0, flows
            else:
                expected = "remote hangup" if case == "bye-from-sipp" else "local hangup"
                assert result["ended"] == expected, result
                # sipp streams 50 packets a second for about 3 s; every one comes back.
                assert result["rtp_in"] >= 100 and result["rtp_echoed"] == result["rtp_in"], result
                assert to_peer >= 100 and from_peer >= to_peer - 2, flows
            facts[case] = {"ended": result["ended"], "rtp_to_tandem": to_peer, "rtp_echoed": from_peer}
        return facts
    finally:
        kamailio.kill()


def baresip_callee(workdir, user, tone_hz, port=5080, mediaenc=None, codecs="PCMU"):
    """baresip registered as `user` through Kamailio on `port`: auto-answer, `codecs` (its audio_codecs; "opus" needs
    its opus module), plays a tone and records what it hears; `mediaenc` `srtp` (best effort) or `srtp-mand`
    (RTP/SAVP only) makes it speak SDES-SRTP."""
    import wave
    name = "baresip" if port == 5080 else f"baresip-{port}"
    home = os.path.join(workdir, name)
    records = os.path.join(workdir, f"records-{port}" if port != 5080 else "records")
    os.makedirs(home, exist_ok=True)
    os.makedirs(records, exist_ok=True)
    # aufile wants the codec's own rate and channels: 8 kHz mono for G.711, 48 kHz stereo for Opus.
    opus = "opus" in codecs.lower()
    source = os.path.join(workdir, f"tone-{port}.wav" if opus else "tone.wav")
    with wave.open(source, "wb") as w:
        w.setnchannels(2 if opus else 1)
        w.setsampwidth(2)
        w.setframerate(48000 if opus else 8000)
        samples = tone(tone_hz, 60, rate=48000) if opus else tone(tone_hz, 60)
        w.writeframes(b"".join(int(x).to_bytes(2, "little", signed=True) * (2 if opus else 1) for x in samples))
    open(os.path.join(home, "accounts"), "w").write(
        f"<sip:{user}@tandem.test>;auth_pass=pw{user};outbound=\"sip:127.0.0.1:5060\";regint=300;answermode=auto;audio_codecs={codecs}"
        + (f";mediaenc={mediaenc}" if mediaenc else "") + "\n")
    open(os.path.join(home, "config"), "w").write("\n".join([
        f"sip_listen 127.0.0.1:{port}", "net_interface 127.0.0.1", "module_path /usr/lib/baresip/modules",
        # srtp before account: the accounts' mediaenc names must exist when they are read.
        "module g711.so", *(["module opus.so"] if opus else []), *(["module srtp.so"] if mediaenc else []), "module account.so", "module aufile.so", "module sndfile.so", "module alsa.so",
        f"audio_source aufile,{source}", "audio_player alsa,null", f"snd_path {records}", ""]))
    log = open(os.path.join(workdir, f"{name}.log"), "w")
    proc = subprocess.Popen(["baresip", "-f", home], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, records


def recorded_tone(records):
    import wave
    decoded = [f for f in os.listdir(records) if f.endswith("-dec.wav")]
    assert decoded, f"baresip recorded nothing: {os.listdir(records)}"
    with wave.open(os.path.join(records, decoded[0])) as w:
        frames = w.readframes(w.getnframes())
        rate, channels = w.getframerate(), w.getnchannels()
    # The first channel at 8 kHz (Opus records at 48 kHz, maybe stereo).
    samples = [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, len(frames) - 1, 2 * channels * max(1, rate // 8000))]
    hz, share = dominant(samples)
    return {"hz": hz, "share": round(share, 2), "seconds": round(len(samples) / 8000, 1)}


def scenario_baresip(tandem_binary, workdir, peer_binary):
    facts = {}
    kamailio = Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    baresip, records = baresip_callee(workdir, "1001", 440)
    try:
        wait_for("1001 (baresip) in Kamailio", lambda: "1001" in (kamailio.contacts() or {}), 15)
        result = call_from_3001(peer_binary, workdir, "sip:1001@tandem.test", seconds=4)
        facts["tandem_heard"] = {"hz": result.get("dominant_hz"), "share": round(result.get("tone_ratio", 0), 2), "rtp_in": result.get("rtp_in")}
        assert result.get("rtp_in", 0) >= 100, result
        assert abs(result["dominant_hz"] - 440) <= 20 and result["tone_ratio"] > 0.5, result
        assert "407" not in result["ended"], result
        stop(baresip)
        facts["baresip_heard"] = recorded_tone(records)
        assert abs(facts["baresip_heard"]["hz"] - 1000) <= 20 and facts["baresip_heard"]["share"] > 0.5, facts
        return facts
    finally:
        stop(baresip)
        kamailio.kill()


def scenario_forking(tandem_binary, workdir, peer_binary):
    facts = {}
    kamailio = Kamailio(workdir, "primary", "127.0.0.1", max_expires=300).start()
    callees = []
    try:
        for port in (5063, 5064):
            callees.append(Peer(peer_binary, workdir, "--mode", "answer", "--listen", f"127.0.0.1:{port}", "--user", "1002", "--password", "pw1002",
                                "--answer-delay-ms", "0", "--timeout", "40"))
        wait_for("two bindings of 1002", lambda: kamailio.last_dump.count("sip:1002@127.0.0.1:506") == 2 if kamailio.contacts() is not None else False, 10)
        result = call_from_3001(peer_binary, workdir, "sip:1002@tandem.test", seconds=3)
        ends = sorted((c.line(15) for c in callees), key=lambda r: r["seconds"])
        facts["caller"] = {"ended": result["ended"], "heard_hz": result["dominant_hz"], "rtp_in": result["rtp_in"]}
        facts["forks"] = [{"ended": r["ended"], "code": r["code"], "seconds": round(r["seconds"], 2), "rtp_in": r["rtp_in"]} for r in ends]
        assert result["ended"] == "local hangup" and abs(result["dominant_hz"] - 1000) <= 20, result
        kept, dropped = ends[-1], ends[0]
        assert kept["ended"] == "remote hangup" and kept["rtp_in"] >= 100, ends
        assert dropped["ended"] in ("remote hangup", "cancelled by the caller") and dropped["seconds"] < 2 and dropped["rtp_in"] < 10, ends
        return facts
    finally:
        for c in callees:
            c.stop()
        kamailio.kill()


def run_scenarios(kind, prefix, names, table):
    """Runs each named scenario (table[name](workdir) returns its facts) in a fresh work
    directory: an ok or FAIL line each, the tails of a failed one's logs; the exit status."""
    failed = 0
    for name in names:
        workdir = tempfile.mkdtemp(prefix=f"{prefix}-{name}-")
        started = time.monotonic()
        try:
            facts = table[name](workdir)
            print(f"ok   {name} ({time.monotonic() - started:.1f} s): {json.dumps(facts)}", flush=True)
        except Exception as e:  # report, keep going with the next scenario
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {e!r}", flush=True)
            for log in sorted(os.listdir(workdir)):
                if log.endswith((".out", ".log")):
                    print(f"--- {log} (tail) ---\n" + open(os.path.join(workdir, log), errors="replace").read()[-4000:], file=sys.stderr)
    print(f"{len(names) - failed} of {len(names)} {kind} scenarios passed")
    return 1 if failed else 0


def inner(args):
    scenarios = {"register": scenario_register, "failover": scenario_failover, "calls": scenario_calls, "baresip": scenario_baresip, "forking": scenario_forking}
    return run_scenarios("SIP interop", "tandem-sip", args.scenarios, {n: (lambda w, f=f: f(args.tandem, w, args.peer)) for n, f in scenarios.items()})


def main_in_namespace(prefix, script, args, forwarded, inner):
    """Inside the namespace (`--inside`): `lo` up, then `inner(args)`; outside: re-runs
    `script forwarded` in a fresh one. Exits with the status."""
    if args.inside:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        sys.exit(inner(args))
    sys.exit(in_fresh_namespace(prefix, script, forwarded))


def in_fresh_namespace(prefix, script, args):
    """Runs `script args` inside a new network namespace with only `lo`, up; its exit status.
    The script sees `--inside` and brings `lo` up itself."""
    ns = f"{prefix}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(script), "--inside", *args]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tandem", required=True)
    p.add_argument("--peer", required=True, help="sip-peer binary")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS)
    a = p.parse_args()
    a.tandem = os.path.abspath(a.tandem)
    a.peer = os.path.abspath(a.peer)
    main_in_namespace("tandem-sip", __file__, a, ["--tandem", a.tandem, "--peer", a.peer, *a.scenarios], inner)


if __name__ == "__main__":
    main()
