#!/usr/bin/env bash
# relay.sh — Ricochet and Postfix as relays on this machine, measured side by
# side in one run with the team's harness (bench/harness/relay_bench.sh:
# smtp-source -> MTA -> smtp-sink, all on 127.0.0.1). Both keep durability
# (250 only after fsync). The same run measures the machine's two limits:
#   no-mta   smtp-source straight into smtp-sink (relay_bench.sh with
#            IN_PORT == OUT_PORT): the loopback / load-generator ceiling;
#   fsync/s  bench/harness/fsync_rate.py on the directory that holds
#            Ricochet's spool: durable writes per second of that disk.
# Prints each MTA's accepted and relayed messages/s and peak RSS, the ratios
# Ricochet/Postfix and Ricochet/no-mta, and the fsync rates.
#
#   bench/relay.sh [N=10000] [SIZE=4096] [CONC=50] [REPS=1]
#   BASELINE=other-build/ bench/relay.sh ...   also runs that build's ricochetd
#       (an A/B in the same run, reps alternating) and prints the ratio;
#       with AB_ONLY=1 nothing else (no ceiling, fsync or Postfix runs)
#   RICOCHET_STATE=url / BASELINE_STATE=url   server.state of this build's /
#       the baseline's runs (default SQLite in the work directory)
#   RICOCHET_EXTRA=text / BASELINE_EXTRA=text   TOML appended to the
#       configuration of this build's / the baseline's runs (BASELINE may be
#       this build: bench/dkim.sh compares DKIM on and off that way)
#   RICOCHET_SERVER_EXTRA=text / BASELINE_SERVER_EXTRA=text   the same, in
#       the [server] table (BASELINE_SERVER_EXTRA='spool_journal = false'
#       compares the journal with a syncfs per commit)
#
# Env: RICOCHET_BUILD=dir  use dir/bin (default: scripts/build.sh, then build/bin;
#                          when set, nothing is built)
#      FSYNC_SECS=3 FSYNC_THREADS=1,4,16   passed to fsync_rate.py
# Needs root (Postfix), smtp-source/smtp-sink (Debian's postfix), python3.
# Exit: 0 every figure measured, 1 a figure is missing, 77 not root.
# Every loop is bounded; both MTAs and the sink are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-bench/harness}
N=${1:-10000} SIZE=${2:-4096} CONC=${3:-50} REPS=${4:-1}
FSYNC_SECS=${FSYNC_SECS:-3} FSYNC_THREADS=${FSYNC_THREADS:-1,4,16}
RIN=25250 PIN=25251 SINK=25260 BNC=25261
[ "$(id -u)" = 0 ] || { echo "bench/relay.sh: needs root (it runs a Postfix instance)" >&2; exit 77; }
command -v postfix >/dev/null && command -v smtp-sink >/dev/null ||
  { echo "bench/relay.sh: needs Postfix and smtp-sink (apt-get install postfix)" >&2; exit 77; }
for f in relay_bench.sh fsync_rate.py postfix/pfbench.sh; do
  [ -f "$HARNESS/$f" ] || { echo "missing $HARNESS/$f" >&2; exit 1; }
done
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi

