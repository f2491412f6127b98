#!/usr/bin/env bash
# state.sh — the state store on PostgreSQL against SQLite, in one run:
#   1. decisions/s recorded (bench/state_bench: the recorder's batches of
#      queued/delivered/bounced decisions, one transaction each) into
#      SQLite and into PostgreSQL;
#   2. the relay benchmark (bench/relay.sh, an A/B in the same run, reps
#      alternating) with server.state on PostgreSQL against SQLite.
# PostgreSQL is Debian's postgresql-15, started here (initdb in a temporary
# directory, tests/integration/pg.py) with fsync on and synchronous_commit
# off, the durability of SQLite's WAL with synchronous=NORMAL; stopped at
# the end. Over TCP on 127.0.0.1, with a password, as a node would use it.
#
#   bench/state.sh [DECISIONS_MESSAGES=200000] [RELAY_N=10000] [SIZE=4096] [CONC=50] [REPS=3]
# Needs root (relay.sh runs Postfix; PostgreSQL then runs as `postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-200000} N=${2:-10000} SIZE=${3:-4096} CONC=${4:-50} REPS=${5:-3}
[ "$(id -u)" = 0 ] || { echo "bench/state.sh: needs root" >&2; exit 77; }
scripts/build.sh >/dev/null
read -r BASE PGDIR < <(python3 tests/integration/pg.py start)
W=$(mktemp -d /tmp/ricochet-state-bench.XXXXXX)
trap 'python3 tests/integration/pg.py stop "$PGDIR"; rm -rf "$W"' EXIT

echo "== decisions/s ($M messages: $((2 * M)) decisions, batches of 500)"
build/bin/state_bench "sqlite:$W/state.db" "$M" 500 | tee "$W/sqlite.json"
build/bin/state_bench "$(python3 tests/integration/pg.py createdb "$PGDIR" decisions)" "$M" 500 | tee "$W/pg.json"
python3 - "$W" <<'PY'
import json, sys
s, p = (json.load(open(sys.argv[1] + f)) for f in ("/sqlite.json", "/pg.json"))
print("postgresql/sqlite decisions/s: %.2f" % (p["decisions_per_s"] / s["decisions_per_s"]))
PY

echo "== relay, state on PostgreSQL (ricochet) vs SQLite (baseline), same build"
RICOCHET_BUILD=build BASELINE=build AB_ONLY=1 \
  RICOCHET_STATE="$(python3 tests/integration/pg.py createdb "$PGDIR" relay)" \
  bash bench/relay.sh "$N" "$SIZE" "$CONC" "$REPS"
