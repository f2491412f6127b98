#!/usr/bin/env python3
"""soak.py — a week in an hour: ricochetd under a steady load with mixed
outcomes, its resources sampled every 10 s, plotted.

    python3 bench/soak.py [SECONDS=3600] [RATE=20 messages/s] [OUT=bench/soak]

What runs, all on loopback:
  - the load: RATE messages a second over 4 SMTP connections, each to one
    recipient of a list of 10,000 addresses mailed in turn (at 20/s each
    gets about 7 messages in the hour; tests/integration/sink.py scripts
    the receiver by local part):
        ok-*        70%  delivered
        once-*      10%  451 the first time, delivered on the retry
        reject-*    10%  550 5.1.1 at RCPT: bounced (hard), a DSN to the
                         sender (held only after bounce.held_after_days, so
                         never within the hour)
        tempfail-*   5%  451 always: retried every 15 s until max_age
                         (2 minutes), then expired (a DSN to the sender)
        ok-dsn-*     5%  delivered, then a DSN (5.1.1) comes back to the
                         bounce listener a few seconds later; every tenth of
                         those is an ARF complaint instead
  - a webhook endpoint that is up for 2 minutes, then refuses connections
    for 1 minute, and so on (the webhook's backlog must drain each time);
  - retention short enough to turn over within the hour: decisions and
    messages 10 minutes, the event log rotated past 8 MiB with 4 segments.

Every 10 s: RSS, open descriptors and threads of ricochetd, the spool's
size (du), the state store's (SQLite with its WAL), the event log's (all
segments), the queue (active + deferred), and the webhook backlog. They go
to OUT.tsv; OUT.png plots them (gnuplot, Debian's gnuplot-nox). At the end
it prints, for each, the maximum over the first and the last third of the
run after the first 10 minutes (the warm-up: retention's first window):
"level" when the last third is within 20% of the first (or 2 MiB, or 4
descriptors or threads, for small figures).

A measurement for the README, not a test. Needs the build (build/bin or
RICOCHET_BIN) and python3; gnuplot for the plot. Every wait is bounded; the
daemon and the peers are stopped at the end.
"""
import http.server
import os
import random
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIST = 10000  # addresses on the list
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("RICOCHET_BIN", os.path.join(HERE, "..", "build", "bin"))
os.environ.setdefault("RICOCHET_SOURCE", os.path.join(HERE, ".."))
from harness import Daemon, delivery_config, free_port  # noqa: E402
from sink import Sink  # noqa: E402
from test_faults import DSN  # noqa: E402  (a 5.1.1 report, RFC 3464)

ARF = """From: feedback@sink.test
To: {verp}
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an abuse report.

--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: soak/1.0
Version: 1
Original-Rcpt-To: {rcpt}

--B
Content-Type: text/rfc822-headers

From: news@example.com
To: {rcpt}
Subject: soak

--B--
"""