W=$(mktemp -d /tmp/ricochet-bench.XXXXXX)
chmod 755 "$W"  # Postfix's own user works under it too
PFB=$W/pfbench
RPID= MPID=
FAIL=0
cleanup() {
  # Each step may fail (a process already gone) without ending the trap (set -e).
  [ -z "$RPID" ] || { kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; } || true
  if [ -n "$MPID" ]; then touch "$W/rss.stop"; kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; fi
  PFB=$PFB bash "$HARNESS/postfix/pfbench.sh" stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

if [ "${AB_ONLY:-0}" = 1 ] && [ -z "${BASELINE:-}" ]; then echo "AB_ONLY needs BASELINE" >&2; exit 2; fi
# 1. The machine's limits, with no MTA running.
if [ "${AB_ONLY:-0}" != 1 ]; then
LABEL=no-mta bash "$HARNESS/relay_bench.sh" $SINK $SINK "$N" "$SIZE" "$CONC" "$REPS" | tee "$W/ceiling.txt" || FAIL=1
# The spool is $W/spool: the same directory, the same file system.
python3 "$HARNESS/fsync_rate.py" "$W/fsyncbench" "$FSYNC_SECS" "$FSYNC_THREADS" | tee "$W/fsync.txt" || FAIL=1
fi

# 2. Ricochet (and, with BASELINE=dir, a baseline build of it: an A/B in the
# same run, the two alternating rep by rep so drift of the machine hits both).
run_ricochet() {  # run_ricochet LABEL BINDIR OUTFILE REPS
  local label=$1 bin=$2 out=$3 reps=$4 extra=${5:-}
  # The state store: SQLite in the work directory, or RICOCHET_STATE /
  # BASELINE_STATE (a postgresql:// URL: bench/state.sh compares the two).
  local state="sqlite:$W/state.db"
  [ "$label" = ricochet ] && [ -n "${RICOCHET_STATE:-}" ] && state=$RICOCHET_STATE
  [ "$label" = baseline ] && [ -n "${BASELINE_STATE:-}" ] && state=$BASELINE_STATE
  # Keys for [server] (TOML cannot reopen a table, so not in *_EXTRA).
  local server_extra=${RICOCHET_SERVER_EXTRA:-}
  [ "$label" = baseline ] && server_extra=${BASELINE_SERVER_EXTRA:-}
  rm -rf "$W/spool" "$W/state.db"* "$W/events.jsonl"
  cat >"$W/r.toml" <<CFG
[server]
hostname = "ricochet.bench.invalid"
spool_dir = "$W/spool"
state = "$state"
control_socket = "$W/ricochetd.sock"
events_log = "$W/events.jsonl"
log_level = "warn"
$server_extra
[submission]
listen = ["127.0.0.1:$RIN"]
[delivery]
tls = "off"
dns_servers = ["127.0.0.1:9"]
max_connections_per_domain = $CONC
[[delivery.route]]
domain = "example.com"
host = "127.0.0.1:$SINK"
[bounce_listener]
listen = ["127.0.0.1:$BNC"]
[bounce]
rules = "$PWD/etc/bounce-rules.toml"
CFG
  # The API off (a baseline older than [http] refuses the table: then it is left out).
  printf '[http]\nlisten = []\n' >>"$W/r.toml"
  "$bin/ricochetd" --config "$W/r.toml" --check-config >/dev/null 2>&1 || sed -i '/^\[http\]$/,$d' "$W/r.toml"
  [ -z "$extra" ] || printf '%s\n' "$extra" >>"$W/r.toml"
  "$bin/ricochetd" --config "$W/r.toml" >"$W/$label.log" 2>&1 &
  RPID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$RIN") 2>/dev/null && break; sleep 0.05; done
  local empty="timeout 600 bash -c 'until $bin/ricochetctl --config $W/r.toml queue summary --json | python3 -c \"import json,sys; sys.exit(json.load(sys.stdin)[\\\"total\\\"][\\\"messages\\\"] != 0)\"; do sleep 0.2; done'"
  PRE_CMD="$empty" LABEL=$label bash "$HARNESS/relay_bench.sh" $RIN $SINK "$N" "$SIZE" "$CONC" "$reps" >>"$out" || FAIL=1
  local rss; rss=$(awk '/VmHWM/{print $2}' /proc/$RPID/status 2>/dev/null || true)
  echo "$rss" >>"$out.rss"
  # CPU time of the daemon (user + system, all threads) per relayed message, in µs.
  awk -v hz="$(getconf CLK_TCK)" -v n="$((N * reps))" '{print int(($14 + $15) * 1e6 / hz / n)}' \
      "/proc/$RPID/stat" >>"$out.cpu" 2>/dev/null || true
  kill "$RPID"; wait "$RPID" 2>/dev/null || true; RPID=
}
if [ -z "${BASELINE:-}" ]; then
  run_ricochet ricochet "$B/bin" "$W/ricochet.txt" "$REPS" "${RICOCHET_EXTRA:-}"
  cat "$W/ricochet.txt"
  RSS=$(sort -n "$W/ricochet.txt.rss" | tail -1)
else
  for r in $(seq 1 "$REPS"); do
    run_ricochet ricochet "$B/bin" "$W/ricochet.txt" 1 "${RICOCHET_EXTRA:-}"
    run_ricochet baseline "$BASELINE/bin" "$W/baseline.txt" 1 "${BASELINE_EXTRA:-}"
  done
  RSS=$(sort -n "$W/ricochet.txt.rss" | tail -1)
  # Medians over the alternating reps, in relay_bench.sh's own summary
  # form (the table below reads them), and the A/B ratio.
  python3 - "$W/ricochet.txt" "$W/baseline.txt" <<'PY' | tee "$W/ab.txt"
import statistics, sys
def rates(path, label):
    rows = [l.split() for l in open(path)]
    rows = [r for r in rows if len(r) > 5 and r[0] == label and r[1].isdigit()]
    return [float(r[4]) for r in rows if r[4] != "NA"], [float(r[5]) for r in rows if r[5] != "NA"]
def cpu(path):
    try:
        return [float(l) for l in open(path + ".cpu") if l.strip()]
    except OSError:
        return []
new, base = rates(sys.argv[1], "ricochet"), rates(sys.argv[2], "baseline")
cpu_new, cpu_base = cpu(sys.argv[1]), cpu(sys.argv[2])
m = lambda v: statistics.median(v) if v else 0.0
for label, (inj, rel), c in (("ricochet", new, cpu_new), ("baseline", base, cpu_base)):
    print(f"# {label}: {len(rel)} reps")
    print(f"#   inject msgs/s  {m(inj):8.0f}")
    print(f"#   relay msgs/s   {m(rel):8.0f}")
    print(f"#   cpu us/msg     {m(c):8.0f}  (ricochetd, user+system, all threads)")
r = lambda a, b: f"{m(a) / m(b):.3f}" if m(b) else "n/a"
print(f"A/B this build / baseline: accepted {r(new[0], base[0])}  relayed {r(new[1], base[1])}  cpu/msg {r(cpu_new, cpu_base)}")
PY
  awk '/^# ricochet/{p=1} /^# baseline/{p=0} p' "$W/ab.txt" >"$W/ricochet.txt"
fi
[ "${AB_ONLY:-0}" = 1 ] && exit "$FAIL"

# 3. Postfix. Its memory: every 0.5 s, the sum of Pss (and of VmRSS) over the
# master and all its descendants; the peak of those sums. Pss shares each page
# among the processes mapping it; the RSS sum counts shared pages (libraries,
# the master's copy-on-write image) once per process, so it overstates.
IN_PORT=$PIN OUT_PORT=$SINK CONC=$CONC PFB=$PFB bash "$HARNESS/postfix/pfbench.sh" setup >/dev/null
PFB=$PFB bash "$HARNESS/postfix/pfbench.sh" start >/dev/null 2>&1
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PIN") 2>/dev/null && break; sleep 0.05; done
python3 - "$PFB/spool/pid/master.pid" "$W/rss.stop" "$W/pf_rss" <<'PY' &
import os, sys, time
pidfile, stop, out = sys.argv[1:]
def kib(path, key):
    try:
        for line in open(path):
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
best_rss = best_pss = nproc = 0
end = time.monotonic() + 3600
while not os.path.exists(stop) and time.monotonic() < end:
    try:
        master = int(open(pidfile).read().split()[0])
    except (OSError, ValueError, IndexError):
        time.sleep(0.5); continue
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p))
    tree, todo = [], [master]
    while todo:
        p = todo.pop(); tree.append(p); todo += kids.get(p, [])
    rss = sum(kib(f"/proc/{p}/status", "VmRSS:") for p in tree)
    pss = sum(kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in tree)
    if rss > best_rss:
        best_rss, nproc = rss, len(tree)
    best_pss = max(best_pss, pss)
    with open(out + ".tmp", "w") as f:
        f.write(f"{best_rss} {best_pss} {nproc}\n")
    os.replace(out + ".tmp", out)
    time.sleep(0.5)
