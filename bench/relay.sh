#!/usr/bin/env bash
# relay.sh — Ricochet and Postfix as relays on this machine, measured side by
# side in one run with the team's harness (../shared/bench/relay_bench.sh:
# smtp-source -> MTA -> smtp-sink, all on 127.0.0.1). Both keep durability
# (250 only after fsync). Prints each MTA's accepted and relayed messages/s,
# Ricochet's peak RSS, and the ratios Ricochet/Postfix.
#
#   bench/relay.sh [N=10000] [SIZE=4096] [CONC=50] [REPS=1]
#
# Needs root (Postfix), smtp-source/smtp-sink (Debian's postfix), python3.
# Every loop is bounded; both MTAs and the sink are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/bench}
N=${1:-10000} SIZE=${2:-4096} CONC=${3:-50} REPS=${4:-1}
RIN=25250 PIN=25251 SINK=25260 BNC=25261
[ "$(id -u)" = 0 ] || { echo "bench/relay.sh: needs root (it runs a Postfix instance)" >&2; exit 77; }
[ -x "$SHARED/relay_bench.sh" ] || [ -f "$SHARED/relay_bench.sh" ] || { echo "missing $SHARED/relay_bench.sh" >&2; exit 1; }
scripts/build.sh >/dev/null

W=$(mktemp -d /tmp/ricochet-bench.XXXXXX)
chmod 755 "$W"  # Postfix's own user works under it too
PFB=$W/pfbench
RPID=
cleanup() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  PFB=$PFB bash "$SHARED/postfix/pfbench.sh" stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

cat >"$W/r.toml" <<CFG
[server]
hostname = "ricochet.bench.invalid"
spool_dir = "$W/spool"
state = "sqlite:$W/state.db"
control_socket = "$W/ricochetd.sock"
events_log = "$W/events.jsonl"
log_level = "warn"
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

build/bin/ricochetd --config "$W/r.toml" >"$W/ricochetd.log" 2>&1 &
RPID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$RIN") 2>/dev/null && break; sleep 0.05; done
EMPTY="timeout 600 bash -c 'until build/bin/ricochetctl --config $W/r.toml queue summary --json | python3 -c \"import json,sys; sys.exit(json.load(sys.stdin)[\\\"total\\\"][\\\"messages\\\"] != 0)\"; do sleep 0.2; done'"
PRE_CMD="$EMPTY" LABEL=ricochet bash "$SHARED/relay_bench.sh" $RIN $SINK "$N" "$SIZE" "$CONC" "$REPS" | tee "$W/ricochet.txt"
RSS=$(awk '/VmHWM/{print $2}' /proc/$RPID/status)
kill "$RPID"; wait "$RPID" 2>/dev/null || true; RPID=

IN_PORT=$PIN OUT_PORT=$SINK CONC=$CONC PFB=$PFB bash "$SHARED/postfix/pfbench.sh" setup >/dev/null
PFB=$PFB bash "$SHARED/postfix/pfbench.sh" start >/dev/null 2>&1
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PIN") 2>/dev/null && break; sleep 0.05; done
PRE_CMD="PFB=$PFB bash $SHARED/postfix/pfbench.sh wait-empty" LABEL=postfix \
  bash "$SHARED/relay_bench.sh" $PIN $SINK "$N" "$SIZE" "$CONC" "$REPS" | tee "$W/postfix.txt"

median() { awk -v k="$2" '$0 ~ "#   "k {print $4; exit}' "$1"; }
python3 - "$(median "$W/ricochet.txt" "inject")" "$(median "$W/ricochet.txt" "relay msgs")" \
          "$(median "$W/postfix.txt" "inject")" "$(median "$W/postfix.txt" "relay msgs")" "$RSS" "$N" "$SIZE" "$CONC" <<'PY'
import sys
ri, rr, pi, pr, rss, n, size, conc = sys.argv[1:]
f = lambda a, b: "%.2fx" % (float(a) / float(b)) if a and b and float(b) > 0 else "n/a"
print(f"\n== N={n} size={size} conc={conc}")
print(f"{'':10} {'accepted/s':>11} {'relayed/s':>10}")
print(f"{'ricochet':10} {ri:>11} {rr:>10}   peak RSS {int(rss)//1024} MiB")
print(f"{'postfix':10} {pi:>11} {pr:>10}")
print(f"{'ratio':10} {f(ri, pi):>11} {f(rr, pr):>10}")
sys.exit(0 if "n/a" not in (f(ri, pi), f(rr, pr)) else 1)
PY
