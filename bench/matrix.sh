#!/usr/bin/env bash
# matrix.sh — issue 20's figures in one go: bench/relay.sh (Ricochet and
# Postfix side by side, each in the same run as the no-MTA ceiling) at the
# concurrencies and sizes campaign systems submit with, then one summary:
#   5, 20 and 50 connections at 4 KiB; 50 connections at 100 KiB;
#   one connection carrying every message (smtp-source -d, REUSE=1): the
#   acceptance rate of a campaign system that submits over one session.
#
#   bench/matrix.sh [REPS=3] [SCALE=1]      # as root; SCALE multiplies N
#
# Each row's ratios come from one relay.sh run (the VM drifts between runs).
# Exit: non-zero when a run failed or a figure is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3} SCALE=${2:-1}
[ "$(id -u)" = 0 ] || { echo "bench/matrix.sh: needs root (bench/relay.sh runs Postfix)" >&2; exit 77; }
if [ -z "${RICOCHET_BUILD:-}" ]; then scripts/build.sh >/dev/null || exit 1; export RICOCHET_BUILD=build; fi
OUT=$(mktemp -d /tmp/ricochet-matrix.XXXXXX)
FAIL=0
# label N SIZE CONC REUSE
rows=(
  "5conn-4KiB   $((10000 * SCALE)) 4096 5 0"
  "20conn-4KiB  $((20000 * SCALE)) 4096 20 0"
  "50conn-4KiB  $((20000 * SCALE)) 4096 50 0"
  "50conn-100KiB $((4000 * SCALE)) 102400 50 0"
  "1conn-reuse  $((5000 * SCALE)) 4096 1 1"
)
for row in "${rows[@]}"; do
  read -r label n size conc reuse <<<"$row"
  echo "### $label: N=$n size=$size conc=$conc reuse=$reuse"
  REUSE=$reuse bench/relay.sh "$n" "$size" "$conc" "$REPS" >"$OUT/$label.txt" 2>&1 || FAIL=1
  sed -n '/^== N=/,$p' "$OUT/$label.txt"
done
echo
echo "== summary (ratios from one run each; medians of $REPS reps)"
printf '%-14s %12s %12s %12s %12s %10s\n' run accepted× relayed× "% no-MTA" cpu_us/msg postfix/s
for row in "${rows[@]}"; do
  read -r label _ <<<"$row"
  f=$OUT/$label.txt
  acc=$(awk '$1 == "ricochet/postfix" {print $2}' "$f"); rel=$(awk '$1 == "ricochet/postfix" {print $3}' "$f")
  pct=$(awk '$1 == "ricochet/no-mta" {print $3}' "$f"); cpu=$(awk '$1 == "ricochet" && $2 == "cpu/msg" {print $3}' "$f")
  pf=$(awk '$1 == "postfix" && NF == 4 {print $2 "/" $3}' "$f")
  printf '%-14s %12s %12s %12s %12s %10s\n' "$label" "${acc:-n/a}" "${rel:-n/a}" "${pct:-n/a}" "${cpu:-n/a}" "${pf:-n/a}"
  [ -n "$acc" ] && [ -n "$rel" ] || FAIL=1
done
echo "# full outputs in $OUT"
exit "$FAIL"
