#!/usr/bin/env bash
# phases.sh — where a lockstep client's time goes, step by step (connect and
# greeting, EHLO, MAIL, RCPT, DATA, the message to its 250, QUIT), with
# Ricochet, Postfix and smtp-sink alone, each while CONC-1 other clients
# (smtp-source, a new connection per message, as in bench/relay.sh) load it.
# The client is bench/phases.py. Both MTAs relay to one local smtp-sink and
# answer 250 only after fsync.
#
#   bench/phases.sh [CONC=5] [N=1000] [SIZE=4096]
#
# Prints a table of median and 90th-percentile microseconds per step.
# Needs root (Postfix), smtp-source/smtp-sink (Debian's postfix), python3.
# Every wait is bounded; everything it started is stopped. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
CONC=${1:-5} N=${2:-1000} SIZE=${3:-4096}
[ "$(id -u)" = 0 ] || { echo "bench/phases.sh: needs root (it runs a Postfix instance)" >&2; exit 77; }
command -v postfix >/dev/null && command -v smtp-sink >/dev/null && command -v smtp-source >/dev/null ||
  { echo "bench/phases.sh: needs Postfix, smtp-source and smtp-sink (apt-get install postfix)" >&2; exit 77; }
[ "$CONC" -ge 1 ] || { echo "bench/phases.sh: CONC must be at least 1" >&2; exit 2; }
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
. bench/lib.sh
W=$(mktemp -d /tmp/ricochet-phases.XXXXXX)
chmod 755 "$W"
PFB=$W/pfbench
IN=$(bench_port) SINK=$(bench_port) BNC=$(bench_port) PIN=$(bench_port)
RPID= SPID= LPID=
cleanup() {
  [ -z "$LPID" ] || { kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null; } || true
  bench_cleanup
}
trap cleanup EXIT

bench_relay_config "" ""
bench_start  # smtp-sink on $SINK, ricochetd on $IN
bench_postfix_start $((CONC > 20 ? CONC : 20))

measure() {  # measure LABEL PORT: the other clients load PORT while phases.py runs
  LPID=
  if [ "$CONC" -gt 1 ]; then
    smtp-source -s $((CONC - 1)) -m 100000000 -l "$SIZE" -r 1 -f bench@example.net -t rcpt@example.com \
      "127.0.0.1:$2" >/dev/null 2>&1 &
    LPID=$!
  fi
  timeout 900 python3 bench/phases.py "$2" "$N" "$SIZE" >"$W/$1" || { echo "bench/phases.sh: $1 failed" >&2; exit 1; }
  if [ -n "$LPID" ]; then
    # The load must have lasted the whole measurement, or the figures are not under load.
    kill -0 "$LPID" 2>/dev/null || { echo "bench/phases.sh: the load on $1 ended early (smtp-source failed)" >&2; exit 1; }
    kill "$LPID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true; LPID=
  fi
}
measure ricochet "$IN"
measure postfix "$PIN"
measure sink "$SINK"

echo "# $N transactions of $SIZE bytes, $((CONC - 1)) other client(s) loading the server; microseconds, median / 90th percentile"
printf '%-18s %17s %17s %17s\n' step Ricochet Postfix smtp-sink
paste "$W/ricochet" "$W/postfix" "$W/sink" |
  awk '{printf "%-18s %8s / %6s %8s / %6s %8s / %6s\n", $1, $2, $3, $5, $6, $8, $9; r += $2; p += $5; s += $8}
       END {printf "%-18s %17s %17s %17s\n", "sum of medians", r, p, s}'
