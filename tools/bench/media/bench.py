#!/usr/bin/env python3
"""Media benchmark: Tandem's echo service under N simulated browsers (tools/bench/media/MediaLoad).

The gateway runs pinned to core 0 (taskset, one media thread), the load tool on core 1. For
each step the tool sets up N calls (offer → /webkit/echo, ICE, DTLS, SRTP), waits until every
call echoes, then sends 20 ms packets in real time for --seconds while the gateway's CPU time
(utime+stime from /proc) and RSS are sampled. Two configurations:
  transcode     Opus from the browser (narrowband, as Tandem's fmtp asks) → G.711 → echo → G.711
                → Opus at media.opus-complexity (default 5) back to the browser
  pass-through  PCMU both ways: SRTP ↔ RTP only
Per step: CPU-seconds per call-second, packet loss, the round trip of every packet through the
gateway (browser → gateway → echo → gateway → browser: two passes, no framing delay), RSS per
call. Reports the largest N with < 0.1 % loss and p99 < 1 ms.

  python3 tools/bench/media/bench.py [--quick] [--seconds S] [--json docs/benchmarks-media.json] [--no-build]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SERVER_CORE, LOAD_CORE = "0", "1"
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
from common import cpu_seconds, free_port, rss_kib, stop_group  # noqa: E402

class Gateway:
    def __init__(self, workdir, complexity):
        self.workdir = workdir
        self.port = free_port()
        self.complexity = complexity
        self.proc = None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "TANDEM_STORAGE_DATA_DIRECTORY": os.path.join(self.workdir, "data"),
            "TANDEM_LOG_DIRECTORY": os.path.join(self.workdir, "log"),
            "TANDEM_LOG_LEVEL": "warning",
            "TANDEM_HTTP_LISTEN_ADDRESS": "127.0.0.1",
            "TANDEM_HTTP_PORT": str(self.port),
            "TANDEM_TURN_ENABLED": "false",
            "TANDEM_MEDIA_ECHO": "true",
            "TANDEM_MEDIA_BIND_ADDRESS": "127.0.0.1",
            "TANDEM_MEDIA_THREADS": "1",
            "TANDEM_MEDIA_PORT_MIN": "20000",
            "TANDEM_MEDIA_PORT_MAX": "29999",
            "TANDEM_MEDIA_OPUS_COMPLEXITY": str(self.complexity),
        })
        log = open(os.path.join(self.workdir, "tandem.out"), "w")
        cmd = ["taskset", "-c", SERVER_CORE, os.path.join(ROOT, ".build", "release", "tandem"), "serve"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(300):
            if subprocess.run(["curl", "-sk", "--max-time", "1", f"https://127.0.0.1:{self.port}/healthz"], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"tandem did not start; see {self.workdir}/tandem.out")

    def stop(self):
        stop_group(self.proc)


def step(gateway, calls, codec, seconds):
    tool = os.path.join(ROOT, ".build", "release", "media-load")
    pid = gateway.proc.pid
    rss_before = rss_kib(pid)
    p = subprocess.Popen(["taskset", "-c", LOAD_CORE, tool, "--url", f"https://127.0.0.1:{gateway.port}/webkit/echo",
                          "--calls", str(calls), "--seconds", str(seconds), "--codec", codec],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "steady":
        p.kill()
        return {"calls": calls, "error": (line + " " + p.stderr.read())[-500:]}
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    rss_during = 0
    while True:
        line = p.stdout.readline().strip()
        rss_during = max(rss_during, rss_kib(pid))
        if line == "done" or not line:
            break
    cpu1 = cpu_seconds(pid)
    wall = time.monotonic() - t0
    out, err = p.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1])
    result["gateway_cpu_seconds"] = cpu1 - cpu0
    result["wall_seconds"] = wall
    result["cpu_per_call_second"] = (cpu1 - cpu0) / (calls * wall)
    result["gateway_core_load"] = (cpu1 - cpu0) / wall
    result["rss_kib_per_call"] = (rss_during - rss_before) / calls
    time.sleep(1.5)  # the calls' close_notify ends their legs
    return result


def ok(r):
    return "error" not in r and r["loss"] < 0.001 and r["rtt_p99_ms"] < 1.0 and r["gateway_core_load"] < 0.95


def ramp(gateway, codec, steps, seconds, label):
    results = []
    for n in steps:
        r = step(gateway, n, codec, seconds)
        results.append(r)
        if "error" in r:
            print(f"  {label:12} N={n:5}: failed: {r['error']}", flush=True)
            break
        print(f"  {label:12} N={n:5}: {r['cpu_per_call_second'] * 1000:7.3f} ms CPU per call-second, core {r['gateway_core_load'] * 100:5.1f} %, "
              f"loss {r['loss'] * 100:.3f} %, round trip p50 {r['rtt_p50_ms']:.3f} ms p99 {r['rtt_p99_ms']:.3f} ms, "
              f"{r['rss_kib_per_call']:.1f} KiB/call {'ok' if ok(r) else 'OVER'}", flush=True)
        if not ok(r):
            break
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--complexity", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        for product in ["tandem", "media-load"]:
            subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True)
    transcode_steps = [10, 20] if a.quick else [50, 100, 150, 200, 250, 300, 350]
    pass_steps = [20, 50] if a.quick else [250, 500, 750, 1000, 1250]
    seconds = 3 if a.quick else a.seconds
    work = tempfile.mkdtemp(prefix="tandem-media-bench-")
    gateway = Gateway(work, a.complexity)
    gateway.start()
    try:
        transcode = ramp(gateway, "opus", transcode_steps, seconds, "transcode")
        passthrough = ramp(gateway, "pcmu", pass_steps, seconds, "pass-through")
    finally:
        gateway.stop()

    def best(results):
        good = [r for r in results if ok(r)]
        return good[-1] if good else None

    bt, bp = best(transcode), best(passthrough)
    print()
    print("| configuration | largest N (< 0.1 % loss, p99 < 1 ms) | CPU-seconds per call-second | round trip p50 / p99, ms | KiB RSS per call |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, b in [(f"transcode Opus ↔ PCMU, complexity {a.complexity}", bt), ("pass-through PCMU (SRTP ↔ RTP)", bp)]:
        if b:
            print(f"| {name} | {b['calls']} | {b['cpu_per_call_second']:.5f} | {b['rtt_p50_ms']:.3f} / {b['rtt_p99_ms']:.3f} | {b['rss_kib_per_call']:.1f} |")
        else:
            print(f"| {name} | none | | | |")
    for name, b in [("transcode", bt), ("pass-through", bp)]:
        if b:
            print(f"{name}: ≈ {1 / b['cpu_per_call_second']:.0f} calls per core by CPU-seconds per call-second")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"complexity": a.complexity, "seconds": seconds, "transcode": transcode, "pass_through": passthrough}, f, indent=2)
        print(f"JSON: {a.json}")


if __name__ == "__main__":
    main()
