"""Headless Chromium for the gateway's end-to-end tests, driven by selenium.

The fake microphone plays a sine tone from a WAV file, so a test can tell by the frequency
which side's audio reached which (the page's measure() hook). Typical use:

    with Browser(tone_hz=1000, workdir=tmp) as b:
        b.open(base + "/webkit/demo/agent.html" + session_fragment(session))
        b.js_async("return tandemAgent.ready.then(p => p.extension)")
        call_id = b.js_async("return tandemAgent.call(arguments[0])", "1002")
        b.wait_event("answered", 10, call=call_id)
        report = b.js_async("return tandemAgent.measure(arguments[0])", 3)   # {peakHz, peakShare, frames}
        b.kill()                                                             # the browser dies mid-call
"""
import json
import math
import os
import signal
import sys
import time
import urllib.parse
import wave
from array import array

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def write_tone(path, hz, seconds=30, rate=48000, amplitude=0.3):
    """A mono 16-bit WAV of a sine (Chromium's fake capture loops it)."""
    peak = amplitude * 32767
    samples = array("h", (int(round(peak * math.sin(2 * math.pi * hz * i / rate))) for i in range(int(rate * seconds))))
    if samples.itemsize != 2:
        raise RuntimeError("array('h') is not 16-bit here")
    if sys.byteorder != "little":
        samples.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def session_fragment(session):
    """The `#session=…` fragment the demo pages read a session from."""
    return "#session=" + urllib.parse.quote(json.dumps(session), safe="")


def _parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _parent_of(int(entry)) == pid:
                    kids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass  # gone meanwhile
    return kids


def _descendants(pid):
    found, todo = [], [pid]
    while todo:
        for kid in _children(todo.pop()):
            found.append(kid)
            todo.append(kid)
    return found


class Browser:
    """Headless Chromium with a fake microphone playing `tone_hz` (None: Chromium's own beeps)."""

    def __init__(self, tone_hz, workdir):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        flags = ["--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required", "--ignore-certificate-errors",
                 # Host candidates on loopback (the tests run in a namespace of their own), not hidden behind mDNS.
                 "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
                 f"--user-data-dir={os.path.join(workdir, 'profile')}"]
        if tone_hz is not None:
            self.tone = os.path.join(workdir, f"tone-{tone_hz:g}.wav")
            write_tone(self.tone, tone_hz)
            flags.append(f"--use-file-for-fake-audio-capture={self.tone}")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in flags:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # chromedriver in a session of its own: close() can then end whatever it started as one group.
        self.service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
        self.driver = webdriver.Chrome(service=self.service, options=options)
        self._group = os.getpgid(self.service.process.pid)
        self.driver.set_script_timeout(60)
        self._pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def pid(self):
        """The browser process: the chromium child of chromedriver."""
        if self._pid is None:
            driver_pid = self.service.process.pid
            for kid in _children(driver_pid):
                try:
                    with open(f"/proc/{kid}/cmdline", "rb") as f:
                        argv0 = f.read().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if "chrom" in os.path.basename(argv0):
                    self._pid = kid
                    break
            else:
                raise RuntimeError(f"no chromium process under chromedriver {driver_pid}")
        return self._pid

    def kill(self):
        """SIGKILLs the browser and its helper processes (renderer, network service, …) at once,
        as a crash would: its sockets close without a word to Tandem."""
        main = self.pid
        for pid in [main] + _descendants(main):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def open(self, url):
        current = self.driver.current_url
        # A URL differing from the current one only in its fragment would not reload the page.
        if current.split("#")[0] == url.split("#")[0]:
            self.driver.get("about:blank")
        self.driver.get(url)

    def js(self, script, *args):
        """execute_script: `script` is a function body (use `return`), arguments[i] are `args`."""
        return self.driver.execute_script(script, *args)

    def js_async(self, script, *args):
        """Runs `script` (a function body whose return value may be a promise; arguments[i]
        are `args`) and returns what it resolves to, or {"error": String(e)} if it throws or rejects."""
        wrapper = ("const done = arguments[arguments.length - 1];"
                   "const args = Array.prototype.slice.call(arguments, 0, -1);"
                   "Promise.resolve().then(() => (function () {" + script + "\n}).apply(null, args))"
                   ".then(r => done(r === undefined ? null : r), e => done({error: String(e)}));")
        return self.driver.execute_async_script(wrapper, *args)

    def events(self, source="tandemAgent", start=0):
        """The page's recorded events from index `start` ([] before the page set its hook)."""
        return self.driver.execute_script(
            "const h = window[arguments[0]]; return h && h.events ? h.events.slice(arguments[1]) : [];", source, start)

    def wait_event(self, name, timeout, call=None, source="tandemAgent", where=None, after=None):
        """Polls window[source].events every 100 ms for the first event `name` (of call id `call`,
        whose detail holds every key/value of `where`, recorded after performance.now() `after`);
        returns it as a dict, or raises TimeoutError with the events so far."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            fresh = self.events(source, len(seen))
            seen.extend(fresh)
            for event in fresh:
                if (event.get("event") == name and (call is None or event.get("call") == call)
                        and (after is None or event.get("t", 0) > after)
                        and all((event.get("detail") or {}).get(k) == v for k, v in (where or {}).items())):
                    return event
            if time.monotonic() >= deadline:
                summary = [{k: e.get(k) for k in ("event", "call", "detail")} for e in seen if e.get("event") != "quality"]
                raise TimeoutError(f"no {name!r} event (call={call}, where={where}) within {timeout} s; events: {json.dumps(summary)}")
            time.sleep(0.1)

    def now(self):
        """The page's performance.now(), for wait_event(after=…)."""
        return self.driver.execute_script("return performance.now()")

    def console(self):
        """The browser console's messages since the last call (for a failing test's report)."""
        try:
            return [entry.get("message") for entry in self.driver.get_log("browser")]
        except Exception:
            return []

    def screenshot(self, path):
        self.driver.save_screenshot(path)

    def close(self):
        try:
            self.driver.quit()
        except Exception:
            pass  # the browser may be killed already
        try:
            os.killpg(self._group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
