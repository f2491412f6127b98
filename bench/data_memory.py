#!/usr/bin/env python3
"""data_memory.py — what large messages in flight cost the daemon in memory.

Opens N submission sessions at once, each sending SIZE MB of DATA and
holding back the final dot (the load of issue 23: 40 x 20 MB), measures
ricochetd's RSS before, while all of it is in flight, and after the dots
(every message queued), twice in the same run: with the defaults
(submission.data_memory = "256KiB": the rest goes to a spill file) and with
data_memory = "25MiB" (the whole message in memory, as before). Prints one
table. Not for CI: a measurement; its figures are in the README.

    bench/data_memory.py [N=40] [SIZE_MB=20]

Env: RICOCHET_BIN (default build/bin). Everything on loopback; the daemon
is stopped and its directory removed at the end."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("RICOCHET_BIN", os.path.join(HERE, "..", "build", "bin"))

from harness import Daemon  # noqa: E402
from test_data_memory import MB, Session, body, rss_kib, spilled_octets  # noqa: E402


def run(n, size_mb, data_memory):
    # No delivery: the messages stay queued (nothing listens for them), so
    # only the receiving side is measured.
    d = Daemon(server_extra='data_memory_budget = "64GiB"',
               submission_extra='max_message_size = %d\ndata_memory = "%s"' % ((size_mb + 1) * MB, data_memory)).start()
    try:
        time.sleep(1)  # let start-up settle before the baseline (a measurement, not a synchronisation)
        before = rss_kib(d.proc.pid)
        msg = body(size_mb * MB, "bench")
        sessions = [Session(d.port, msg) for _ in range(n)]
        # Read by the daemon: spilled, or (in memory) the RSS has grown by most of it.
        deadline = time.monotonic() + 300
        peak = before
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(d.proc.pid))
            if spilled_octets(d.proc.pid, d.spool) >= n * (size_mb - 4) * MB or peak - before >= n * (size_mb - 4) * 1024:
                break
            time.sleep(0.2)
        time.sleep(1)
        peak = max(peak, rss_kib(d.proc.pid))
        replies = [s.finish() for s in sessions]
        ok = sum(r.startswith("250") for r in replies)
        # Then the first delivery attempt of each (it reads the message whole; no route: deferred).
        spike, end = 0, time.monotonic() + 5
        while time.monotonic() < end:
            spike = max(spike, rss_kib(d.proc.pid))
            time.sleep(0.1)
        return before, peak, spike, rss_kib(d.proc.pid), ok
    finally:
        d.cleanup()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    size_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    print("%d sessions x %d MB of DATA in flight (RSS of ricochetd, MiB)" % (n, size_mb))
    print("| data_memory | before | in flight | first delivery attempts (peak) | settled | queued |")
    print("|---|---|---|---|---|---|")
    for dm in ("256KiB", "%dMiB" % (size_mb + 5)):
        b, p, spike, a, ok = run(n, size_mb, dm)
        print("| %s | %.0f | %.0f | %.0f | %.0f | %d/%d |" % (dm, b / 1024, p / 1024, spike / 1024, a / 1024, ok, n))


if __name__ == "__main__":
    main()