PY
MPID=$!
PRE_CMD="PFB=$PFB bash $HARNESS/postfix/pfbench.sh wait-empty" LABEL=postfix \
  bash "$HARNESS/relay_bench.sh" $PIN $SINK "$N" "$SIZE" "$CONC" "$REPS" | tee "$W/postfix.txt" || FAIL=1
touch "$W/rss.stop"; for _ in $(seq 1 50); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; MPID=
read -r PF_RSS PF_PSS PF_NPROC < "$W/pf_rss" 2>/dev/null || PF_RSS= PF_PSS= PF_NPROC=

median() { awk -v k="$2" '$0 ~ "#   "k {print $4; exit}' "$1"; }
fsync_rates() { awk '$1 == "create" || $1 == "rewrite" {printf "%s_%s=%s ", $1, $2, $4}' "$1"; }
python3 - "$(median "$W/ricochet.txt" "inject")" "$(median "$W/ricochet.txt" "relay msgs")" \
          "$(median "$W/postfix.txt" "inject")" "$(median "$W/postfix.txt" "relay msgs")" \
          "$(median "$W/ceiling.txt" "inject")" "$(median "$W/ceiling.txt" "relay msgs")" \
          "${RSS:-}" "${PF_RSS:-}" "${PF_PSS:-}" "${PF_NPROC:-}" "$(fsync_rates "$W/fsync.txt")" \
          "$N" "$SIZE" "$CONC" "$REPS" "$FSYNC_THREADS" "$(sort -n "$W/ricochet.txt.cpu" 2>/dev/null | head -1)" \
          "${REUSE:-0}" <<'PY' || FAIL=1
