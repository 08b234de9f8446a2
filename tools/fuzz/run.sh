#!/usr/bin/env bash
# Builds and runs the STUN/ChannelData fuzzer (libFuzzer via Swift's -sanitize=fuzzer).
#   tools/fuzz/run.sh                 # fuzz until stopped (Ctrl-C), new inputs kept in .build-fuzz/corpus
#   tools/fuzz/run.sh --smoke         # a bounded run (seconds given by FUZZ_SECONDS, default 30), as in `make test`
#   tools/fuzz/run.sh FILE...         # replay crash files
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
scratch="$root/.build-fuzz"
swift build --package-path "$here" --scratch-path "$scratch" -c debug \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product STUNFuzzer
bin="$scratch/debug/STUNFuzzer"
work="$scratch/corpus"
mkdir -p "$work"
if [ "${1:-}" = "--smoke" ]; then
    seconds="${FUZZ_SECONDS:-30}"
    "$bin" -max_total_time="$seconds" -max_len=2048 -rss_limit_mb=2048 -print_final_stats=1 "$work" "$here/corpus/stun"
    echo "fuzz smoke run: no crash in ${seconds}s"
elif [ "$#" -gt 0 ]; then
    "$bin" "$@"
else
    "$bin" -max_len=4096 "$work" "$here/corpus/stun"
fi
