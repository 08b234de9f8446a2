#!/usr/bin/env python3
"""Captures real SDP offers for the parser fixtures (Tests/SDPTests/Fixtures): headless
Chromium (audio; audio + video) via selenium + chromedriver, aiortc, and headless Firefox ESR
(audio; no webdriver: firefox-esr loads a page from a local HTTP server, with a fresh profile
whose user.js enables the fake microphone and loopback candidates, and POSTs its offer back),
each gathering on loopback. Run as root:
  ip netns add cap && ip -n cap link set lo up
  ip netns exec cap .build-venv/bin/python tools/interop/webrtc/capture_offers.py Tests/SDPTests/Fixtures
  ip netns del cap
`--only firefox` (repeatable: chromium, aiortc, firefox) captures a subset; the Firefox capture needs
only the standard library (so plain python3 works) and is skipped with a message if firefox-esr is
not installed.
"""
import argparse
import asyncio
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

OFFER_SCRIPT = """
const done = arguments[arguments.length - 1];
(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: arguments[0]});
  const pc = new RTCPeerConnection();
  for (const t of stream.getTracks()) pc.addTransceiver(t, {streams: [stream]});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === "complete") r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); setTimeout(r, 3000); });
  return pc.localDescription.sdp;
})().then(done, e => done("error: " + e));
"""

FIREFOX_PAGE = """<!doctype html><meta charset="utf-8"><title>capture</title>
<script>
(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const pc = new RTCPeerConnection();
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === "complete") r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); setTimeout(r, 3000); });
  return pc.localDescription.sdp;
})().then(sdp => sdp, e => "error: " + e).then(body => fetch("/sdp", {method: "POST", body}));
</script>
"""

FIREFOX_PREFS = {
    "media.navigator.permission.disabled": True,
    "media.navigator.streams.fake": True,
    # Fake devices count as "capturing" only with this; otherwise Firefox gathers on the default route only
    # (none in a lo-only namespace) and the offer has no candidates.
    "media.navigator.permission.fake": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.default_address_only": False,
    "media.peerconnection.ice.no_host": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.startup.max_resumed_crashes": -1,
    "app.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.proxy.type": 0,
}


def chromium_offers():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    work = tempfile.mkdtemp()
    open(os.path.join(work, "index.html"), "w").write("<!doctype html><title>capture</title>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=work)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns", f"--user-data-dir={work}/profile"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.set_script_timeout(30)
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        return driver.execute_async_script(OFFER_SCRIPT, False), driver.execute_async_script(OFFER_SCRIPT, True)
    finally:
        driver.quit()
        server.shutdown()


async def aiortc_offer():
    import aioice.ice
    from aiortc import RTCPeerConnection

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def firefox_offer(timeout=60):
    """Headless firefox-esr, no webdriver: serves FIREFOX_PAGE and waits for its POST. None if not installed."""
    binary = shutil.which("firefox-esr")
    if binary is None:
        print("firefox-offer.sdp: skipped (firefox-esr not installed)")
        return None
    received, posted = [], threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/offer.html":
                self.send_error(404)
                return
            body = FIREFOX_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()
            if self.path == "/sdp" and not posted.is_set():
                received.append(body.decode())
                posted.set()

        def log_message(self, *args):
            pass

    work = tempfile.mkdtemp(prefix="capture-firefox-")
    profile = os.path.join(work, "profile")
    os.mkdir(profile)
    with open(os.path.join(profile, "user.js"), "w") as f:
        for key, value in FIREFOX_PREFS.items():
            literal = ("true" if value else "false") if isinstance(value, bool) else value if isinstance(value, int) else f'"{value}"'
            f.write(f'user_pref("{key}", {literal});\n')
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, HOME=work, MOZ_HEADLESS="1")
    log = open(os.path.join(work, "firefox.log"), "w")
    proc = subprocess.Popen([binary, "--headless", "--no-remote", "--profile", profile,
                             f"http://127.0.0.1:{server.server_address[1]}/offer.html"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        posted.wait(timeout)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(5)
                break
            except subprocess.TimeoutExpired:
                pass
        log.close()
        server.shutdown()
        server.server_close()
    if not received:
        tail = open(os.path.join(work, "firefox.log")).read()[-2000:]
        shutil.rmtree(work, ignore_errors=True)
        return f"error: no offer from firefox-esr within {timeout} s (exit {proc.returncode}); log tail:\n{tail}"
    shutil.rmtree(work, ignore_errors=True)
    return received[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="directory to write the .sdp files into")
    parser.add_argument("--only", action="append", choices=["chromium", "aiortc", "firefox"],
                        help="capture only these (repeatable); default: all")
    args = parser.parse_args()
    only = set(args.only or ["chromium", "aiortc", "firefox"])
    captures = []
    if "chromium" in only:
        audio, video = chromium_offers()
        captures += [("chromium-offer.sdp", audio), ("chromium-video-offer.sdp", video)]
    if "aiortc" in only:
        captures.append(("aiortc-offer.sdp", asyncio.run(aiortc_offer())))
    if "firefox" in only:
        sdp = firefox_offer()
        if sdp is not None:
            captures.append(("firefox-offer.sdp", sdp))
    for name, sdp in captures:
        if sdp.startswith("error"):
            sys.exit(f"{name}: {sdp}")
        with open(os.path.join(args.out, name), "w", newline="") as f:
            f.write(sdp)
        print(f"{name}: {len(sdp.splitlines())} lines")


if __name__ == "__main__":
    main()
