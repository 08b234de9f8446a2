#!/usr/bin/env python3
"""Captures real SDP offers for the parser fixtures (Tests/SDPTests/Fixtures): headless
Chromium (audio; audio + video) and aiortc, each gathering on loopback. Run as root:
  ip netns add cap && ip -n cap link set lo up
  ip netns exec cap .build-venv/bin/python tools/interop/webrtc/capture_offers.py Tests/SDPTests/Fixtures
  ip netns del cap
"""
import asyncio
import http.server
import os
import sys
import tempfile
import threading

import aioice.ice
from aiortc import RTCPeerConnection
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

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


def chromium_offers():
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
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def main():
    out = sys.argv[1]
    audio, video = chromium_offers()
    for name, sdp in [("chromium-offer.sdp", audio), ("chromium-video-offer.sdp", video), ("aiortc-offer.sdp", asyncio.run(aiortc_offer()))]:
        if sdp.startswith("error"):
            sys.exit(f"{name}: {sdp}")
        with open(os.path.join(out, name), "w", newline="") as f:
            f.write(sdp)
        print(f"{name}: {len(sdp.splitlines())} lines")


if __name__ == "__main__":
    main()
