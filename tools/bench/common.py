"""Helpers the benchmarks share: a process's CPU time and RSS from /proc, free ports, and
stopping a process group started with start_new_session=True."""
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
