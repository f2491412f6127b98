#!/usr/bin/env bash
# disk.sh — what Ricochet keeps on disk per message, and so what a year of
# traffic costs with retention: relays N messages (smtp-source -> ricochetd ->
# smtp-sink on 127.0.0.1), then measures the state store (SQLite, after a
# WAL checkpoint) and the event log (plain and gzip'd, as rotation keeps
# it), runs `ricochetctl state prune --older-than 0s`, and measures the
# store again. Prints bytes per message and the steady-state disk for
# 1,000,000 messages a day with the default retention (decisions 90 days,
# events 14 rotated days, gzip'd but the newest).
#
#   bench/disk.sh [N=20000] [SIZE=2048]
#
# Env: RICOCHET_BUILD=dir (default: scripts/build.sh, then build/). Needs
# smtp-source and smtp-sink (Debian's postfix), python3. Not for CI: a
# measurement; its figures are in the README. Every loop is bounded; the
# daemon and the sink are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000} SIZE=${2:-2048}
for c in smtp-source smtp-sink python3; do
  command -v "$c" >/dev/null || { echo "bench/disk.sh: missing $c (apt-get install -y postfix python3)" >&2; exit 77; }
done
if [ -n "${RICOCHET_BUILD:-}" ]; then B=$RICOCHET_BUILD; else scripts/build.sh >/dev/null; B=build; fi
W=$(mktemp -d /tmp/ricochet-disk.XXXXXX)
RPID= SPID=
cleanup() {
  if [ -n "$RPID" ]; then kill "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true; fi
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
source bench/lib.sh
IN=$(bench_port) SINK=$(bench_port) BNC=$(bench_port)
bench_relay_config 'events_max_size = 0
events_max_age = "0"' ''
bench_start
smtp-source -s 20 -m "$N" -l "$SIZE" -f sender@bench.invalid -t rcpt@example.com "127.0.0.1:$IN"
# Every message delivered: count the events (bounded wait).
for _ in $(seq 1 1200); do
  d=$(grep -c '"type":"delivered"' "$W/events.jsonl" || true)
  [ "$d" -ge "$N" ] && break
  sleep 0.5
done
[ "$d" -ge "$N" ] || { echo "bench/disk.sh: only $d of $N messages delivered" >&2; exit 1; }
sleep 2  # the recorder's last batch
python3 - "$W" "$N" "$B" <<'PY'
import gzip, os, sqlite3, subprocess, sys
w, n, b = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def store_bytes():
    c = sqlite3.connect(os.path.join(w, "state.db"))
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages, size, free = (c.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size", "freelist_count"))
    rows = {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("decisions", "messages", "message_recipients", "daily_totals")}
    c.close()
    return (pages - free) * size, os.path.getsize(os.path.join(w, "state.db")), rows
used, file_size, rows = store_bytes()
ev = os.path.getsize(os.path.join(w, "events.jsonl"))
with open(os.path.join(w, "events.jsonl"), "rb") as f:
    gz = len(gzip.compress(f.read(), 6))
out = subprocess.run([f"{b}/bin/ricochetctl", "--config", os.path.join(w, "r.toml"), "state", "prune", "--older-than", "0s", "--json"],
                     capture_output=True, text=True)
used2, file2, rows2 = store_bytes()
per = lambda x: x / n
print(f"messages                     {n}")
print(f"state rows before prune      {rows}")
print(f"state store, used            {per(used):8.0f} B/message   (file {per(file_size):.0f} B/message)")
print(f"state store after prune      {per(used2):8.0f} B/message   (file {per(file2):.0f} B/message; {out.stdout.strip()})")
print(f"events log, plain            {per(ev):8.0f} B/message")
print(f"events log, gzip'd           {per(gz):8.0f} B/message   ({ev / max(gz, 1):.1f}x)")
day = 1_000_000
state_90d = 90 * day * per(used)  # decisions and messages of the retention window (both go at 90 days)
events_14 = day * per(ev) + 13 * day * per(gz)
print(f"steady state, 1M messages/day, default retention:")
print(f"  state store  {state_90d / 2**30:6.1f} GiB  (90 days of decisions and messages; daily totals and statuses are small)")
print(f"  events log   {events_14 / 2**30:6.1f} GiB  (today plain + 13 days gzip'd)")
PY
