#!/usr/bin/env bash
# one_connection.sh — acceptance over ONE submission connection (or CONNS
# of them), Ricochet and Postfix side by side in one run, each relaying to a
# local smtp-sink, with bench/pipeline.py as the client in each of its modes
# (lockstep, pipelined, bdat: see its header) and, for the machine's limit,
# the same client straight into smtp-sink (no MTA). Both MTAs answer 250
# only after fsync. A mode a server does not offer (CHUNKING) prints "not
# offered".
#
#   bench/one_connection.sh [N=3000] [SIZE=4096] [REPS=3] [CONNS=1]
#
# Prints, per mode, the median accepted messages/s of each (N over the
# client's time from its first command to its last reply), the median
# relayed messages/s (N over the time from the client's first command until the
# sink has counted all N), and Ricochet / Postfix for both.
# Needs root (Postfix), smtp-sink (Debian's postfix), python3. Every wait is
# bounded; everything it started is stopped at the end. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3000} SIZE=${2:-4096} REPS=${3:-3} CONNS=${4:-1}
HARNESS=bench/harness
[ "$(id -u)" = 0 ] || { echo "bench/one_connection.sh: needs root (it runs a Postfix instance)" >&2; exit 77; }
command -v postfix >/dev/null && command -v smtp-sink >/dev/null ||
  { echo "bench/one_connection.sh: needs Postfix and smtp-sink (apt-get install postfix)" >&2; exit 77; }
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
. bench/lib.sh
W=$(mktemp -d /tmp/ricochet-onecon.XXXXXX)
chmod 755 "$W"
PFB=$W/pfbench
IN=$(bench_port) SINK=$(bench_port) BNC=$(bench_port) PIN=$(bench_port)
RPID= SPID=
trap bench_cleanup EXIT

bench_relay_config "" ""
SINK_LOG=$W/sink.log bench_start  # smtp-sink on $SINK (counting), ricochetd on $IN
bench_postfix_start $((CONNS > 20 ? CONNS : 20))

run() {  # run LABEL PORT MODE -> appends "LABEL MODE accepted relayed", "LABEL MODE none" or "... failed"
  local out rc=0
  out=$(N=$N SINK_LOG=$W/sink.log timeout 900 python3 - 127.0.0.1 "$2" "$N" "$SIZE" "$3" 32 "$CONNS" 2>"$W/err" <<'PY'
# Runs bench/pipeline.py, then waits (bounded) until the sink has counted N
# more messages than before it started: prints "accepted/s relayed/s".
import os, re, subprocess, sys, time
n, log = int(os.environ["N"]), os.environ["SINK_LOG"]
def sink_count():  # smtp-sink -c: "sess=A quit=B mesg=C" records ending in \r
    with open(log, "rb") as f:
        f.seek(0, 2); f.seek(max(0, f.tell() - 256)); data = f.read()
    for r in reversed(data.split(b"\r")[:-1]):
        m = re.search(rb"mesg=(\d+)", r)
        if m:
            return int(m.group(1))
    return 0
before = sink_count()
p = subprocess.run([sys.executable, "bench/pipeline.py"] + sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(p.stderr)
if p.returncode != 0:
    print(p.stdout.strip()); sys.exit(p.returncode)
t0 = float(p.stdout.split()[5])  # the client's first command
waited = time.monotonic()
while sink_count() < before + n:
    if time.monotonic() - waited > 600:
        sys.exit("the sink has %d of %d after 600 s" % (sink_count() - before, n))
    time.sleep(0.005)
print(p.stdout.split()[3], "%.0f" % (n / (time.monotonic() - t0)))
PY
) || rc=$?
  if [ "$rc" = 0 ]; then
    echo "$1 $3 $out" >>"$W/rates"
  elif grep -q "does not offer" "$W/err"; then
    echo "$1 $3 none" >>"$W/rates"
  else
    echo "$1 $3 failed: $out $(cat "$W/err")" >&2
    echo "$1 $3 failed" >>"$W/rates"
  fi
}
# Each MTA's deliveries end before the next run starts (bounded waits), so
# neither competes with the other's client for the 2 cores.
# A queue that does not drain would leak its late deliveries into the next
# run's count: the script then exits non-zero.
DRAIN_FAILED=0
ricochet_drained() {
  timeout 300 bash -c "until $B/bin/ricochetctl --config $W/r.toml queue summary --json | python3 -c \"import json,sys; sys.exit(json.load(sys.stdin)['total']['messages'] != 0)\"; do sleep 0.2; done" ||
    { echo "ricochet's queue did not drain in 300 s" >&2; DRAIN_FAILED=1; }
}
for r in $(seq 1 "$REPS"); do
  for mode in lockstep pipelined bdat; do
    run no-mta "$SINK" "$mode"
    run ricochet "$IN" "$mode"
    ricochet_drained
    run postfix "$PIN" "$mode"
    PFB=$PFB timeout 300 bash "$HARNESS/postfix/pfbench.sh" wait-empty >/dev/null 2>&1 ||
      { echo "postfix's queue did not drain in 300 s" >&2; DRAIN_FAILED=1; }
  done
done
python3 - "$W/rates" "$N" "$SIZE" "$REPS" "$CONNS" <<'PY'
import statistics, sys
path, n, size, reps, conns = sys.argv[1:]
rates = {}
for line in open(path):
    f = line.split()
    rates.setdefault((f[0], f[1]), []).append(f[2:])
def med(label, mode, col):
    v = rates.get((label, mode), [])
    if not v or any(x[0] == "failed" for x in v):
        return None, "failed" if v else "-"
    if all(x[0] == "none" for x in v):
        return None, "not offered"
    m = statistics.median(float(x[col]) for x in v if x[0] != "none")
    return m, "%.0f" % m
what = "one connection" if conns == "1" else conns + " connections"
print(f"# {what}, {n} messages of {size} octets, median of {reps} reps (messages/s)")
for col, name in ((0, "accepted"), (1, "relayed")):
    print("%-10s %12s %12s %12s %10s" % (name, "no-mta", "ricochet", "postfix", "ric/pf"))
    for mode in ("lockstep", "pipelined", "bdat"):
        (c, ct), (r, rt), (p, pt) = med("no-mta", mode, col), med("ricochet", mode, col), med("postfix", mode, col)
        ratio = "%.2fx" % (r / p) if r and p else "-"
        print("%-10s %12s %12s %12s %10s" % (mode, ct, rt, pt, ratio))
PY
# Non-zero when any run failed (a mode a server does not offer is not a failure).
FAILED=$DRAIN_FAILED
grep -q " failed$" "$W/rates" && FAILED=1
exit "$FAILED"
