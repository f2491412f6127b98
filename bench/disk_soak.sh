#!/usr/bin/env bash
# disk_soak.sh — disk use stays level under steady traffic once the
# retention window is reached: ricochetd relays a steady load to smtp-sink
# with short retention windows (decisions and messages 60 s, the event log
# rotated past 256 KiB and 4 segments kept), and every 10 s the state store
# (with its WAL), the event log (every segment), the spool and the daemon's
# RSS are sampled. Prints the samples (TSV) and, for each, the maximum of
# the first and of the second half of the run after the first window:
# level when the second half is not larger than the first by more than 20%.
#
#   bench/disk_soak.sh [SECONDS=600] [RATE=100 messages/s]
#
# A measurement for the README, not a test (the hour-long soak with mixed
# outcomes is issue 22's). Needs smtp-source/smtp-sink (Debian's postfix),
# python3. Env: RICOCHET_BUILD=dir. Every loop is bounded; the daemon, the
# load and the sink are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600} RATE=${2:-100}
for c in smtp-source smtp-sink python3; do
  command -v "$c" >/dev/null || { echo "bench/disk_soak.sh: missing $c" >&2; exit 77; }
done
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
W=$(mktemp -d /tmp/ricochet-soak.XXXXXX)
RPID= SPID= LPID=
cleanup() {
  for p in $LPID $RPID $SPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
source bench/lib.sh
IN=$(bench_port) SINK=$(bench_port) BNC=$(bench_port)
bench_relay_config 'events_max_size = "256KiB"
events_keep = 4' '[retention]
decisions = "60s"
messages = "60s"
free_files = 1000'
bench_start
# The load: RATE messages a second, in bursts of one second.
( end=$((SECONDS + SECS)); while [ $SECONDS -lt $end ]; do
    t0=$(date +%s%N); smtp-source -s 10 -m "$RATE" -l 2048 -f s@bench.invalid -t r@example.com "127.0.0.1:$IN" >/dev/null 2>&1 || true
    dt=$(( ($(date +%s%N) - t0) / 1000000 )); [ $dt -lt 1000 ] && sleep "0.$(printf %03d $((1000 - dt)))"
  done ) &
LPID=$!
python3 - "$W" "$SECS" "$RPID" <<'PY'
import os, sys, time
w, secs, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try: total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError: pass
    return total
def size(*names):
    t = 0
    for n in os.listdir(w):
        if any(n.startswith(x) for x in names):
            try: t += os.lstat(os.path.join(w, n)).st_blocks * 512
            except FileNotFoundError: pass
    return t
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))
rows = []
print("t_s\tstate_KiB\tevents_KiB\tspool_KiB\trss_MiB")
start = time.time()
while time.time() - start < secs:
    time.sleep(10)
    r = (int(time.time() - start), size("state.db") // 1024, size("events.jsonl") // 1024, du(os.path.join(w, "spool")) // 1024, rss() / 2**20)
    rows.append(r)
    print("%d\t%d\t%d\t%d\t%.1f" % r, flush=True)
after = [r for r in rows if r[0] > 120]  # past the first window (and a prune pass)
half = len(after) // 2
ok = True
for i, name in [(1, "state"), (2, "events"), (3, "spool"), (4, "rss")]:
    a = max(r[i] for r in after[:half]); b = max(r[i] for r in after[half:])
    level = b <= a * 1.2 + 64
    ok = ok and level
    print(f"{name:7s} first half max {a:10.1f}  second half max {b:10.1f}  {'level' if level else 'GROWING'}")
sys.exit(0 if ok else 1)
PY
