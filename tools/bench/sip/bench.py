#!/usr/bin/env python3
"""SIP benchmark: Tandem's SIP stack (SIPUA, driven by sip-peer) under load through Kamailio,
in a lo-only network namespace. Prints a table and writes JSON.

  sudo python3 tools/bench/sip/bench.py [--quick] [--json docs/benchmarks-sip-calls.json]

Needs `swift build -c release --product sip-peer` (and sipp, kamailio). Measured:
  invite    sipp (-r R calls/s, -m 5R) calls extension 3001 through Kamailio; sip-peer answers
            each at once (200 without a 180: Kamailio's two workers may reorder a 180 behind the
            200, which sipp counts as a failed call) and sipp hangs up (BYE). For increasing R: calls completed,
            failed calls, and Tandem's CPU (utime+stime from /proc) per call. The highest R with
            no failed call, and INVITE+BYE server transactions per Tandem CPU-second (per core).
  register  sip-peer registers N extensions with digest (401, then the answer) at R per second
            to a fresh Kamailio: time, failures, and REGISTER client transactions per Tandem
            CPU-second.
The target of the SIP issue: at least 500 REGISTER or INVITE transactions per second per core.
Parser speed alone is sip-bench's (docs/benchmarks.md).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
sys.path.insert(0, os.path.join(ROOT, "tools", "interop", "sip"))
from common import cpu_seconds, stop_group  # noqa: E402
import run as interop  # noqa: E402  (Kamailio from the interop tests)

PEER = os.path.join(ROOT, ".build", "release", "sip-peer")
SCENARIO = os.path.join(os.path.dirname(__file__), "uac-load.xml")


def group_cpu(pgid):
    """CPU-seconds of every process in a process group (Kamailio's children)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) == pgid:
                total += cpu_seconds(int(pid))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            pass
    return total


def invite_step(workdir, rate, seconds):
    kamailio = interop.Kamailio(workdir, f"k-invite-{rate}", "127.0.0.1", max_expires=3600, children=2).start()
    out = open(os.path.join(workdir, f"peer-{rate}.out"), "w")
    total = rate * seconds
    peer = subprocess.Popen([PEER, "--mode", "answer", "--quiet", "--no-ring", "--answer-delay-ms", "0", "--calls", str(total), "--timeout", str(seconds + 60)],
                            stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True)
    try:
        registered = json.loads(peer.stdout.readline())
        assert "registered" in registered, registered
        interop.wait_for("3001 in Kamailio", lambda: "3001" in (kamailio.contacts() or {}), 10)
        cpu0, kam0 = cpu_seconds(peer.pid), group_cpu(kamailio.proc.pid)
        stat = os.path.join(workdir, f"sipp-{rate}.csv")
        started = time.monotonic()
        sipp = subprocess.run(["sipp", "127.0.0.1:5060", "-sf", SCENARIO, "-s", "3001", "-i", "127.0.0.1", "-p", "5070",
                               "-r", str(rate), "-m", str(total), "-l", str(max(50, rate)), "-timeout", f"{seconds + 40}s", "-nostdin",
                               "-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", os.path.join(workdir, f"sipp-{rate}-errors.log")], cwd=workdir, capture_output=True, text=True, timeout=seconds + 90)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(peer.pid) - cpu0
        kam = group_cpu(kamailio.proc.pid) - kam0
        successful, failed = stats(stat)
        errors = open(os.path.join(workdir, f"sipp-{rate}-errors.log")).read() if os.path.exists(os.path.join(workdir, f"sipp-{rate}-errors.log")) else ""
        reasons = sorted(set(re.findall(r"(Aborting call[^:]*: while expecting '[^']*' \(index \d+\), received '[^\r\n]*|Call-Id '[^']*' .*?timeout[^\n]*)", errors)))
        return {
            "rate": rate, "calls": total, "successful": successful, "failed": failed, "sipp_exit": sipp.returncode,
            "elapsed_s": round(elapsed, 2), "calls_per_s": round(successful / elapsed, 1),
            "tandem_cpu_s": round(cpu, 3), "tandem_cpu_ms_per_call": round(1000 * cpu / max(successful, 1), 3),
            "transactions_per_cpu_s": round(2 * successful / cpu, 0) if cpu > 0 else None,
            "kamailio_cpu_s": round(kam, 3), "sipp_errors": reasons[:3],
        }
    finally:
        stop_group(peer)
        kamailio.kill()


def stats(path):
    """(successful, failed) cumulated calls from sipp's last -trace_stat line."""
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    header = lines[0].split(";")
    last = lines[-1].split(";")
    value = lambda name: int(last[header.index(name)])
    return value("SuccessfulCall(C)"), value("FailedCall(C)")


def register_step(workdir, count, rate):
    kamailio = interop.Kamailio(workdir, f"k-register-{rate}", "127.0.0.1", max_expires=3600, children=2).start()
    try:
        kam0 = group_cpu(kamailio.proc.pid)
        out = subprocess.run([PEER, "--mode", "register", "--extensions", f"10000-{10000 + count - 1}", "--rate", str(rate), "--timeout", "120"],
                             capture_output=True, text=True, timeout=180)
        result = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
        kam = group_cpu(kamailio.proc.pid) - kam0
        # Each registration: REGISTER → 401, REGISTER with credentials → 200.
        transactions = 2 * result["registered"]
        return {
            "extensions": count, "rate": rate, "registered": result["registered"], "failed": result["failed"],
            "elapsed_s": round(result["seconds"], 2), "registrations_per_s": round(result["registered"] / result["seconds"], 1),
            "tandem_cpu_s": round(result["cpu_seconds"], 3),
            "transactions_per_cpu_s": round(transactions / result["cpu_seconds"], 0) if result["cpu_seconds"] > 0 else None,
            "kamailio_cpu_s": round(kam, 3),
        }
    finally:
        kamailio.kill()


def inner(a):
    workdir = tempfile.mkdtemp(prefix="tandem-sip-bench-")
    rates = [100, 200, 400] if a.quick else [100, 200, 300, 400, 600, 800]
    invites = []
    for rate in rates:
        step = invite_step(workdir, rate, a.seconds)
        invites.append(step)
        print(f"invite r={rate}: {json.dumps(step)}", flush=True)
        if step["failed"] > 0 or step["successful"] < step["calls"]:
            break
    registers = []
    for rate in ([500] if a.quick else [250, 500, 1000, 2000]):
        step = register_step(workdir, a.extensions, rate)
        registers.append(step)
        print(f"register r={rate}: {json.dumps(step)}", flush=True)
    clean = [s for s in invites if s["failed"] == 0 and s["successful"] == s["calls"]]
    best = max(clean, key=lambda s: s["rate"]) if clean else None
    result = {"invite": invites, "register": registers, "best_invite_rate": best["rate"] if best else None,
              "invite_transactions_per_core": best["transactions_per_cpu_s"] if best else None,
              "register_transactions_per_core": max((s["transactions_per_cpu_s"] or 0) for s in registers) if registers else None,
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    print()
    print("| sipp -r (calls/s) | completed | failed | calls/s | Tandem CPU ms/call | INVITE+BYE tx per Tandem CPU-s | Kamailio CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in invites:
        print(f"| {s['rate']} | {s['successful']}/{s['calls']} | {s['failed']} | {s['calls_per_s']} | {s['tandem_cpu_ms_per_call']} | {s['transactions_per_cpu_s']} | {s['kamailio_cpu_s']} |")
    print()
    print("| REGISTER rate | extensions | registered | failed | registrations/s | Tandem CPU s | REGISTER tx per Tandem CPU-s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in registers:
        print(f"| {s['rate']} | {s['extensions']} | {s['registered']} | {s['failed']} | {s['registrations_per_s']} | {s['tandem_cpu_s']} | {s['transactions_per_cpu_s']} |")
    if a.json:
        json.dump(result, open(a.json, "w"), indent=2)
        print(f"\nwrote {a.json}")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seconds", type=int, default=5, help="seconds of load per INVITE step")
    p.add_argument("--extensions", type=int, default=2000, help="extensions per REGISTER step")
    p.add_argument("--json")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.json:
        a.json = os.path.abspath(a.json)
    if not os.path.exists(PEER):
        sys.exit(f"missing {PEER}: swift build -c release --product sip-peer")
    if a.inside:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        sys.exit(inner(a))
    args = ["--seconds", str(a.seconds), "--extensions", str(a.extensions)] + (["--quick"] if a.quick else []) + (["--json", a.json] if a.json else [])
    sys.exit(interop.in_fresh_namespace("tandem-sip-bench", __file__, args))


if __name__ == "__main__":
    main()
