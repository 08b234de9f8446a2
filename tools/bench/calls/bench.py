#!/usr/bin/env python3
"""Calls benchmark: the whole gateway under load, in a lo-only network namespace. Prints a
table and writes JSON.

  sudo python3 tools/bench/calls/bench.py [--quick] [--hold S] [--extensions N] [--json docs/benchmarks-calls.json] [--no-build]
      [--reference-counts 300,350,400] [--guest-halt-poll-us 200]

The pieces (release builds of `tandem` and `media-load`, Kamailio, sipp):
  Tandem        `tandem serve`, media on one thread, pinned to core 0 with taskset
  browsers      media-load's gateway mode on core 1: N browsers, each holding a session for
                one extension (POST /api/v1/sessions with an OAuth token), its /webkit/ws
                socket open (so Tandem registers the extension at Kamailio, digest auth), and
                answering every call Tandem offers: Opus, ICE, DTLS, SRTP, 20 ms packets in
                real time both ways
  Kamailio      registrar and proxy (tools/interop/sip/kamailio.cfg), core 1
  sipp          uac-hold.xml on core 1: calls the extensions through Kamailio (one call per
                extension at a time, from an injection file), streams a PCMU tone for --hold
                seconds, then BYE
Two ramps, each step waiting until every call of the previous one ended:
  setup rate    --rate-calls calls placed at R calls/s for rising R: the highest R with no
                failed call (every INVITE answered, every call with audio both ways) and
                < 0.1 % loss in each direction
  concurrency   C calls at 50 calls/s, for rising C: the most concurrent calls with no failed
                call and < 0.1 % loss
Loss per direction, from counters over the step: browser → SIP is 1 − (RTP Tandem sent to
sipp) / (RTP the browsers sent); SIP → browser is 1 − (RTP the browsers received) / (RTP
Tandem received from sipp). CPU is Tandem's utime+stime over the step (from /proc) per call;
RSS is the growth at the step's peak per call. The issue's targets: ≥ 200 call setups/s, and
≥ 90 % of the media benchmark's concurrent transcoded calls: with --reference-counts, its ramp
(the echo service, same engine settings, same loss criterion) runs first in the same run, on
the host as it is then; otherwise the figure comes from docs/benchmarks-media.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
sys.path.insert(0, os.path.join(ROOT, "tools", "interop", "sip"))
from common import GuestHaltPoll, cpu_seconds, rss_kib, stop_group  # noqa: E402
import run as interop  # noqa: E402  (Kamailio, Tandem, tones from the interop tests)


def media_bench():
    """tools/bench/media/bench.py as a module (its Gateway and step run the reference ramp)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("media_bench", os.path.join(ROOT, "tools", "bench", "media", "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

BUILD = os.path.join(ROOT, ".build", "release")
SERVER_CORE, LOAD_CORE = "0", "1"
FIRST = 10000


class Tandem(interop.Tandem):
    def __init__(self, workdir, governor=True):
        super().__init__(os.path.join(BUILD, "tandem"), workdir, "udp", secondary=False)
        self.env.update({
            "TANDEM_LOG_LEVEL": "warning",
            "TANDEM_MEDIA_ENABLED": "true", "TANDEM_MEDIA_BIND_ADDRESS": "127.0.0.1", "TANDEM_MEDIA_THREADS": "1",
            "TANDEM_SIP_REGISTRATIONS_PER_SECOND": "500", "TANDEM_SIP_KEEP_ALIVE_INTERVAL": "30",
            "TANDEM_SIP_REGISTRATION_EXPIRES": "3600",
            "TANDEM_MEDIA_OPUS_GOVERNOR": "true" if governor else "false",
        })

    def start(self):
        self.out = open(self.logpath, "a")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, self.binary, "serve"], env=self.env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        interop.wait_for("tandem /healthz", lambda: self.get("/healthz") is not None or self.proc.poll() is not None, 60)
        return self


class Browsers:
    """media-load --gateway: the browsers, driven through its standard input."""

    def __init__(self, workdir, token, count):
        self.log = open(os.path.join(workdir, "media-load.err"), "w")
        self.proc = subprocess.Popen(["taskset", "-c", LOAD_CORE, os.path.join(BUILD, "media-load"), "--gateway", "https://127.0.0.1:7443", "--token", token,
                                      "--extensions", f"{FIRST}-{FIRST + count - 1}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        self.registered = json.loads(line) if line else {"registered": 0}

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            stop_group(self.proc)


def sipp_stats(path):
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    header, last = lines[0].split(";"), lines[-1].split(";")
    value = lambda name: int(last[header.index(name)])
    return value("SuccessfulCall(C)"), value("FailedCall(C)")


def step(workdir, tandem, browsers, rate, calls, hold, label):
    """`calls` calls at `rate` per second, each held `hold` seconds; the figures of the step."""
    inject = os.path.join(workdir, f"extensions-{label}.csv")
    open(inject, "w").write("SEQUENTIAL\n" + "".join(f"{FIRST + i};\n" for i in range(calls)))
    stat = os.path.join(workdir, f"sipp-{label}.csv")
    sip0 = {d: tandem.metric("tandem_gateway_sip_rtp_packets_total", direction=d) or 0 for d in ("in", "out")}
    browsers.command("mark")
    cpu0, rss0 = cpu_seconds(tandem.proc.pid), rss_kib(tandem.proc.pid)
    peak = {"rss": rss0}
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            peak["rss"] = max(peak["rss"], rss_kib(tandem.proc.pid))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    sipp = subprocess.run(["taskset", "-c", LOAD_CORE, "sipp", "127.0.0.1:5060", "-sf", os.path.join(HERE, "uac-hold.xml"), "-inf", inject,
                           "-i", "127.0.0.1", "-p", "5070", "-mp", "16000", "-r", str(rate), "-m", str(calls), "-l", str(calls),
                           "-d", str(hold * 1000), "-timeout", f"{hold + calls / rate + 60}s", "-nostdin", "-trace_stat", "-stf", stat, "-fd", "1",
                           "-trace_err", "-error_file", os.path.join(workdir, f"sipp-{label}-errors.log")],
                          cwd=workdir, capture_output=True, text=True, timeout=hold + calls / rate + 120)
    elapsed = time.monotonic() - started
    time.sleep(1.5)  # the last "ended" frames and leg closes (the RTP counters) land
    done.set()
    cpu = cpu_seconds(tandem.proc.pid) - cpu0
    report = browsers.command("report")
    sip = {d: (tandem.metric("tandem_gateway_sip_rtp_packets_total", direction=d) or 0) - sip0[d] for d in ("in", "out")}
    successful, failed = sipp_stats(stat)
    to_sip = max(0.0, 1 - sip["out"] / report["rtp_sent"]) if report["rtp_sent"] else 1.0
    to_browser = max(0.0, 1 - report["rtp_received"] / sip["in"]) if sip["in"] else 1.0
    ok = failed == 0 and successful == calls and report["calls_with_audio"] >= calls and to_sip < 0.001 and to_browser < 0.001
    return {
        "label": label, "rate": rate, "calls": calls, "hold_s": hold, "successful": successful, "failed": failed, "sipp_exit": sipp.returncode,
        "calls_with_audio": report["calls_with_audio"], "answered": report.get("signalling_answered", 0),
        "rtp_browser_sent": report["rtp_sent"], "rtp_to_sip": int(sip["out"]), "rtp_from_sip": int(sip["in"]), "rtp_browser_received": report["rtp_received"],
        "loss_to_sip": round(to_sip, 5), "loss_to_browser": round(to_browser, 5), "srtp_failures": report["srtp_failures"],
        "elapsed_s": round(elapsed, 1), "tandem_cpu_s": round(cpu, 2), "tandem_cpu_ms_per_call": round(1000 * cpu / max(calls, 1), 1),
        "tandem_cpu_per_call_second": round(cpu / max(calls * hold, 1), 5),
        "rss_kib_per_call": round((peak["rss"] - rss0) / max(calls, 1), 1), "ok": ok,
    }


def inner(a):
    with GuestHaltPoll(a.guest_halt_poll_us) as halt_poll:
        return run(a, halt_poll.value)


def reference_ramp(a, workdir):
    """The media benchmark's ramp in this run, on this host as it is now: the echo service
    (no SIP leg) with the same engine settings (one media thread, a port per leg, the
    governor as for the calls), each step `--reference-seconds` of steady media. Rising N
    until a step loses ≥ 0.1 % (the calls' own criterion; no core-load cap), so the figure
    the calls are held to is measured, not read from an older run on another day."""
    media = media_bench()
    steps = []
    with media.Gateway(os.path.join(workdir, "reference"), 5, "per-leg", 0, governor=not a.no_governor) as gateway:
        for n in a.reference_counts:
            r = media.step(gateway, n, "opus", a.reference_seconds)
            r["ok"] = "error" not in r and r["loss"] < 0.001
            steps.append(r)
            print(f"reference (echo) N={n}: {'ok' if r['ok'] else 'over'}, loss {100 * r.get('loss', 1):.3f} %, core {100 * r.get('gateway_core_load', 0):.0f} %, "
                  f"{1000 * r.get('cpu_per_call_second', 0):.3f} ms CPU per call-second, complexity ≥ {r.get('lowest_complexity')}", flush=True)
            if not r["ok"]:
                break
    return steps


def run(a, halt_poll_ns):
    workdir = tempfile.mkdtemp(prefix="tandem-calls-bench-")
    reference = reference_ramp(a, workdir) if a.reference_counts else None
    kamailio = interop.Kamailio(workdir, "kamailio", "127.0.0.1", max_expires=3600, children=2).start()
    subprocess.run(["taskset", "-cp", LOAD_CORE, str(kamailio.proc.pid)], capture_output=True)
    open(os.path.join(workdir, "tone.ulaw"), "wb").write(bytes(interop.ulaw(x) for x in interop.tone(440, 10)))
    tandem = Tandem(workdir, governor=not a.no_governor)
    browsers = None
    try:
        tandem.cli("extensions", "add", f"{FIRST}-{FIRST + a.extensions - 1}", "--digest", "--username", str(FIRST), "--password", f"pw{FIRST}", "--increment")
        tandem.start()
        browsers = Browsers(workdir, tandem.token(), a.extensions)
        assert browsers.registered.get("registered") == a.extensions, browsers.registered
        steps = []
        rates = a.rates if a.rates is not None else [50, 100, 200] if a.quick else [50, 100, 150, 200, 250, 300, 400]
        for rate in rates:
            s = step(workdir, tandem, browsers, rate, min(a.rate_calls, a.extensions), a.hold, f"rate-{rate}")
            steps.append(s)
            print(f"rate {rate}/s: {json.dumps(s)}", flush=True)
            if not s["ok"]:
                break
        counts = a.counts if a.counts is not None else [50, 100] if a.quick else [50, 100, 150, 175, 200, 225, 250, 300, 350, 400, 450, 500]
        for count in [c for c in counts if c <= a.extensions]:
            s = step(workdir, tandem, browsers, 50, count, a.hold, f"concurrent-{count}")
            steps.append(s)
            print(f"concurrent {count}: {json.dumps(s)}", flush=True)
            if not s["ok"]:
                break
    finally:
        if browsers:
            browsers.stop()
        tandem.stop()
        kamailio.kill()
    best_rate = max((s["rate"] for s in steps if s["ok"] and s["label"].startswith("rate")), default=None)
    best_concurrent = max((s["calls"] for s in steps if s["ok"] and s["label"].startswith("concurrent")), default=None)
    # The media benchmark's figure for the same engine settings (a port per leg): its ramp in
    # this run when --reference-counts asked for one, else its governed ramp (the governor on,
    # Tandem's default) or complexity-5 ramp (off) from docs/benchmarks-media.json.
    media = None
    if reference is not None:
        media = max((r["calls"] for r in reference if r["ok"]), default=None)
    else:
        try:
            runs = json.load(open(os.path.join(ROOT, "docs", "benchmarks-media.json")))["runs"]["per-leg"]
            media = max(r["calls"] for r in runs["governed" if not a.no_governor else "transcode"] if r.get("loss", 1) < 0.001)
        except (OSError, KeyError, ValueError):
            pass
    result = {"steps": steps, "best_setup_rate": best_rate, "best_concurrent": best_concurrent, "media_bench_concurrent": media,
              "media_bench_source": "this run" if reference is not None else "docs/benchmarks-media.json", "reference_steps": reference,
              "guest_halt_poll_ns": halt_poll_ns,
              "concurrent_vs_media": round(best_concurrent / media, 2) if best_concurrent and media else None,
              "governor": not a.no_governor, "hold_s": a.hold, "extensions": a.extensions, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    print()
    print("| step | rate (calls/s) | calls | ok | failed | with audio | loss → SIP | loss → browser | Tandem CPU ms/call | CPU s per call-s | RSS KiB/call |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in steps:
        print(f"| {s['label']} | {s['rate']} | {s['calls']} | {'yes' if s['ok'] else 'no'} | {s['failed']} | {s['calls_with_audio']} | "
              f"{100 * s['loss_to_sip']:.3f} % | {100 * s['loss_to_browser']:.3f} % | {s['tandem_cpu_ms_per_call']} | {s['tandem_cpu_per_call_second']} | {s['rss_kib_per_call']} |")
    print(f"\nhighest setup rate without a failed call: {best_rate} calls/s; most concurrent calls: {best_concurrent}"
          f" (the media benchmark's {'governed' if not a.no_governor else 'complexity-5'} ramp, {result['media_bench_source']}: {media}, ratio {result['concurrent_vs_media']})")
    if a.json:
        json.dump(result, open(a.json, "w"), indent=2)
        print(f"wrote {a.json}")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--hold", type=int, default=30, help="seconds each call is held with audio both ways")
    p.add_argument("--extensions", type=int, default=500, help="browsers (sessions, registered extensions)")
    p.add_argument("--rates", type=lambda t: [int(x) for x in t.split(",") if x], help="the setup-rate steps (calls/s), comma-separated")
    p.add_argument("--counts", type=lambda t: [int(x) for x in t.split(",") if x], help="the concurrency steps (calls), comma-separated")
    p.add_argument("--rate-calls", type=int, default=100, help="calls per setup-rate step (fewer than the concurrency limit, so the step measures set-up)")
    p.add_argument("--json")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--no-governor", action="store_true", help="media.opus-governor off: Opus at complexity 5 throughout, as the media benchmark's transcode ramp")
    p.add_argument("--build-dir", help="where tandem and media-load are (default .build/release; a debug build only checks the bench itself)")
    p.add_argument("--reference-counts", type=lambda t: [int(x) for x in t.split(",") if x],
                   help="run the media benchmark's ramp (echo, no SIP leg) at these call counts first, in this run, as the figure the concurrency is held to")
    p.add_argument("--reference-seconds", type=float, default=15, help="steady seconds per reference step (default 15)")
    p.add_argument("--guest-halt-poll-us", type=int, help="a VM guest: idle cores poll this long before they halt, for the run (as the media benchmark's option)")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    global BUILD
    if a.build_dir:
        BUILD = os.path.abspath(a.build_dir)
    if not a.inside and not a.no_build and not a.build_dir:
        for product in ("tandem", "media-load"):
            subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True)
    forwarded = [x for x in sys.argv[1:] if x != "--no-build"]
    if a.build_dir:
        forwarded[forwarded.index("--build-dir") + 1] = BUILD
    interop.main_in_namespace("tandem-calls", __file__, a, forwarded, inner)


if __name__ == "__main__":
    main()
