#!/usr/bin/env python3
"""TURN benchmark: coturn and Tandem side by side, under the same load.

Both servers run at once, each pinned to core 0 (taskset), the load tools to core 1; every
relay step runs on coturn and then on Tandem, for --rounds rounds, so the two see the same
machine conditions. Loopback only, REST-API credentials, loopback peers explicitly allowed on
both. Prints a table and writes JSON.

  python3 tools/bench/turn/bench.py [--quick] [--rounds N] [--json docs/benchmarks-turn.json]
  python3 tools/bench/turn/bench.py --summarize RUN.json [--json OUT.json]   (the table again)

Measured, for each server:
  relay    turnutils_uclient -m N -z 10 -l 172 -c through the server to turnutils_peer (echo),
           for increasing N: relayed packets (client->peer plus peer->client) per second and
           per server CPU-second (utime+stime from /proc), loss; the best rate with < 1 % loss.
           A uclient that exits on a channel-number clash of its own (see relay_step) runs again.
           uclient itself tops out near 10k relayed packets/s, so also:
  rate     turn-load relay: 200 allocations sending 172-byte ChannelData at a fixed total rate
           to an echo peer, for increasing rates: the same figures, up to the server's limit,
           and the round-trip time of every echo (p50/p99).
  churn    turn-load churn: fresh 5-tuple per allocation, 401 -> authenticated Allocate ->
           Refresh(0), 64 in flight; allocations per second and per server CPU-second, p99.
  memory   turn-load hold: RSS before, with N held UDP allocations, and after releasing them.

  --variant NAME:KEY=VALUE[,KEY=VALUE…] adds another Tandem, started with those environment
  variables (e.g. w200:TANDEM_TURN_BATCH_WINDOW_US=200), to every relay step of the same run, so a
  setting is compared with the default and with coturn side by side; it gets its own table.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
from common import GuestHaltPoll, cpu_seconds, cpu_split, free_port, rss_kib, stop_group  # noqa: E402
SECRET = "bench-secret-0123456789"
SERVER_CORE = "0"
LOAD_CORE = "1"


def wait_udp_stun(port, timeout=20):
    """Waits until a STUN Binding request on the port gets an answer."""
    req = bytes.fromhex("000100002112a442") + os.urandom(12)
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(req, ("127.0.0.1", port))
            s.recvfrom(2048)
            return True
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    return False


class Server:
    def __init__(self, name, workdir, extra_env=None):
        self.name = name
        self.workdir = workdir
        self.port = free_port()
        self.proc = None
        self.extra_env = extra_env or {}

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        log = open(os.path.join(self.workdir, "server.log"), "w")
        if self.name == "coturn":
            conf = os.path.join(self.workdir, "turnserver.conf")
            with open(conf, "w") as f:
                f.write("\n".join([
                    "listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"listening-port={self.port}",
                    "min-port=49152", "max-port=65535", "use-auth-secret", f"static-auth-secret={SECRET}",
                    "realm=tandem", "allow-loopback-peers", "no-cli", "no-tls", "no-dtls", "relay-threads=1",
                    "no-tcp-relay", "total-quota=0", "user-quota=0", "simple-log",
                    f"log-file={os.path.join(self.workdir, 'coturn.log')}", "no-stdout-log", ""]))
            cmd = ["taskset", "-c", SERVER_CORE, "turnserver", "-c", conf]
            env = os.environ.copy()
        else:
            cmd = ["taskset", "-c", SERVER_CORE, os.path.join(ROOT, ".build", "release", "tandem"), "serve"]
            env = os.environ.copy()
            env.update({
                "TANDEM_STORAGE_DATA_DIRECTORY": os.path.join(self.workdir, "data"),
                "TANDEM_LOG_DIRECTORY": os.path.join(self.workdir, "log"),
                "TANDEM_LOG_LEVEL": "warning",
                "TANDEM_HTTP_LISTEN_ADDRESS": "127.0.0.1",
                "TANDEM_HTTP_PORT": str(free_port()),
                "TANDEM_TURN_LISTEN_ADDRESSES": "127.0.0.1",
                "TANDEM_TURN_LISTEN_PORT": str(self.port),
                "TANDEM_TURN_TRANSPORTS": "udp",
                "TANDEM_TURN_RELAY_ADDRESSES": "127.0.0.1",
                "TANDEM_TURN_SHARED_SECRET": SECRET,
                "TANDEM_TURN_ALLOWED_PEERS": "127.0.0.0/8",
                "TANDEM_TURN_THREADS": "1",
                "TANDEM_TURN_USER_QUOTA": "0",
                "TANDEM_TURN_TOTAL_QUOTA": "100000",
                "TANDEM_TURN_MAX_REQUESTS_PER_SECOND": "0",
            })
            env.update(self.extra_env)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if not wait_udp_stun(self.port):
            self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.workdir}/server.log")
        time.sleep(0.5)

    def stop(self):
        stop_group(self.proc, timeout=15)


def parse_uclient(text):
    sent = recv = lost = 0
    for line in text.splitlines():
        if "tot_send_msgs=" in line and "msz=" not in line:
            sent = int(line.split("tot_send_msgs=")[1].split(",")[0])
            recv = int(line.split("tot_recv_msgs=")[1].split(",")[0].split()[0])
        if "Total lost packets" in line:
            lost = int(line.split("Total lost packets")[1].split()[0])
    return sent, recv, lost


# uclient binds its client sockets to 127.0.0.1 port 0 with SO_REUSEADDR, and Linux then may
# give two of them the same port (1000 such sockets here: 18 ports shared): two clients on one
# 5-tuple, which a server sees as one. The second Allocate gets 437, which uclient retries a
# second later from a new socket; but when the two clients' ChannelBinds meet on one allocation
# (or one client draws the same random channel number twice, 1 in 16,384), the second number is
# bound to another peer, which any RFC 8656 server refuses (400, §11.2; coturn: "You cannot use
# the same channel number with different peer"), and uclient exits without relaying. A step that
# ended so is run again, on either server.
UCLIENT_CHANNEL_COLLISION = "channel bind: error 400"


def relay_step(server, peer_port, clients, messages, attempts=2):
    cmd = ["taskset", "-c", LOAD_CORE, "turnutils_uclient", "-W", SECRET, "-u", "bench", "-e", "127.0.0.1",
           "-r", str(peer_port), "-p", str(server.port), "-n", str(messages), "-l", "172", "-m", str(clients),
           "-z", "10", "-c", "127.0.0.1"]
    pid = server.proc.pid
    # taskset execs the server, so the pid is the server's own.
    cpu0 = cpu_seconds(pid)
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    elapsed = time.time() - t0
    cpu = cpu_seconds(pid) - cpu0
    text = out.stdout + out.stderr
    sent, recv, _ = parse_uclient(text)
    if sent == 0:
        # uclient gave up before relaying: keep what it said, for the record.
        path = os.path.join(server.workdir, f"uclient-{clients}-failed-{int(t0)}.log")
        with open(path, "w") as f:
            f.write(text)
        tail = " | ".join(text.strip().splitlines()[-3:])
        print(f"  uclient against {server.name} relayed nothing (exit {out.returncode}): {tail}", flush=True)
        if attempts > 1 and UCLIENT_CHANNEL_COLLISION in text:
            print(f"  (uclient met a channel number bound to another peer, its own doing; the step runs again, see {path})", flush=True)
            step = relay_step(server, peer_port, clients, messages, attempts - 1)
            step["retried_after"] = path
            return step
    relayed = sent + recv
    loss = (sent - recv) / sent if sent else 1.0
    return {"clients": clients, "sent": sent, "received": recv, "relayed": relayed, "seconds": elapsed,
            "cpu_seconds": cpu, "loss": loss,
            "relayed_per_cpu_second": relayed / cpu if cpu > 0 else 0.0}


def rate_step(server, clients, rate, seconds, first_port):
    """turn-load relay: ChannelData from `clients` allocations at `rate` messages/s to an echo peer."""
    tool = os.path.join(ROOT, ".build", "release", "turn-load")
    pid = server.proc.pid
    user0, system0 = cpu_split(pid)
    out = subprocess.run(["taskset", "-c", LOAD_CORE, tool, "relay", "--port", str(server.port), "--secret", SECRET,
                          "--clients", str(clients), "--rate", str(rate), "--duration", str(seconds),
                          "--first-port", str(first_port), "--last-port", str(first_port + 999)],
                         capture_output=True, text=True, timeout=seconds + 120)
    user1, system1 = cpu_split(pid)
    cpu = (user1 - user0) + (system1 - system0)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update({"rate": rate, "cpu_seconds": cpu, "user_seconds": user1 - user0, "system_seconds": system1 - system0, "relayed_per_second": r["relayed"] / r["seconds"],
              "relayed_per_cpu_second": r["relayed"] / cpu if cpu > 0 else 0.0})
    return r


def churn(server, seconds):
    tool = os.path.join(ROOT, ".build", "release", "turn-load")
    pid = server.proc.pid
    cpu0 = cpu_seconds(pid)
    out = subprocess.run(["taskset", "-c", LOAD_CORE, tool, "churn", "--port", str(server.port), "--secret", SECRET,
                          "--concurrency", "64", "--duration", str(seconds), "--first-port", "20000", "--last-port", "39999"], capture_output=True, text=True, timeout=seconds + 60)
    cpu = cpu_seconds(pid) - cpu0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = cpu
    result["per_cpu_second"] = result["completed"] / cpu if cpu > 0 else 0.0
    return result


def memory(server, count):
    tool = os.path.join(ROOT, ".build", "release", "turn-load")
    pid = server.proc.pid
    before = rss_kib(pid)
    p = subprocess.Popen(["taskset", "-c", LOAD_CORE, tool, "hold", "--port", str(server.port), "--secret", SECRET,
                          "--count", str(count), "--first-port", "12000", "--last-port", "19999"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    held = int(line.split()[1]) if line.startswith("held") else 0
    time.sleep(1.0)
    with_allocations = rss_kib(pid)
    p.stdin.write("\n")
    p.stdin.flush()
    p.communicate(timeout=60)
    time.sleep(2.5)
    after = rss_kib(pid)
    return {"held": held, "rss_before_kib": before, "rss_held_kib": with_allocations, "rss_after_release_kib": after,
            "kib_per_allocation": (with_allocations - before) / held if held else 0.0,
            "kib_retained_per_allocation_after_release": (after - before) / held if held else 0.0}


NAMES = ("coturn", "tandem")


def run_rounds(args, workdir, peer_port):
    """Both servers run at once (each pinned to the server core; the idle one costs nothing),
    and every load step runs on coturn and then on Tandem, round after round, so the two
    face the same machine conditions side by side."""
    servers = {name: Server(name, os.path.join(workdir, name)) for name in NAMES}
    # Variants are Tandems with other settings, in the relay steps only.
    for name, env in args.variants.items():
        servers[name] = Server("tandem", os.path.join(workdir, name), env)
    relay_names = list(servers)
    results = {name: {"steps": [], "rates": []} for name in relay_names}
    try:
        for server in servers.values():
            server.start()
        for rnd in range(args.rounds):
            for clients in args.clients:
                for name in relay_names:
                    step = relay_step(servers[name], peer_port, clients, args.messages)
                    step["round"] = rnd
                    results[name]["steps"].append(step)
                    print(f"  {name:7} round {rnd + 1} uclient N={clients:4}: {step['relayed'] / step['seconds']:9.0f} pkt/s, "
                          f"{step['relayed_per_cpu_second']:9.0f} pkt/CPU-s, loss {step['loss'] * 100:.2f} %", flush=True)
            for i, rate in enumerate(args.rates):
                for name in relay_names:
                    # A fresh source-port range per step: a server keeps a released 5-tuple for a while.
                    step = rate_step(servers[name], args.rate_clients, rate, args.rate_seconds, 40000 + 1000 * (i + len(args.rates) * rnd))
                    step["round"] = rnd
                    results[name]["rates"].append(step)
                    print(f"  {name:7} round {rnd + 1} turn-load {rate:6}/s: {step['relayed_per_second']:9.0f} pkt/s, "
                          f"{step['relayed_per_cpu_second']:9.0f} pkt/CPU-s, "
                          f"loss {step['loss'] * 100:.2f} %, RTT p50 {step.get('rtt_p50_ms', 0):.3f} ms p99 {step.get('rtt_p99_ms', 0):.3f} ms", flush=True)
        for name in NAMES:
            ch = churn(servers[name], args.churn_seconds)
            results[name]["churn"] = ch
            print(f"  {name:7} churn: {ch['per_second']:.0f} alloc/s, {ch['per_cpu_second']:.0f} alloc/CPU-s, p99 {ch['p99_ms']:.1f} ms", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    # Memory on a fresh server of each: one that has relayed and churned already reuses the
    # heap it grew then, and would show (almost) nothing per held allocation.
    for name in NAMES:
        fresh = Server(name, os.path.join(workdir, name + "-memory"))
        try:
            fresh.start()
            mem = memory(fresh, args.hold)
        finally:
            fresh.stop()
        results[name]["memory"] = mem
        print(f"  {name:7} memory: {mem['kib_per_allocation']:.1f} KiB per allocation ({mem['held']} held)", flush=True)
    for r in results.values():
        summarize(r)
    return results


def parse_variant(text):
    """NAME:KEY=VALUE[,KEY=VALUE…] → (name, environment)."""
    name, _, assignments = text.partition(":")
    if not name or name in NAMES or not assignments:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: NAME:KEY=VALUE[,KEY=VALUE…], NAME not coturn or tandem")
    env = {}
    for item in assignments.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key.startswith("TANDEM_"):
            raise argparse.ArgumentTypeError(f"--variant {text!r}: {item!r} is not TANDEM_…=VALUE")
        env[key] = value
    return name, env


def per_cpu(steps):
    """Relayed datagrams per server CPU-second over the steps that relayed (a uclient that gave
    up before relaying leaves its setup's CPU and nothing relayed, which says nothing of the relay)."""
    ran = [s for s in steps if s["relayed"] > 0]
    relayed = sum(s["relayed"] for s in ran)
    cpu = sum(s["cpu_seconds"] for s in ran)
    return relayed / cpu if cpu > 0 else 0.0


def summarize(r):
    steps, rates = r["steps"], r["rates"]
    ok = [s for s in steps if s["loss"] < 0.01 and s["sent"] > 0]
    best = max(ok, key=lambda s: s["relayed"] / s["seconds"]) if ok else None
    relay_per_cpu = per_cpu(steps)
    rate_ok = [x for x in rates if x["loss"] < 0.01]
    best_rate = max(rate_ok, key=lambda x: x["relayed_per_second"]) if rate_ok else None
    rounds = sorted({x["round"] for x in rates})
    r.update({
        "rate_best_relayed_per_second_under_1pct_loss": best_rate["relayed_per_second"] if best_rate else 0.0,
        "rate_relayed_per_cpu_second": per_cpu(rates),
        "rate_relayed_per_cpu_second_by_round": [per_cpu([x for x in rates if x["round"] == n]) for n in rounds],
        "relayed_per_cpu_second_by_round": [per_cpu([x for x in steps if x["round"] == n]) for n in rounds],
        "best_relayed_per_second_under_1pct_loss": best["relayed"] / best["seconds"] if best else 0.0,
        "relayed_per_cpu_second": relay_per_cpu,
        "cpu_seconds_per_million_packets": 1e6 / relay_per_cpu if relay_per_cpu else 0.0,
    })


def ratio(a, b):
    return a / b if b else float("nan")


def servers_of(results):
    """The servers' results in a run's results (beside them: the run's settings)."""
    return {name: r for name, r in results.items() if isinstance(r, dict) and "steps" in r}


def report(results):
    """Prints the table (and the variants' one) from a run's results; returns its rows."""
    c, t = results["coturn"], results["tandem"]
    hold = t["memory"]["held"]
    variants = [name for name in servers_of(results) if name not in NAMES]
    rows = [
        ("relayed packets/s at < 1 % loss (turn-load relay)", c["rate_best_relayed_per_second_under_1pct_loss"], t["rate_best_relayed_per_second_under_1pct_loss"], True),
        ("relayed packets per server CPU-second (turn-load relay)", c["rate_relayed_per_cpu_second"], t["rate_relayed_per_cpu_second"], True),
        ("relayed packets/s at < 1 % loss (uclient)", c["best_relayed_per_second_under_1pct_loss"], t["best_relayed_per_second_under_1pct_loss"], True),
        ("relayed packets per server CPU-second (uclient)", c["relayed_per_cpu_second"], t["relayed_per_cpu_second"], True),
        ("CPU-seconds per million relayed packets (uclient)", c["cpu_seconds_per_million_packets"], t["cpu_seconds_per_million_packets"], False),
        ("allocations/s (64 in flight)", c["churn"]["per_second"], t["churn"]["per_second"], True),
        ("allocations per server CPU-second", c["churn"]["per_cpu_second"], t["churn"]["per_cpu_second"], True),
        ("allocation p99 latency, ms", c["churn"]["p99_ms"], t["churn"]["p99_ms"], False),
        (f"RSS per held allocation, KiB ({hold} held)", c["memory"]["kib_per_allocation"], t["memory"]["kib_per_allocation"], False),
        ("RSS kept per allocation after release, KiB", c["memory"]["kib_retained_per_allocation_after_release"], t["memory"]["kib_retained_per_allocation_after_release"], False),
    ]
    print()
    print(f"| figure | coturn | Tandem | Tandem / coturn |")
    print(f"| --- | ---: | ---: | ---: |")
    for label, cv, tv, _ in rows:
        print(f"| {label} | {cv:,.1f} | {tv:,.1f} | {ratio(tv, cv):.2f} |")
    for key, label in (("rate_relayed_per_cpu_second_by_round", "turn-load relay"), ("relayed_per_cpu_second_by_round", "uclient")):
        each = [ratio(tv, cv) for tv, cv in zip(t[key], c[key])]
        print(f"\nTandem / coturn relayed packets per CPU-second by round ({label}): " + ", ".join(f"{x:.2f}" for x in each))
    if variants:
        print("\n| server | pkt per CPU-s, turn-load | ÷ coturn | pkt per CPU-s, uclient | ÷ coturn | turn-load RTT p50 by rate, ms |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for name in ("coturn", "tandem", *variants):
            r = results[name]
            rtts = " / ".join(f"{x.get('rtt_p50_ms', 0):.2f}" for x in r["rates"] if x["round"] == 0)
            print(f"| {name} | {r['rate_relayed_per_cpu_second']:,.0f} | {ratio(r['rate_relayed_per_cpu_second'], c['rate_relayed_per_cpu_second']):.2f} | "
                  f"{r['relayed_per_cpu_second']:,.0f} | {ratio(r['relayed_per_cpu_second'], c['relayed_per_cpu_second']):.2f} | {rtts} |")
    return rows


def write_json(path, quick, results, rows):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"quick": quick, "results": results,
                   "table": [{"figure": l, "coturn": cv, "tandem": tv, "ratio": ratio(tv, cv)} for l, cv, tv, _ in rows]},
                  f, indent=2)
    print(f"\nJSON: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (for checking the harness)")
    ap.add_argument("--json", help="where the JSON goes (default .build-bench/turn.json; with --summarize, only when given)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--summarize", metavar="FILE", help="print the table again from a run's JSON (summed again with this version's rules) and exit")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the relay steps, each server in turn (default 2)")
    ap.add_argument("--variant", type=parse_variant, action="append", default=[],
                    help="another Tandem in the relay steps, started with these environment variables: NAME:KEY=VALUE[,KEY=VALUE…]")
    ap.add_argument("--guest-halt-poll-us", type=int, help="a VM guest: idle cores poll this long before they halt, for the run (as the media benchmark's option; both servers see it)")
    args = ap.parse_args()
    if args.summarize:
        with open(args.summarize) as f:
            saved = json.load(f)
        results = saved["results"]
        for r in servers_of(results).values():
            summarize(r)
        rows = report(results)
        if args.json:
            write_json(args.json, saved.get("quick", False), results, rows)
        return
    args.json = args.json or os.path.join(ROOT, ".build-bench", "turn.json")
    args.variants = dict(args.variant)
    args.clients = [20, 50] if args.quick else [100, 200, 400]
    args.rates = [5000, 10000] if args.quick else [10000, 20000, 30000, 40000]
    args.rate_clients = 50 if args.quick else 200
    args.rate_seconds = 3 if args.quick else 8
    args.messages = 200 if args.quick else 1000
    args.rounds = 1 if args.quick else args.rounds
    args.churn_seconds = 3 if args.quick else 10
    args.hold = 500 if args.quick else 2000
    for tool in ("turnserver", "turnutils_uclient", "turnutils_peer", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install coturn util-linux")
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "tandem"], cwd=ROOT, check=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "turn-load"], cwd=ROOT, check=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    workdir = tempfile.mkdtemp(prefix="tandem-bench-turn-")
    peer_port = free_port()
    peer = subprocess.Popen(["taskset", "-c", LOAD_CORE, "turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.3)
    try:
        with GuestHaltPoll(args.guest_halt_poll_us) as halt_poll:
            results = run_rounds(args, workdir, peer_port)
        results["guest_halt_poll_ns"] = halt_poll.value
    finally:
        os.killpg(peer.pid, signal.SIGTERM)
        peer.wait()
    rows = report(results)
    write_json(args.json, args.quick, results, rows)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