class FlappingHook:
    """The webhook endpoint: up 120 s, down 60 s (the port closed), and so on."""

    def __init__(self):
        self.port = free_port()
        self.received = 0
        self.server = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                self.rfile.read(n)
                hook.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        while not self.stop.is_set():
            srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            self.stop.wait(120)
            srv.shutdown()
            srv.server_close()
            self.stop.wait(60)

    def close(self):
        self.stop.set()


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    secs = int(sys.argv[1]) if len(sys.argv) > 1 else 3600
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20
    out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "soak")
    sink = Sink()
    hook = FlappingHook()
    routes = {"sink.test": (sink.host, sink.port), "example.com": (sink.host, sink.port)}
    extra = delivery_config(routes, interval="15s", max_age="2m")
    extra += ('[[webhook]]\nurl = "http://127.0.0.1:%d/hook"\nsecret = "soak-secret-0123456789abcdef"\n'
              'events = ["*"]\nbatch = 100\ntimeout = "2s"\n' % hook.port)
    extra += '[retention]\ndecisions = "10m"\nmessages = "10m"\n'
    # 10% hard bounces and 0.5% complaints would (rightly) pause every
    # campaign within minutes; the soak wants the load steady.
    extra += '[breaker]\nhard_rate_warn = 0.5\nhard_rate_pause = 0.6\ncomplaint_rate_warn = 0.5\ncomplaint_rate_pause = 0.6\n'
    d = Daemon(extra_config=extra, server_extra='events_max_size = "8MiB"\nevents_keep = 4\n')
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace('log_level = "info"', 'log_level = "warn"'))  # an hour of per-message lines otherwise
    d.start()
    pid = d.proc.pid
    stop = threading.Event()
    sent = {"n": 0, "refused": 0, "dsn": 0, "arf": 0, "failed": 0, "last_failure": ""}
    lock = threading.Lock()

    def recipient(i):
        # A list of LIST addresses, mailed in turn (a campaign system's
        # list, not an endless stream of new ones: the state store keeps
        # every address's status for good).
        j = i % LIST
        r = j % 20
        if r < 14:
            return "ok-%d@sink.test" % j
        if r < 16:
            return "once-%d@sink.test" % j
        if r < 18:
            return "reject-%d@sink.test" % j
        if r < 19:
            return "tempfail-%d@sink.test" % j
        return "ok-dsn-%d@sink.test" % j

    def loader(k):
        per = rate / 4.0
        i = k
        next_t = time.monotonic()
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                    s.ehlo("soak.test")
                    for _ in range(500):
                        if stop.is_set():
                            break
                        rc = recipient(i)
                        msg = ("From: news@example.com\r\nTo: %s\r\nSubject: soak %d\r\nX-Campaign-ID: soak%d\r\n\r\n"
                               % (rc, i, i % 5)) + ("soak body line\r\n" * 100)
                        try:
                            s.sendmail("news@example.com", [rc], msg)
                            with lock:
                                sent["n"] += 1
                        except smtplib.SMTPRecipientsRefused:
                            with lock:
                                sent["refused"] += 1
                        i += 4
                        next_t += 1.0 / per
                        stop.wait(max(0.0, next_t - time.monotonic()))  # the load's pace
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    sent["failed"] += 1
                    sent["last_failure"] = str(e)
                stop.wait(1)

    def reporter():
        done = set()
        while not stop.is_set():
            stop.wait(2)
            for (mail_from, rcpt, _) in sink.received("ok-dsn-"):
                if mail_from in done:  # one report per message (its VERP address)
                    continue
                done.add(mail_from)
                n = int(rcpt.split("-")[2].split("@")[0])
                arf = (n // 20) % 10 == 0
                body = (ARF if arf else DSN).format(verp=mail_from, rcpt=rcpt)
                try:
                    with smtplib.SMTP("127.0.0.1", d.bounce_port, timeout=30) as s:
                        s.sendmail("" if not arf else "feedback@sink.test", [mail_from], body.encode())
                    with lock:
                        sent["arf" if arf else "dsn"] += 1
                except (OSError, smtplib.SMTPException):
                    pass

    threads = [threading.Thread(target=loader, args=(k,), daemon=True) for k in range(4)]
    threads.append(threading.Thread(target=reporter, daemon=True))
    for t in threads:
        t.start()

    cols = ["t", "rss_mib", "fds", "threads", "spool_mib", "state_mib", "events_mib", "queued", "sent", "delivered"]
    rows = []
    start = time.monotonic()
    with open(out + ".tsv", "w") as f:
        f.write("\t".join(cols) + "\n")
        try:
            while time.monotonic() - start < secs:
                time.sleep(10)  # the sampling interval
                if d.proc.poll() is not None:
                    raise SystemExit("ricochetd exited with %s" % d.proc.returncode)
                t = time.monotonic() - start
                state = sum(os.path.getsize(os.path.join(d.dir, n)) for n in os.listdir(d.dir)
                            if n.startswith("state.db"))
                events = sum(os.path.getsize(os.path.join(d.dir, n)) for n in os.listdir(d.dir)
                             if n.startswith("events.jsonl"))
                queued = sum(len(os.listdir(os.path.join(d.spool, s))) for s in ("active", "deferred"))
                row = [round(t), proc_status(pid, "VmRSS") / 1024, len(os.listdir("/proc/%d/fd" % pid)),
                       proc_status(pid, "Threads"), du(d.spool) / 2**20, state / 2**20, events / 2**20, queued,
                       sent["n"], len(sink.received())]
                rows.append(row)
                f.write("\t".join("%.2f" % v if isinstance(v, float) else str(v) for v in row) + "\n")
                f.flush()
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=40)
            d.stop()
            sink.close()
            hook.close()

    print("%d messages sent (%d refused at RCPT: held or unsubscribed), %d delivered, %d DSNs and %d complaints "
          "sent back, %d webhook posts received; %d submission sessions failed%s" % (
              sent["n"], sent["refused"], len(sink.received()), sent["dsn"], sent["arf"], hook.received, sent["failed"],
              " (last: %s)" % sent["last_failure"] if sent["failed"] else ""))
    warm = [r for r in rows if r[0] >= 600]
    if len(warm) >= 6:
        third = len(warm) // 3
        first, last = warm[:third], warm[-third:]
        slack = {"rss_mib": 2, "spool_mib": 2, "state_mib": 2, "events_mib": 2, "fds": 4, "threads": 4, "queued": 50}
        print("%-12s %12s %12s" % ("", "first third", "last third"))
        for i, c in enumerate(cols):
            if c not in slack:
                continue
            a, b = max(r[i] for r in first), max(r[i] for r in last)
            level = b <= a * 1.2 or b - a <= slack[c]
            print("%-12s %12.1f %12.1f  %s" % (c, a, b, "level" if level else "GROWING"))
    # What the state store holds, table by table (rows), to tell what grows.
    try:
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.dir, "state.db"), uri=True)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        print("state store rows: " + ", ".join("%s %d" % (t, db.execute('SELECT COUNT(*) FROM "%s"' % t).fetchone()[0])
                                                for t in sorted(tables)))
        db.close()
    except Exception as e:  # a report, not the run's result
        print("state store rows: cannot read (%s)" % e)
    if shutil.which("gnuplot"):
        script = """set terminal pngcairo size 1200,900 font ",10"
set output "{out}.png"
set multiplot layout 3,2 title "ricochetd soak: {rate:g} msg/s, mixed outcomes, {mins} minutes (sampled every 10 s)"
set xlabel "minutes"
set key top left
set grid
set yrange [0:*]
plot "{out}.tsv" using ($1/60):2 with lines title "RSS (MiB)"
plot "{out}.tsv" using ($1/60):3 with lines title "open fds", "" using ($1/60):4 with lines title "threads"
plot "{out}.tsv" using ($1/60):6 with lines title "state store (MiB)"
plot "{out}.tsv" using ($1/60):7 with lines title "event log, all segments (MiB)"
plot "{out}.tsv" using ($1/60):5 with lines title "spool (MiB)"
plot "{out}.tsv" using ($1/60):8 with lines title "queued (active + deferred)"
unset multiplot
""".format(out=out, rate=rate, mins=secs // 60)
        subprocess.run(["gnuplot"], input=script, text=True, check=False)
        print("plot:", out + ".png")
    d.cleanup()


if __name__ == "__main__":
    main()
