#!/usr/bin/env bash
# Builds and runs the fuzz targets (libFuzzer via Swift's -sanitize=fuzzer):
#   STUNFuzzer (STUN/ChannelData), SDPFuzzer (SDP), RTPFuzzer (RTP header, RTCP compound),
#   SRTPFuzzer (SRTP/SRTCP AEAD_AES_128_GCM unprotect, and protect/unprotect round trips),
#   SIPFuzzer (SIP messages as datagrams and as a framed stream; serialize/parse round trips).
#   tools/fuzz/run.sh [TARGET]                 # fuzz until stopped (Ctrl-C); new inputs kept in .build-fuzz/corpus-TARGET
#   tools/fuzz/run.sh --smoke [TARGET...]      # bounded runs (FUZZ_SECONDS each, default 30), as in `make test`; all targets by default
#   tools/fuzz/run.sh --replay TARGET FILE...  # replay crash files
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
scratch="$root/.build-fuzz"
all=(STUNFuzzer SDPFuzzer RTPFuzzer SRTPFuzzer SIPFuzzer)

corpus_of() {
    case "$1" in
        STUNFuzzer) echo "$here/corpus/stun" ;;
        SDPFuzzer) echo "$here/corpus/sdp" ;;
        RTPFuzzer|SRTPFuzzer) echo "$here/corpus/rtp" ;;
        SIPFuzzer) echo "$here/corpus/sip" ;;
        *) echo "unknown fuzz target $1 (${all[*]})" >&2; exit 2 ;;
    esac
}

build() {
    swift build --package-path "$here" --scratch-path "$scratch" -c debug \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product "$1"
}

case "${1:-}" in
    --smoke)
        shift
        targets=("$@")
        [ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
        seconds="${FUZZ_SECONDS:-30}"
        for t in "${targets[@]}"; do
            seeds="$(corpus_of "$t")"
            build "$t"
            mkdir -p "$scratch/corpus-$t"
            "$scratch/debug/$t" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 "$scratch/corpus-$t" "$seeds"
            echo "fuzz smoke run of $t: no crash in ${seconds}s"
        done
        ;;
    --replay)
        t="$2"
        shift 2
        build "$t"
        "$scratch/debug/$t" "$@"
        ;;
    *)
        t="${1:-STUNFuzzer}"
        seeds="$(corpus_of "$t")"
        build "$t"
        mkdir -p "$scratch/corpus-$t"
        "$scratch/debug/$t" -max_len=8192 "$scratch/corpus-$t" "$seeds"
        ;;
esac
