#!/usr/bin/env python3
"""aiortc calls Tandem's echo service: sends a 1 kHz tone for a few seconds and checks
that a 1 kHz tone comes back (FFT peak within 10 Hz, most energy near the peak).

Run inside the test's network namespace by run.py. Prints one JSON line; exits 1 on failure.
  echo_aiortc.py --url https://127.0.0.1:7443/webkit/echo --codec opus|pcmu [--seconds 4]
"""
import argparse
import asyncio
import fractions
import json
import sys
import time

import numpy as np
import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
import av

from tandem_http import post_sdp

# aioice skips loopback addresses on purpose; the test runs in a lo-only namespace.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class ToneTrack(MediaStreamTrack):
    """A 48 kHz mono sine, 20 ms frames, paced in real time."""
    kind = "audio"

    def __init__(self, hz):
        super().__init__()
        self.hz = hz
        self.samples = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.samples / 48000
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        n = 960
        t = (np.arange(n) + self.samples) / 48000
        pcm = (np.sin(2 * np.pi * self.hz * t) * 12000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += n
        return frame


async def run(url, codec, seconds, hz):
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver(ToneTrack(hz), direction="sendrecv")
    wanted = "audio/opus" if codec == "opus" else "audio/PCMU"
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == wanted])
    received = []
    got_track = asyncio.get_event_loop().create_future()

    @pc.on("track")
    def on_track(track):
        if not got_track.done():
            got_track.set_result(track)

    await pc.setLocalDescription(await pc.createOffer())
    answer = await asyncio.get_event_loop().run_in_executor(None, post_sdp, url, pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    answer_port = int(next(l for l in answer.splitlines() if l.startswith("m=audio")).split()[1])
    track = await asyncio.wait_for(got_track, 10)
    deadline = time.monotonic() + seconds
    rate = None
    while time.monotonic() < deadline:
        frame = await asyncio.wait_for(track.recv(), 5)
        rate = frame.sample_rate
        data = frame.to_ndarray()
        # Interleaved stereo arrives as one row; keep the first channel.
        channels = len(frame.layout.channels)
        received.append(data.reshape(-1)[::channels].astype(np.float64))
    state = pc.connectionState
    await pc.close()
    audio = np.concatenate(received)
    audio = audio[int(rate * 1.0):]  # skip the first second (start-up)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    peak = float(freqs[int(np.argmax(spectrum[1:])) + 1])
    near = spectrum[np.abs(freqs - peak) <= 20].sum()
    share = float(near / spectrum[1:].sum())
    rms = float(np.sqrt(np.mean(audio ** 2)))
    return {"codec": codec, "peak_hz": peak, "peak_share": share, "rms": rms, "seconds": len(audio) / rate, "state": state, "answer_port": answer_port}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--codec", choices=["opus", "pcmu"], default="opus")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--hz", type=float, default=1000.0)
    p.add_argument("--expect-port", type=int, help="the port Tandem's answer must give (its shared port)")
    a = p.parse_args()
    result = asyncio.run(run(a.url, a.codec, a.seconds + 1, a.hz))
    ok = abs(result["peak_hz"] - a.hz) <= 10 and result["peak_share"] > 0.5 and result["rms"] > 100
    ok = ok and (a.expect_port is None or result["answer_port"] == a.expect_port)
    result["ok"] = ok
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
