"""Helpers the benchmarks share: a process's CPU time and RSS from /proc, free ports,
stopping a process group started with start_new_session=True, and the VM guest's
halt-polling setting for a run."""
import os
import random
import signal
import socket
import subprocess


def cpu_split(pid):
    """(user, system) CPU-seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks  # utime, stime


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(200):
        p = random.randint(20000, 39000)
        ok = True
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no free port")


def stop_group(proc, timeout=20):
    """SIGTERM to the process group of `proc`, SIGKILL if it has not ended within `timeout`."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class GuestHaltPoll:
    """Sets the haltpoll cpuidle driver's guest_halt_poll_ns for the run, and restores it."""
    PATH = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"

    def __init__(self, microseconds):
        self.microseconds = microseconds
        self.saved = None
        self.value = None

    def __enter__(self):
        if os.path.exists(self.PATH):
            with open(self.PATH) as f:
                self.saved = f.read().strip()
            self.value = int(self.saved)
        if self.microseconds is not None:
            if self.saved is None:
                raise SystemExit("--guest-halt-poll-us: this host has no haltpoll cpuidle driver")
            with open(self.PATH, "w") as f:
                f.write(str(self.microseconds * 1000))
            self.value = self.microseconds * 1000
            print(f"guest_halt_poll_ns: {self.saved} → {self.value} for this run", flush=True)
        return self

    def __exit__(self, *exc):
        if self.microseconds is not None and self.saved is not None:
            with open(self.PATH, "w") as f:
                f.write(self.saved)
