#!/usr/bin/env bash
# Captures real SIP traffic for the parser's unit tests: Kamailio as registrar (kamailio.cfg),
# sipp registering with digest and pinging with OPTIONS (register.xml), baresip registering,
# all inside a lo-only network namespace. Writes each message to
# Tests/SIPTests/Fixtures/<sender>-<n>.sip (sender: kamailio, sipp, baresip).
#   sudo tools/interop/sip/capture-fixtures.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$root/Tests/SIPTests/Fixtures"
work="$(mktemp -d)"
ns="tandem-sip-capture-$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
# `ip netns exec` execs the command, so $! of a backgrounded one is the peer's own PID.
ip netns exec "$ns" dumpcap -q -i lo -f "udp port 5060" -w "$work/sip.pcap" 2>/dev/null &
capture=$!
pids+=("$capture")
sleep 1
mkdir -p "$work/kamailio"
ip netns exec "$ns" kamailio -f "$here/kamailio.cfg" -DD -E -Y "$work/kamailio" > "$work/kamailio.log" 2>&1 &
kamailio=$!
pids+=("$kamailio")
sleep 1
in_ns() { ip netns exec "$ns" "$@"; }

(cd "$work" && in_ns sipp 127.0.0.1:5060 -sf "$here/register.xml" -i 127.0.0.1 -p 5070 -m 1 -timeout 10s -nostdin > "$work/sipp.log" 2>&1) \
    || { tail -30 "$work/sipp.log"; exit 1; }

mkdir -p "$work/baresip"
cat > "$work/baresip/accounts" <<ACCOUNTS
<sip:1001@127.0.0.1;transport=udp>;auth_pass=pw1001;regint=300;answermode=auto;audio_codecs=PCMU
ACCOUNTS
cat > "$work/baresip/config" <<CONFIG
sip_listen 127.0.0.1:5080
net_interface 127.0.0.1
module_path /usr/lib/baresip/modules
module g711.so
module account.so
audio_player aufile,/dev/null
audio_source aufile,/dev/null
CONFIG
in_ns timeout 4 baresip -f "$work/baresip" > "$work/baresip.log" 2>&1 || true
sleep 0.5

kill "$kamailio" 2>/dev/null || true
sleep 0.5
kill -INT "$capture" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$capture" 2>/dev/null || break; sleep 0.1; done

mkdir -p "$out"
tshark -r "$work/sip.pcap" -T fields -e udp.srcport -e udp.dstport -e udp.payload -Y udp > "$work/packets.tsv"
python3 - "$work/packets.tsv" "$out" <<'PY'
import sys, os, binascii
names = {"5060": "kamailio", "5070": "sipp", "5080": "baresip"}
counts = {}
for line in open(sys.argv[1]):
    parts = line.strip().split("\t")
    if len(parts) < 3 or not parts[2]:
        continue
    sender = names.get(parts[0], "peer")
    payload = binascii.unhexlify(parts[2].replace(":", ""))
    if not payload.strip():
        continue
    counts[sender] = counts.get(sender, 0) + 1
    with open(os.path.join(sys.argv[2], f"{sender}-{counts[sender]}.sip"), "wb") as f:
        f.write(payload)
print("captured:", ", ".join(f"{n} from {s}" for s, n in sorted(counts.items())))
PY
