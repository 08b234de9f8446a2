#!/usr/bin/env python3
"""Headless Chromium calls Tandem's echo service from Tandem's own echo page: fake
microphone tone (AEC/NS/AGC off), WebAudio analyser on the returned stream, getStats()
for DTLS and the selected candidate pair. With --kill, the browser is then killed and
Tandem's /metrics must show the leg ended by consent expiry with everything released.

Run inside the test's network namespace by run.py. Prints one JSON line; exits 1 on failure.
  echo_chromium.py --base https://127.0.0.1:7443 --codec opus|pcmu [--seconds 4] [--kill]
"""
import argparse
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import wave

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tandem_http import get


def write_tone(path, hz, seconds=30, rate=48000):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(rate * seconds)))


def metrics(base):
    return get(base + "/metrics")


def metric(text, name, labels=""):
    pattern = re.escape(name) + (r"\{[^}]*" + re.escape(labels) + r"[^}]*\}" if labels else r"(\{\})?") + r" ([0-9.e+-]+)"
    m = re.search("^" + pattern + "$", text, re.M)
    return float(m.group(m.lastindex)) if m else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--codec", choices=["opus", "pcmu"], default="opus")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--hz", type=float, default=1000.0)
    p.add_argument("--kill", action="store_true", help="kill the browser after the call and wait for consent expiry")
    p.add_argument("--expect-port", type=int, help="the port Tandem's selected candidate must have (its shared port)")
    a = p.parse_args()

    work = tempfile.mkdtemp(prefix="tandem-chromium-")
    tone = os.path.join(work, "tone.wav")
    write_tone(tone, a.hz)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={tone}", "--autoplay-policy=no-user-gesture-required",
                 "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
                 "--ignore-certificate-errors", f"--user-data-dir={os.path.join(work, 'profile')}"]:
        options.add_argument(flag)
    # chromedriver in its own session, so the browser it starts can be killed as one group.
    service = Service("/usr/bin/chromedriver", popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    group = os.getpgid(service.process.pid)
    result = {"codec": a.codec}
    ok = False
    try:
        driver.set_script_timeout(60)
        driver.get(a.base + "/webkit/echo.html")
        report = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.tandemEcho.run({codec: arguments[0], seconds: arguments[1]}).then(done, e => done({error: String(e)}));",
            a.codec, a.seconds)
        result.update(report)
        want = "audio/opus" if a.codec == "opus" else "audio/PCMU"
        ok = ("error" not in report and abs(report["peakHz"] - a.hz) <= 10 and report["peakShare"] > 0.5
              and report["dtlsState"] == "connected" and report["selectedPair"] is not None
              and report["selectedPair"]["state"] == "succeeded" and report["codec"] == want
              and (a.expect_port is None or report["selectedPair"].get("remotePort") == a.expect_port)
              # Tandem prefers AEAD_AES_128_GCM (its own RFC 7714 path); Chromium offers it.
              and report.get("srtpCipher") == "SRTP_AEAD_AES_128_GCM")
        if a.kill and ok:
            before = metrics(a.base)
            result["legs_before_kill"] = metric(before, "tandem_media_legs")
            expired_before = metric(before, "tandem_media_legs_released_total", 'reason="consent_expired"') or 0
            os.killpg(group, signal.SIGKILL)
            killed = time.monotonic()
            ended = None
            while time.monotonic() - killed < 45:
                text = metrics(a.base)
                if metric(text, "tandem_media_legs") == 0 and (metric(text, "tandem_media_legs_released_total", 'reason="consent_expired"') or 0) > expired_before:
                    ended = time.monotonic() - killed
                    break
                time.sleep(0.5)
            result["ended_after_kill_s"] = ended
            ok = ok and result["legs_before_kill"] == 1 and ended is not None and ended <= 35
    finally:
        try:
            driver.quit()
        except Exception:
            pass
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    result["ok"] = ok
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
