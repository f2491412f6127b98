#!/usr/bin/env bash
# one_connection.sh — acceptance over ONE submission connection, Ricochet and
# Postfix side by side in one run, each relaying to a local smtp-sink, with
# bench/pipeline.py as the client in each of its modes (lockstep, pipelined,
# bdat: see its header) and, for the machine's limit, the same client
# straight into smtp-sink (no MTA). Both MTAs answer 250 only after fsync.
# A mode a server does not offer (CHUNKING) prints "not offered".
#
#   bench/one_connection.sh [N=3000] [SIZE=4096] [REPS=3]
#
# Prints, per mode, the median messages/s of each and Ricochet / Postfix.
# Needs root (Postfix), smtp-sink (Debian's postfix), python3. Every wait is
# bounded; everything it started is stopped at the end. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3000} SIZE=${2:-4096} REPS=${3:-3}
HARNESS=bench/harness
[ "$(id -u)" = 0 ] || { echo "bench/one_connection.sh: needs root (it runs a Postfix instance)" >&2; exit 77; }
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
. bench/lib.sh
W=$(mktemp -d /tmp/ricochet-onecon.XXXXXX)
chmod 755 "$W"
PFB=$W/pfbench
IN=$(bench_port) SINK=$(bench_port) BNC=$(bench_port) PIN=$(bench_port)
RPID= SPID=
cleanup() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
  PFB=$PFB bash "$HARNESS/postfix/pfbench.sh" stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

bench_relay_config "" ""
bench_start  # smtp-sink on $SINK, ricochetd on $IN
IN_PORT=$PIN OUT_PORT=$SINK CONC=20 PFB=$PFB bash "$HARNESS/postfix/pfbench.sh" setup >/dev/null
PFB=$PFB bash "$HARNESS/postfix/pfbench.sh" start >/dev/null 2>&1
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PIN") 2>/dev/null && break; sleep 0.05; done

run() {  # run LABEL PORT MODE -> appends "LABEL MODE rate" or "LABEL MODE none"
  local out rc=0
  out=$(timeout 600 python3 bench/pipeline.py 127.0.0.1 "$2" "$N" "$SIZE" "$3" 2>"$W/err") || rc=$?
  if [ "$rc" = 0 ]; then
    echo "$1 $3 $(echo "$out" | awk '{print $4}')" >>"$W/rates"
  elif grep -q "does not offer" "$W/err"; then
    echo "$1 $3 none" >>"$W/rates"
  else
    echo "$1 $3 failed: $out $(cat "$W/err")" >&2
    echo "$1 $3 failed" >>"$W/rates"
  fi
}
# Each MTA's deliveries end before the next run starts (bounded waits), so
# neither competes with the other's client for the 2 cores.
ricochet_drained() {
  timeout 300 bash -c "until $B/bin/ricochetctl --config $W/r.toml queue summary --json | python3 -c \"import json,sys; sys.exit(json.load(sys.stdin)['total']['messages'] != 0)\"; do sleep 0.2; done" || true
}
for r in $(seq 1 "$REPS"); do
  for mode in lockstep pipelined bdat; do
    run no-mta "$SINK" "$mode"
    run ricochet "$IN" "$mode"
    ricochet_drained
    run postfix "$PIN" "$mode"
    PFB=$PFB timeout 300 bash "$HARNESS/postfix/pfbench.sh" wait-empty >/dev/null 2>&1 || true
  done
done
python3 - "$W/rates" "$N" "$SIZE" "$REPS" <<'PY'
import statistics, sys
path, n, size, reps = sys.argv[1:]
rates = {}
for line in open(path):
    label, mode, rate = line.split()[:3]
    rates.setdefault((label, mode), []).append(rate)
def med(label, mode):
    v = rates.get((label, mode), [])
    if not v or any(x == "failed" for x in v):
        return None, "failed" if v else "-"
    if all(x == "none" for x in v):
        return None, "not offered"
    m = statistics.median(float(x) for x in v if x != "none")
    return m, "%.0f" % m
print(f"# one connection, {n} messages of {size} octets, median of {reps} reps (messages/s)")
print("%-10s %12s %12s %12s %10s" % ("mode", "no-mta", "ricochet", "postfix", "ric/pf"))
for mode in ("lockstep", "pipelined", "bdat"):
    (c, ct), (r, rt), (p, pt) = med("no-mta", mode), med("ricochet", mode), med("postfix", mode)
    ratio = "%.2fx" % (r / p) if r and p else "-"
    print("%-10s %12s %12s %12s %10s" % (mode, ct, rt, pt, ratio))
PY