import sys
ri, rr, pi, pr, ci, cr, rss, pf_rss, pf_pss, pf_n, fs, n, size, conc, reps, fs_threads, cpu, reuse = sys.argv[1:]
num = lambda a: a not in ("", "NA") and float(a) > 0
f = lambda a, b: "%.2fx" % (float(a) / float(b)) if num(a) and num(b) else "n/a"
pct = lambda a, b: "%.0f%%" % (100 * float(a) / float(b)) if num(a) and num(b) else "n/a"
mib = lambda k: str(int(k) // 1024) if num(k) else "n/a"
show = lambda a: a if num(a) else "n/a"
fsync = dict(kv.split("=") for kv in fs.split())
want_fsync = [f"{m}_{t}" for m in ("create", "rewrite") for t in fs_threads.split(",")]
print(f"\n== N={n} size={size} conc={conc} reuse={reuse} reps={reps} (medians)")
print(f"{'':16} {'accepted/s':>10} {'relayed/s':>10} {'peak_mem_MiB':>12}")
rows = [("no-mta", ci, cr, None), ("ricochet", ri, rr, mib(rss)), ("postfix", pi, pr, mib(pf_pss))]
for name, a, r, m in rows:
    print(f"{name:16} {show(a):>10} {show(r):>10} {m or '-':>12}")
print(f"{'ricochet/postfix':16} {f(ri, pi):>10} {f(rr, pr):>10} {f(rss, pf_pss):>12}")
print(f"{'ricochet/no-mta':16} {pct(ri, ci):>10} {pct(rr, cr):>10}")
print(f"{'fsync/s':16} " + " ".join(f"{k}={fsync.get(k, 'n/a')}" for k in want_fsync))
print(f"{'ricochet cpu/msg':16} {cpu or 'n/a':>10} us (ricochetd user+system, all threads, over every rep)")
print(f"# peak_mem: ricochet = VmHWM of its one process; postfix = peak of the summed Pss of its processes"
      f" (up to {pf_n or '?'}, sampled every 0.5 s; summed VmRSS {mib(pf_rss)} MiB)")
figures = [f(ri, pi), f(rr, pr), pct(ri, ci), pct(rr, cr), mib(rss), mib(pf_pss)] + \
          [fsync.get(k, "n/a") for k in want_fsync]
missing = "n/a" in figures
if missing:
    print("# some figures are missing (n/a)")
sys.exit(1 if missing else 0)
PY
exit "$FAIL"
