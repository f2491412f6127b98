#!/usr/bin/env bash
# spool_scale.sh — Ricochet with a large deferred queue: how long a restart
# takes until the first delivery, and how much memory the daemon keeps per
# deferred message.
#
#   bench/spool_scale.sh [N=1000000]
#
# 1. build/bin/make_spool writes a fresh spool in the daemon's own format:
#    N messages in deferred/ due in one hour (file mtime, as spool::defer sets
#    it) to rI@example.com, plus one message due now.
# 2. ricochetd starts on an empty spool: its idle RSS is the baseline.
# 3. ricochetd starts on the N-message spool, example.com routed to an
#    smtp-sink on 127.0.0.1: time from exec until the sink has the due
#    message (target <= 20 s at N = 1M), the phases of startup from the
#    daemon's log, then its idle RSS with the N messages scheduled
#    (target <= 1 KiB per deferred message).
#
# Env: RICOCHET_BUILD=dir  use dir/bin (default: scripts/build.sh, then build/bin;
#                          when set, nothing is built)
#      COLD=1              drop the page cache before the restart (root only)
#      SIZE=1024           message size in bytes;  WAIT=300  seconds allowed
#                          for startup until the first delivery
#      KEEP=1              keep the work directory (path printed)
# Exit: 0 every figure measured; 1 a figure is missing; 77 no smtp-sink.
# Loopback only; every wait is bounded; everything started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000} SIZE=${SIZE:-1024} WAIT=${WAIT:-300} COLD=${COLD:-0} KEEP=${KEEP:-0}
SUB=25270 BNC=25271 SINK=25272
[[ $N =~ ^[0-9]+$ && $N -gt 0 ]] || { echo "usage: bench/spool_scale.sh [N>0]" >&2; exit 2; }
command -v smtp-sink >/dev/null || { echo "bench/spool_scale.sh: needs smtp-sink (apt-get install postfix)" >&2; exit 77; }
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
for b in ricochetd make_spool; do [ -x "$B/bin/$b" ] || { echo "missing $B/bin/$b" >&2; exit 1; }; done
if [ "$COLD" = 1 ] && [ "$(id -u)" != 0 ]; then echo "COLD=1 needs root (drop_caches)" >&2; exit 77; fi
for p in $SUB $BNC $SINK; do
  [ -z "$(ss -ltnH "src 127.0.0.1:$p" 2>/dev/null)" ] || { echo "127.0.0.1:$p is in use" >&2; exit 1; }
done

