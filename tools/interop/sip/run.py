#!/usr/bin/env python3
"""SIP interop tests of Tandem against Kamailio (tools/interop/sip/kamailio.cfg), each run in
its own network namespace that has only `lo` (see shared/TESTING.md):

  register   100 extensions register with digest over UDP, refresh, and unregister (removed
             from the database while running, then at shutdown); one with a wrong password is
             reported on its own while the others register
  failover   a primary and a secondary Kamailio over TCP: the primary is killed, the extensions
             move to the secondary; it comes back, they move back; then both die, and the
             staggered back-off (random 0…N/10 s, then 15 s) shows in the log until one returns

  run.py --tandem .build/debug/tandem [SCENARIO ...]

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
SCENARIOS = ["register", "failover"]
KAMAILIO_CFG = os.path.join(HERE, "kamailio.cfg")
SIP_PORT = 5062


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

    def __init__(self, workdir, name, address, max_expires):
        self.workdir, self.name, self.address, self.max_expires = workdir, name, address, max_expires
        self.ctl = os.path.join(workdir, f"{name}.ctl")
        self.proc = None

    def start(self):
        text = open(KAMAILIO_CFG).read()
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
        self.logpath = os.path.join(workdir, "tandem.out")

    def cli(self, *args):
        out = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"tandem {' '.join(args)} failed: {out.stderr}")
        return out.stdout

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
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
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


def scenario_register(tandem_binary, workdir):
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
        wait_for("3100 reported with wrong credentials", lambda: re.search(r"extension=3100 .*Wrong credentials|Wrong credentials.*extension=3100", tandem.log()), 10)
        wait_for("registered gauge 100", lambda: tandem.metric("tandem_sip_registrations", state="registered") == 100, 10)
        assert tandem.metric("tandem_sip_registrations", state="failed") == 1
        status, body = tandem.get("/readyz", status=True)
        assert status == 200, (status, body)
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
        facts["register_transactions"] = "ok"
        return facts
    finally:
        tandem.stop()
        kamailio.kill()


def scenario_failover(tandem_binary, workdir):
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


def inner(args):
    failed = 0
    for name in args.scenarios:
        workdir = tempfile.mkdtemp(prefix=f"tandem-sip-{name}-")
        started = time.monotonic()
        try:
            facts = {"register": scenario_register, "failover": scenario_failover}[name](args.tandem, workdir)
            print(f"ok   {name} ({time.monotonic() - started:.1f} s): {json.dumps(facts)}", flush=True)
        except Exception as e:  # report, keep going with the next scenario
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {e}", flush=True)
            for log in sorted(os.listdir(workdir)):
                if log.endswith((".out", ".log")):
                    print(f"--- {log} (tail) ---\n" + open(os.path.join(workdir, log)).read()[-4000:], file=sys.stderr)
    print(f"{len(args.scenarios) - failed} of {len(args.scenarios)} SIP interop scenarios passed")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tandem", required=True)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS)
    a = p.parse_args()
    a.tandem = os.path.abspath(a.tandem)
    if a.inside:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        sys.exit(inner(a))
    ns = f"tandem-sip-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        code = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inside", "--tandem", a.tandem, *a.scenarios]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    sys.exit(code)


if __name__ == "__main__":
    main()
