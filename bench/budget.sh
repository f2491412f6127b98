#!/usr/bin/env bash
# budget.sh — where the CPU goes when Ricochet relays on this machine, and
# what that means for the "% of the no-MTA ceiling" figure of bench/relay.sh.
#
# The ceiling is smtp-source sending straight into smtp-sink: one SMTP hop.
# A relay adds a second hop on the same cores (it receives every message
# like smtp-sink and sends it again like smtp-source), so its share of the
# ceiling is bounded by CPU before any queue or disk work. This script runs
# both, in one run, and measures CPU time per message of each process (user
# + system, /proc) and of the whole machine (/proc/stat):
#   no-mta   smtp-source -> smtp-sink
#   relay    smtp-source -> ricochetd -> smtp-sink
# and prints:
#   - the per-message budget of each run (source, sink, ricochetd, the rest:
#     the kernel's softirq and writeback work, other processes);
#   - the highest relay rate the machine's cores allow with Ricochet's
#     measured CPU per message, as a % of the ceiling;
#   - the same for an ideal relay that spends only what one SMTP receive
#     plus one SMTP send cost in the no-MTA run (smtp-sink's and
#     smtp-source's CPU per message there): no queue, no fsync, no state.
#
#   bench/budget.sh [N=20000] [SIZE=4096] [CONC=50]
# Env: RICOCHET_BUILD=dir (default: scripts/build.sh, then build/).
# Needs smtp-source/smtp-sink (Debian's postfix package), python3.
# Every wait is bounded; the sink and the daemon are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000} SIZE=${2:-4096} CONC=${3:-50}
command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null ||
  { echo "bench/budget.sh: needs smtp-source and smtp-sink (apt-get install postfix)" >&2; exit 77; }
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
. bench/lib.sh
W=$(mktemp -d /tmp/ricochet-budget.XXXXXX)
chmod 755 "$W"
RPID= SPID=
cleanup() {
  for p in $RPID $SPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
CORES=$(nproc)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }            # user+system, 1/100 s
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }  # busy (user, nice, system, irq, softirq), 1/100 s

# run LABEL TARGET_PORT: smtp-source into TARGET_PORT; prints one line of
# figures (rate, then µs per message: source, sink, ricochetd, machine).
run() {
  local label=$1 target=$2 m0 m1 r0=0 r1=0 k0 k1 s e
  m0=$(machine); k0=$(ticks "$SPID"); [ -n "$RPID" ] && r0=$(ticks "$RPID")
  s=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$W/src.time" \
    smtp-source -s "$CONC" -m "$N" -l "$SIZE" -r 1 -f bench@example.net -t rcpt@example.com "127.0.0.1:$target"
  # A relay has relayed everything once its queue is empty (bounded: 120 s).
  if [ -n "$RPID" ]; then
    for _ in $(seq 1 2400); do
      [ -z "$(find "$W/spool/active" "$W/spool/deferred" -type f 2>/dev/null | head -1)" ] && break
      sleep 0.05
    done
  fi
  e=$(date +%s.%N)
  m1=$(machine); k1=$(ticks "$SPID"); [ -n "$RPID" ] && r1=$(ticks "$RPID")
  read -r su ss <"$W/src.time"
  python3 - "$label" "$N" "$s" "$e" "$su" "$ss" "$k0" "$k1" "$r0" "$r1" "$m0" "$m1" <<'PY' | tee -a "$W/runs.txt"
import sys
label, n = sys.argv[1], int(sys.argv[2])
s, e, su, ss = map(float, sys.argv[3:7])
k0, k1, r0, r1, m0, m1 = map(int, sys.argv[7:13])
us = lambda t: t * 1e4 / n  # ticks (1/100 s) -> µs per message
src, sink, rico, mach = (su + ss) * 1e6 / n, us(k1 - k0), us(r1 - r0), us(m1 - m0)
print(f"{label} {n / (e - s):.0f} {src:.0f} {sink:.0f} {rico:.0f} {mach:.0f}")
PY
}

IN=$(bench_port) SINK=$(bench_port) BNC=$(bench_port)
bench_relay_config "" ""
# The no-MTA run first (the daemon is not started yet: nothing else runs).
smtp-sink $([ "$(id -u)" = 0 ] && echo "-u nobody") "127.0.0.1:$SINK" 1000 &
SPID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$SINK") 2>/dev/null && break; sleep 0.05; done
run no-mta "$SINK" >/dev/null
kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
bench_start
[ -n "$RPID" ] && kill -0 "$RPID" || { echo "ricochetd did not start: $(tail -5 "$W/ricochetd.log")" >&2; exit 1; }
run relay "$IN" >/dev/null

python3 - "$CORES" "$N" "$SIZE" "$CONC" "$W/runs.txt" <<'PY'
import sys
cores, n, size, conc = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
runs = {}
for line in open(sys.argv[5]):
    label, *v = line.split()
    runs[label] = list(map(float, v))
c_rate, c_src, c_sink, _, c_mach = runs["no-mta"]
r_rate, r_src, r_sink, r_rico, r_mach = runs["relay"]
print(f"# CPU budget: {n} messages of {size} octets, {conc} connections, {cores} cores")
print(f"{'run':8} {'msgs/s':>8} {'source':>8} {'sink':>8} {'ricochetd':>10} {'rest':>8} {'machine':>8}   (µs of CPU per message)")
for label, (rate, src, sink, rico, mach) in runs.items():
    print(f"{label:8} {rate:8.0f} {src:8.0f} {sink:8.0f} {rico:10.0f} {mach - src - sink - rico:8.0f} {mach:8.0f}")
budget = cores * 1e6  # µs of CPU per second
others = r_mach - r_rico  # what the relay run spent outside ricochetd, per message
ideal = c_src + c_sink    # one SMTP receive plus one SMTP send, as cheap as the no-MTA run's tools
print(f"relay: {r_rate / c_rate:.0%} of the ceiling ({r_rate:.0f} of {c_rate:.0f}/s); machine busy "
      f"{r_rate * r_mach / budget:.0%} of {cores} cores")
print(f"cores' limit with ricochetd's {r_rico:.0f} µs/message: {budget / r_mach:.0f}/s = {budget / r_mach / c_rate:.0%} of the ceiling")
print(f"cores' limit for an ideal relay ({ideal:.0f} µs/message: one receive + one send, no queue): "
      f"{budget / (others + ideal):.0f}/s = {budget / (others + ideal) / c_rate:.0%} of the ceiling")
print(f"ricochetd's CPU per message that 60% of the ceiling needs: {budget / (0.6 * c_rate) - others:.0f} µs")
PY
