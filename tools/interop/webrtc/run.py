#!/usr/bin/env python3
"""End-to-end WebRTC tests of Tandem's media engine against real peers, each in its own
network namespace that has only `lo` (see shared/TESTING.md):

  aiortc-opus, aiortc-pcmu          aiortc sends a 1 kHz tone to the echo service and hears it back
  chromium-opus, chromium-pcmu      headless Chromium does the same from Tandem's echo page
  chromium-consent                  ... then the browser is killed: the leg must end by consent
                                    expiry within 30 s and /metrics must show it released
  chromium-opus-shared, aiortc-pcmu-shared
                                    the same with every leg on one shared UDP port (media.shared-port)

  run.py --tandem .build/debug/tandem --python .build-venv/bin/python [SCENARIO ...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from common import stop_group  # noqa: E402
SCENARIOS = ["aiortc-opus", "aiortc-pcmu", "chromium-opus", "chromium-pcmu", "chromium-consent", "chromium-opus-shared", "aiortc-pcmu-shared"]
SHARED_PORT = 50000


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, **kw)


class Namespace:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name])

    def command(self, *args):
        return ["ip", "netns", "exec", self.name, *args]


class Tandem:
    """`tandem serve` inside the namespace with the echo service on, TURN off."""

    def __init__(self, ns, binary, workdir, shared_port=0):
        self.ns, self.binary, self.workdir = ns, binary, workdir
        self.shared_port = shared_port
        self.port = 7443
        self.proc = None

    def __enter__(self):
        env = dict(os.environ)
        env.update({
            "TANDEM_STORAGE_DATA_DIRECTORY": os.path.join(self.workdir, "data"),
            "TANDEM_LOG_DIRECTORY": os.path.join(self.workdir, "log"),
            "TANDEM_LOG_LEVEL": "info",
            "TANDEM_HTTP_LISTEN_ADDRESS": "127.0.0.1",
            "TANDEM_HTTP_PORT": str(self.port),
            "TANDEM_TURN_ENABLED": "false",
            "TANDEM_MEDIA_ECHO": "true",
            "TANDEM_MEDIA_BIND_ADDRESS": "127.0.0.1",
            "TANDEM_MEDIA_THREADS": "1",
            "TANDEM_MEDIA_SHARED_PORT": str(self.shared_port),
        })
        self.log = open(os.path.join(self.workdir, "tandem.out"), "w")
        self.proc = subprocess.Popen(self.ns.command(self.binary, "serve"), env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = subprocess.run(self.ns.command("python3", "-c", f"import sys; sys.path.insert(0, {HERE!r}); import tandem_http; "
                f"tandem_http.get('https://127.0.0.1:{self.port}/healthz', timeout=1)"), stderr=subprocess.DEVNULL)
            if probe.returncode == 0:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tandem did not start; see {self.workdir}/tandem.out")

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        stop_group(self.proc)


def run_scenario(name, tandem_binary, python, index):
    workdir = tempfile.mkdtemp(prefix=f"tandem-e2e-{name}-")
    shared = name.endswith("-shared")
    with Namespace(f"tandem-e2e-{os.getpid()}-{index}") as ns, Tandem(ns, tandem_binary, workdir, SHARED_PORT if shared else 0) as tandem:
        base = f"https://127.0.0.1:{tandem.port}"
        if name.startswith("aiortc"):
            cmd = [python, os.path.join(HERE, "echo_aiortc.py"), "--url", base + "/webkit/echo", "--codec", name.split("-")[1]]
        else:
            codec = "opus" if name == "chromium-consent" else name.split("-")[1]
            cmd = [python, os.path.join(HERE, "echo_chromium.py"), "--base", base, "--codec", codec] + (["--kill"] if name == "chromium-consent" else [])
        if shared:
            cmd += ["--expect-port", str(SHARED_PORT)]
        started = time.monotonic()
        out = subprocess.run(ns.command(*cmd), capture_output=True, text=True, timeout=180)
        elapsed = time.monotonic() - started
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"ok": False}
        result["scenario"] = name
        result["elapsed_s"] = round(elapsed, 1)
        if out.returncode != 0 or not result.get("ok"):
            result["ok"] = False
            result["stderr"] = out.stderr[-3000:]
            result["tandem_log"] = open(os.path.join(workdir, "tandem.out")).read()[-3000:]
        return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tandem", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS)
    a = p.parse_args()
    failed = 0
    for i, name in enumerate(a.scenarios):
        result = run_scenario(name, os.path.abspath(a.tandem), os.path.abspath(a.python), i)
        status = "ok  " if result["ok"] else "FAIL"
        print(f"{status} {name} ({result['elapsed_s']} s): " + json.dumps({k: v for k, v in result.items() if k not in ("stderr", "tandem_log")}), flush=True)
        if not result["ok"]:
            failed += 1
            print(result.get("stderr", ""), file=sys.stderr)
            print("--- tandem log ---\n" + result.get("tandem_log", ""), file=sys.stderr)
    print(f"{len(a.scenarios) - failed} of {len(a.scenarios)} WebRTC end-to-end scenarios passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