W=$(mktemp -d /tmp/ricochet-scale.XXXXXX)
DPID= SPID=
stop_pid() {  # bounded: TERM, up to 20 s, then KILL
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  [ -n "$DPID" ] && stop_pid "$DPID"
  [ -n "$SPID" ] && stop_pid "$SPID"
  if [ "$KEEP" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { [ -n "$(ss -ltnH "src 127.0.0.1:$1" 2>/dev/null)" ]; }
now() { date +%s.%N; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
sink_count() { tr '\r' '\n' <"$W/sink.log" 2>/dev/null | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2; }

config() {  # config NAME: $W/NAME.toml with its own spool, state and socket
  cat >"$W/$1.toml" <<CFG
[server]
hostname = "ricochet.bench.invalid"
spool_dir = "$W/$1"
state = "sqlite:$W/$1.state.db"
control_socket = "$W/$1.sock"
events_log = "$W/$1.events.jsonl"
log_level = "info"
[submission]
listen = ["127.0.0.1:$SUB"]
[delivery]
tls = "off"
dns_servers = ["127.0.0.1:9"]
[[delivery.route]]
domain = "example.com"
host = "127.0.0.1:$SINK"
[bounce_listener]
listen = ["127.0.0.1:$BNC"]
[bounce]
rules = "$PWD/etc/bounce-rules.toml"
[http]
listen = []
CFG
}

# start NAME: ricochetd on NAME's config; T0 = just before exec.
start() {
  T0=$(now)
  "$B/bin/ricochetd" --config "$W/$1.toml" >"$W/$1.log" 2>&1 &
  DPID=$!
}
alive() { kill -0 "$DPID" 2>/dev/null || { echo "ricochetd exited:" >&2; tail -5 "$W/$1.log" >&2; return 1; }; }
# wait_for NAME SECONDS CMD...: poll CMD every 20 ms while the daemon NAME
# lives (NAME "-": no daemon to watch).
wait_for() {
  local name=$1 limit=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  while ! "$@"; do
    [ "$name" = - ] || alive "$name" || return 1
    [ "$(date +%s)" -lt "$end" ] || { echo "gave up after ${limit}s waiting for: $*" >&2; return 1; }
    sleep 0.02
  done
}
sink_has() { [ "$(sink_count)" -ge "$1" ] 2>/dev/null; }

echo "# spool_scale N=$N size=$SIZE cache=$([ "$COLD" = 1 ] && echo cold || echo warm) dir=$W ($(findmnt -no FSTYPE -T "$W"))"
FAIL=0

# 1. the spool
t=$(now)
DUE_ID=$("$B/bin/make_spool" "$W/big" "$N" --domain example.com --size "$SIZE" 2>"$W/make_spool.err") || {
  cat "$W/make_spool.err" >&2; exit 1; }
MAKE_S=$(python3 -c "print(f'{$(now) - $t:.1f}')")
cat "$W/make_spool.err"
DU_MIB=$(du -sm "$W/big" | cut -f1)

# 2. idle RSS on an empty spool
config empty
start empty
wait_for empty 60 listening "$SUB" && sleep 2 && alive empty || FAIL=1
RSS_EMPTY=$(status_kib "$DPID" VmRSS)
stop_pid "$DPID"; DPID=

# 3. restart on the big spool, until the due message reaches the sink
config big
if [ "$(id -u)" = 0 ]; then SINK_U=(-u nobody); else SINK_U=(); fi
smtp-sink "${SINK_U[@]}" -c 127.0.0.1:$SINK 64 >"$W/sink.log" 2>&1 &
SPID=$!
wait_for - 10 listening "$SINK" || { echo "smtp-sink did not start: $(cat "$W/sink.log")" >&2; exit 1; }
if [ "$COLD" = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
start big
T_LISTEN= T_FIRST= RSS_BIG= HWM_BIG= SINK_N=
if wait_for big "$WAIT" listening "$SUB"; then T_LISTEN=$(now); fi
if [ -n "$T_LISTEN" ] && wait_for big "$WAIT" sink_has 1; then T_FIRST=$(now); fi
if [ -n "$T_FIRST" ]; then
  sleep 3  # settle: the delivery's connection idles, nothing else is due
  if alive big; then
    RSS_BIG=$(status_kib "$DPID" VmRSS) HWM_BIG=$(status_kib "$DPID" VmHWM) THREADS=$(status_kib "$DPID" Threads)
    SINK_N=$(sink_count)
  fi
fi
stop_pid "$DPID"; DPID=
stop_pid "$SPID"; SPID=
grep -q "$DUE_ID" "$W/big.log" || echo "note: the due message $DUE_ID is not named in the daemon's log" >&2

python3 - "$W/big.log" "$T0" "${T_LISTEN:-}" "${T_FIRST:-}" "${RSS_EMPTY:-}" "${RSS_BIG:-}" "${HWM_BIG:-}" \
          "$N" "${SINK_N:-}" "$MAKE_S" "$DU_MIB" <<'PY' || FAIL=1
import re, sys
from datetime import datetime
log, t0, t_listen, t_first, rss0, rss, hwm, n, sink_n, make_s, du = sys.argv[1:]
t0 = float(t0); n = int(n)
# Startup phases from the daemon's own log lines (local time, ms).
marks = [("recovered", r"spool .*: \d+ active, \d+ deferred"), ("scheduled", r"schedule rebuilt"),
         ("state_loaded", r"state .*suppressed"), ("started", r"ricochetd started")]
at = {}
for line in open(log, errors="replace"):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) ", line)
    if not m:
        continue
    ts = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    for k, rx in marks:
        if k not in at and re.search(rx, line):
            at[k] = ts
rel = lambda t: f"{t - t0:.2f}" if t else "NA"
first = float(t_first) - t0 if t_first else None
per = (int(rss) - int(rss0)) / n if rss and rss0 else None
out = [
    ("messages_deferred", n), ("spool_mib", du), ("make_spool_s", make_s),
    ("t_recovered_s", rel(at.get("recovered"))), ("t_scheduled_s", rel(at.get("scheduled"))),
    ("t_started_s", rel(at.get("started"))), ("t_listening_s", rel(float(t_listen)) if t_listen else "NA"),
    ("t_first_delivery_s", f"{first:.2f}" if first is not None else "NA"),
    ("sink_messages", sink_n or "NA"),
    ("rss_idle_empty_kib", rss0 or "NA"), ("rss_idle_n_kib", rss or "NA"), ("rss_peak_n_kib", hwm or "NA"),
    ("kib_per_deferred_msg", f"{per:.3f}" if per is not None else "NA"),
    ("peak_kib_per_deferred_msg", f"{(int(hwm) - int(rss0)) / n:.3f}" if hwm and rss0 else "NA"),
]
print(f"\n== spool_scale N={n}")
for k, v in out:
    note = ""
    if k == "t_first_delivery_s" and first is not None:
        note = "   target <= 20 (at 1M): " + ("ok" if first <= 20 else "OVER")
    if k == "kib_per_deferred_msg" and per is not None:
        note = "   target <= 1: " + ("ok" if per <= 1 else "OVER")
    print(f"{k:27} {v}{note}")
missing = [k for k, v in out if v == "NA"]
if sink_n and sink_n != "1":
    print(f"# the sink got {sink_n} messages; only the one due now should have been delivered")
    missing.append("sink_messages")
if missing:
    print("# missing: " + " ".join(missing))
sys.exit(1 if missing else 0)
PY
exit "$FAIL"
