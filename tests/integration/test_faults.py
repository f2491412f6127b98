"""I/O errors at every step, against the real daemon.

tests/faults/fault_inject.cpp (LD_PRELOAD) counts every call that changes
the disk under the daemon's directory (write, pwrite, writev,
copy_file_range, fsync, fdatasync, syncfs, ftruncate, rename(at)(2),
unlink(at)) and fails the N-th one with EIO or ENOSPC. Each scenario is run
once only counting, which gives its K calls, then once for every distinct
failure point N (fault_points: the first and last of each run of alike
calls; RICOCHET_FAULT_EVERY=1 takes all K):

  submission + delivery   a message for two recipients through SMTP, to a
                          real SMTP receiver (the scripted sink)
  HTTP injection          the same through POST /v1/messages (202 for 250,
                          503 for 4xx)
  operator changes        DELETE /v1/suppressions/X and a campaign's pause
                          through the API: 200 only once the state store's
                          WAL is synced, else 503, and the retry holds
  DSN intake              a bounce report for a delivered message, on the
                          bounce listener
  restart                 start-up with queued, deferred, finished (free/)
                          and unacknowledged (incoming/) files, then a flush

A slow disk (the shim's gate): while a deferral's status sync waits, or a
retry's read of its file, the daemon's only I/O thread goes on greeting,
accepting and delivering other mail, and the deferral (the retry)
completes once the disk answers; a stop waits for such a sync.

ENOSPC is also tried at each spool call of the submission and delivery,
with a finished file in free/ (which the commit drops to make room).

After every run, the daemon must still be running (no crash), answer, and
stop on SIGTERM with exit 0 (no hang). Then it is started again without
faults, and: every message that got a 250 is delivered with its exact
octets; one that got 4xx was not queued (and the client's retry is
delivered once); a 250 never followed a failed write or sync of the
message's own queue file, its directory or the journal it needed; nothing
is left in incoming/ or corrupt/; the state store holds what the 250 promised
(the delivery, or the report's bounce counted once, and the sender told
once). A start-up that cannot write its state store or event sequence
stops with exit 1 and a critical log line, never a crash.
"""
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from harness import BIN, Daemon, delivery_config, wait_for
from sink import Sink

SHIM = os.path.join(BIN, "libricochet_faults.so")
EIO, ENOSPC = 5, 28

DSN = """From: MAILER-DAEMON@mx.sink.test (Mail Delivery System)
To: {verp}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sink.test

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown

--B--
"""


def body(tag):
    # Big enough for two writes and a spill-free queue file; every line
    # carries the tag, so a mixed-up or torn file shows.
    lines = "".join("%s line %04d of the message body, which must arrive intact\r\n" % (tag, i) for i in range(60))
    return ("From: news@example.com\r\nTo: list@sink.test\r\nSubject: fault %s\r\nX-Campaign-ID: faults\r\n"
            "X-Tag: %s\r\n\r\n" % (tag, tag)) + lines


def transaction(port, sender, rcpts, data):
    """(code, text) of one SMTP transaction: 250, or the 4xx/5xx that ended
    it, or 0 when the connection went without one."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.test")
            s.sendmail(sender, rcpts, data)
        return 250, ""
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        return code, text.decode(errors="replace")
    except (smtplib.SMTPException, OSError) as e:
        return 0, "no reply: %s" % e  # the connection went (the daemon died)


def content_of(data):
    """The message as sent, from the first header we wrote (Received: and
    DKIM fields added by the daemon are above it)."""
    text = data.decode() if isinstance(data, bytes) else data
    at = text.find("From: news@example.com")
    return text[at:].replace("\r\n", "\n").rstrip("\n")


class Trace:
    def __init__(self, path):
        self.path = path

    def lines(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [l.rstrip("\n").split("\t") for l in f if l.strip()]

    def failed(self):
        return [l for l in self.lines() if len(l) == 4 and l[3] != "ok"]


class FaultRun:
    """One daemon life under the shim, with its own trace."""

    def __init__(self, daemon, nth, errno=EIO, armed=False, match=None):
        self.d = daemon
        fd, self.trace_path = tempfile.mkstemp(prefix="ricochet-fault-trace-")
        os.close(fd)
        self.arm = os.path.join(daemon.dir, "fault.arm")
        if os.path.exists(self.arm):
            os.unlink(self.arm)
        if armed:
            open(self.arm, "w").close()
        self.trace = Trace(self.trace_path)
        daemon.env = dict(os.environ, LD_PRELOAD=SHIM, RICOCHET_FAULT_DIR=daemon.dir, RICOCHET_FAULT_ARM=self.arm,
                          RICOCHET_FAULT_NTH=str(nth), RICOCHET_FAULT_ERRNO=str(errno),
                          RICOCHET_FAULT_TRACE=self.trace_path,
                          ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        if match:
            daemon.env["RICOCHET_FAULT_MATCH"] = match

    def start(self):
        try:
            self.d.start()
        except RuntimeError as e:
            return str(e)
        return None

    def go(self):
        open(self.arm, "w").close()

    def stop_and_count(self):
        """A counting run's end: the daemon stopped (its last records settle
        after the queue empties), the trace's lines returned, the shim gone."""
        self.d.proc.terminate()
        self.d.proc.wait(timeout=20)
        lines = self.trace.lines()
        os.unlink(self.trace_path)
        self.d.env = None
        return lines

    def finish(self, test):
        """The daemon must still run, then stop cleanly; the shim leaves."""
        d = self.d
        test.assertIsNone(d.proc.poll(), "ricochetd died under fault %s:\n%s" % (self.trace.failed(), d.log()[-3000:]))
        d.proc.terminate()
        try:
            rc = d.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()
            test.fail("ricochetd hung at SIGTERM under fault %s" % self.trace.failed())
        test.assertEqual(rc, 0, "ricochetd exit %s under fault %s:\n%s" % (rc, self.trace.failed(), d.log()[-3000:]))
        d.check_sanitizers()
        d.env = None
        os.unlink(self.trace_path)


def spool_files(d, sub):
    p = os.path.join(d.spool, sub)
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def call_kind(line):
    """A counted call without its daemon's directory and queue id:
    ("pwrite", "DIR/state.db-wal")."""
    path = re.sub(r"/[0-9A-Z]{13}\b", "/ID", re.sub(r"[^ ]*/ricochet-it-[^/ ]+", "DIR", line[2]))
    return line[1], path


def aimed(lines, n):
    """The n-th counted call as the shim's RICOCHET_FAULT_MATCH and NTH:
    ("writev /spool/incoming/", 1) for the first write of a queue file, so
    a run fails that call whatever a background thread did meanwhile."""
    call, src = lines[n - 1][1], lines[n - 1][2].split(" -> ")[0]
    m = re.search(r"/spool/[a-z]+/(?=[0-9A-Z]{13}\b)", src)
    # Else the spool's own path from its last "/spool" on (its directory,
    # "/spool/journal"): the test's temporary directory differs per run.
    part = m.group(0) if m else src[src.rindex("/spool"):] if "/spool" in src else src
    k = sum(1 for l in lines[:n] if l[1] == call and part in l[2].split(" -> ")[0])
    return "%s %s" % (call, part), k


def fault_points(lines, stride=True):
    """The calls to fail. RICOCHET_FAULT_EVERY=1: every one. Else the first
    and the last of each run of alike calls (twenty pwrites of one SQLite
    commit go through the same code; the first and the last differ in
    what is already on disk), which is every distinct failure point."""
    n = len(lines)
    if os.environ.get("RICOCHET_FAULT_EVERY") == "1":
        return list(range(1, n + 1))
    kinds = [call_kind(l) for l in lines]
    points = [i + 1 for i in range(n) if i == 0 or i == n - 1 or kinds[i] != kinds[i - 1] or kinds[i] != kinds[i + 1]]
    # RICOCHET_FAULT_STRIDE=k: every k-th of those (scripts/test.sh's
    # sanitizer pass, where each daemon life costs three times as much).
    return points[::max(1, int(os.environ.get("RICOCHET_FAULT_STRIDE", "1")) if stride else 1)]


def sweep(test, count_run, one_run):
    """count_run() -> the trace of a run without faults; one_run(n) for each
    failure point; returns their results."""
    lines = count_run()
    test.assertGreater(len(lines), 5, "the shim counted nothing: is it loaded?")
    results = []
    moved = 0
    for n in fault_points(lines):
        with test.subTest(n=n, call=" ".join(lines[n - 1][1:3])):
            r = one_run(n)
            results.append(r)
            # Threads' timing may put another call at n than in the counting
            # run (the trace says which failed): counted, so a run that
            # missed its mark shows.
            if r and r[0] and call_kind(r[0]) != call_kind(lines[n - 1]):
                moved += 1
    if moved:
        print("\n%d of %d failure points hit another call than in the counting run" % (moved, len(results)))
    return len(lines), results


class SlowDisk(unittest.TestCase):
    def slow_daemon(self, stall, interval="1h", server_extra="io_threads = 1", gate_shut=True):
        """A daemon under the shim's slow disk: `stall` names the calls and
        paths that wait while the gate file exists (shut from the start, or
        when the test creates it)."""
        self.sink = Sink()
        self.addCleanup(self.sink.close)
        d = Daemon(extra_config=delivery_config({"sink.test": (self.sink.host, self.sink.port)}, interval=interval,
                                                max_age="3h"), server_extra=server_extra)
        self.addCleanup(d.cleanup)
        self.gate = os.path.join(d.dir, "disk.gate")
        if gate_shut:
            open(self.gate, "w").close()
        d.env = dict(os.environ, LD_PRELOAD=SHIM, RICOCHET_FAULT_DIR=d.dir, RICOCHET_FAULT_GATE=self.gate,
                     ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0", **stall)
        d.start()
        return d

    def stalled(self, what):
        wait_for(lambda: os.path.exists(self.gate + ".stalled"), what=what)

    def stop_cleanly(self, d):
        d.proc.terminate()
        self.assertEqual(d.proc.wait(timeout=20), 0)
        d.check_sanitizers()

    def test_a_deferral_waiting_on_its_status_sync_holds_up_no_other_mail(self):
        d = self.slow_daemon({"RICOCHET_FAULT_STALL": "/spool/status/"})
        self.assertEqual(transaction(d.port, "news@example.com", ["tempfail-1@sink.test"], body("slow")), (250, ""))
        self.stalled("the deferral inside its status sync")
        # Meanwhile, on the same (only) I/O thread: a new session is greeted,
        # its message accepted and delivered.
        self.assertEqual(transaction(d.port, "news@example.com", ["ok-1@sink.test"], body("fast")), (250, ""))
        wait_for(lambda: self.sink.received("ok-1"), what="the other message delivered")
        self.assertEqual([e for e in d.events() if e["type"] == "deferred"], [], "not before its status is synced")
        # (ok-1's file goes once its outcome is recorded, a little after the sink's copy.)
        wait_for(lambda: len(d.queue_ids()) == 1, what="ok-1's file removed")
        slow = [i for i in d.queue_ids() if i not in d.queue_ids("deferred")]
        self.assertEqual(len(slow), 1, "the deferred message waits in active/")
        os.unlink(self.gate)  # the disk answers
        ev = wait_for(lambda: [e for e in d.events() if e["type"] == "deferred"], what="the deferral")[0]
        self.assertEqual((ev["recipient"], ev["code"]), ("tempfail-1@sink.test", 451))
        wait_for(lambda: d.queue_ids("deferred") == slow, what="the message in deferred/")
        with open(os.path.join(d.spool, "status", slow[0])) as f:
            self.assertIn("\tdeferred\t1\t", f.read())
        self.stop_cleanly(d)

    def test_a_stop_waits_for_a_status_sync_that_outlives_the_grace_period(self):
        # SIGTERM while a deferral's status sync hangs: after the 15 s grace
        # the I/O threads stop, and the daemon then waits for the sync (not
        # tearing down the spool under it), and exits 0 once it is done.
        d = self.slow_daemon({"RICOCHET_FAULT_STALL": "/spool/status/"}, server_extra="")
        self.assertEqual(transaction(d.port, "news@example.com", ["tempfail-1@sink.test"], body("stuck")), (250, ""))
        self.stalled("the deferral inside its status sync")
        d.proc.terminate()
        wait_for(lambda: "ricochetd stopped" in d.log(), timeout=40, what="the I/O threads stopped after the grace")
        self.assertIsNone(d.proc.poll(), "exited with a sync still running")
        os.unlink(self.gate)
        self.assertEqual(d.proc.wait(timeout=20), 0)
        d.check_sanitizers()
        with open(os.path.join(d.spool, "status", d.queue_ids()[0])) as f:
            self.assertIn("\tdeferred\t1\t", f.read(), "the sync that finished after the stop")

    def test_a_retry_reading_its_file_from_a_slow_disk_holds_up_no_other_mail(self):
        d = self.slow_daemon({"RICOCHET_FAULT_STALL_OPEN": "/spool/deferred/"}, interval="1s", gate_shut=False)
        self.assertEqual(transaction(d.port, "news@example.com", ["tempfail-1@sink.test"], body("cold")), (250, ""))
        wait_for(lambda: d.queue_ids("deferred"), what="the first deferral")
        open(self.gate, "w").close()  # from now on, opening a file in deferred/ waits
        self.stalled("a retry reading its file")
        attempts = lambda: [e["attempt"] for e in d.events() if e["type"] == "deferred"]
        made = len(attempts())
        self.assertEqual(transaction(d.port, "news@example.com", ["ok-1@sink.test"], body("warm")), (250, ""))
        wait_for(lambda: self.sink.received("ok-1"), what="the other message delivered")
        self.assertEqual(len(attempts()), made, "the retry waits on the disk")
        os.unlink(self.gate)
        wait_for(lambda: len(attempts()) > made, what="the retry made once the disk answers")
        self.stop_cleanly(d)


class SubmissionAndDelivery(unittest.TestCase):
    RCPTS = ["ok-a@sink.test", "ok-b@sink.test"]
    TEMPORARY = "4xx"  # a refusal that asks the client to try again

    def temporary(self, code):
        return code // 100 == 4

    def setUp(self):
        self.sink = Sink()
        self.cfg = delivery_config({"sink.test": (self.sink.host, self.sink.port)}, interval="1s")

    def tearDown(self):
        self.sink.close()

    def daemon(self):
        d = Daemon(extra_config=self.cfg)
        self.addCleanup(d.cleanup)
        return d

    def submit(self, port, tag):
        return transaction(port, "news@example.com", self.RCPTS, body(tag))

    def delivered(self, tag):
        want = content_of(body(tag))
        got = {}
        for (_, rcpt, data) in self.sink.received():
            if ("X-Tag: %s\r\n" % tag) in data.decode(errors="replace"):
                self.assertEqual(content_of(data), want, "message %s arrived changed" % tag)
                got[rcpt] = got.get(rcpt, 0) + 1
        return got

    def warm_up(self, d):
        """Two messages delivered before the faults, in a daemon life of their
        own: at the next start their files in free/ are ready for reuse at
        once (in a running daemon a finished name waits for the journal's
        next checkpoint, in the checkpointer's own time), so every run with
        the shim reuses one the same way. The other is there to be deleted
        when the disk is full."""
        d.start()
        for tag in ("warm1", "warm2"):
            self.assertEqual(self.submit(d.port, tag), (250, ""))
        wait_for(lambda: len(os.listdir(os.path.join(d.spool, "free"))) == 2 and not d.queue_ids(),
                 what="two files in free/")
        d.stop()

    def run_once(self, n, errno, warm=False, match=None, label=None):
        """label: what tells this run's message apart in the sink (n when
        not given; aimed runs share their n)."""
        d = self.daemon()
        if warm:
            self.warm_up(d)
        run = FaultRun(d, n, errno, match=match)
        self.assertIsNone(run.start())
        run.go()
        tag = "t%d-%s" % (errno, n if label is None else label)
        code, text = self.submit(d.port, tag)
        at_reply = len(run.trace.lines())
        # Delivery gets a few seconds; a fault may have put it off (a
        # status that could not be written is retried after 60 s): the
        # restart below finishes it either way.
        try:
            wait_for(lambda: len(self.delivered(tag)) == 2 and not d.queue_ids(), timeout=3, what="delivery")
        except AssertionError:
            pass
        failed = run.trace.failed()
        run.finish(self)
        self.assertLessEqual(len(failed), 1)
        point = failed[0] if failed else None
        if code != 250:
            # Refused: a temporary reply, never 5xx, and only for a fault
            # that hit this message's commit.
            self.assertTrue(self.temporary(code), "%d %s under fault %s" % (code, text, point))
            self.assertIsNotNone(point, "%d %s without a fault" % (code, text))
        elif point and int(point[0]) <= at_reply and point[1] in ("syncfs", "fsync", "fdatasync") \
                and ("/spool/incoming" in point[2] or point[2].endswith("/spool/active")):
            # A failed sync is never taken as done: that batch is refused
            # (a failed write may be written again, a failed sync not).
            self.fail("250 after the queue file's %s failed (%s)" % (point[1], point))
        # The same daemon directory, no shim: the promise is kept.
        d.start()
        d.ctl("queue", "flush", "--all", check=False)  # 0 matched: exit 1
        if code != 250:
            code2, text2 = self.submit(d.port, tag + "r")  # the client sends again
            self.assertEqual(code2, 250, text2)
            tag_ok = tag + "r"
            self.assertEqual(self.delivered(tag), {}, "a refused message was delivered (fault %s)" % (point,))
        else:
            tag_ok = tag
        got = wait_for(lambda: (lambda g: g if len(g) == 2 else None)(self.delivered(tag_ok)), timeout=30,
                       what="delivery of %s after fault %s" % (tag_ok, point))
        wait_for(lambda: not d.queue_ids(), timeout=30, what="an empty queue")
        if code != 250:
            self.assertEqual(self.delivered(tag), {}, "a refused message was delivered (fault %s)" % (point,))
        self.assertEqual(spool_files(d, "incoming"), [])
        self.assertEqual(spool_files(d, "corrupt"), [], "fault %s" % (point,))
        # Each recipient's delivery is in the event log (the state store's
        # source of truth for a campaign system), once or, when the fault
        # stopped its status from being written, again for the repeat.
        for r in self.RCPTS:
            evs = [e for e in d.events() if e["type"] == "delivered" and e.get("recipient") == r
                   and e.get("queue_id")]
            self.assertTrue(evs, "no delivered event for %s (fault %s)" % (r, point))
        dup = {r: c for r, c in got.items() if c > 1}
        d.stop()
        return point, code, dup

    def count(self, errno, warm=False):
        d = self.daemon()
        if warm:
            self.warm_up(d)
        run = FaultRun(d, 0, errno)
        self.assertIsNone(run.start())
        run.go()
        self.assertEqual(self.submit(d.port, "count%d" % errno)[0], 250)
        wait_for(lambda: len(self.delivered("count%d" % errno)) == 2 and not d.queue_ids(), what="delivery")
        return run.stop_and_count()

    def check(self, errno):
        calls, results = sweep(self, lambda: self.count(errno), lambda n: self.run_once(n, errno))
        results = [r for r in results if r]
        refused = [p for p, code, _ in results if code != 250]
        dups = [(p, dup) for p, _, dup in results if dup]
        print("\n%s%s: %d calls, %d failed one by one: %d refused with %s, %d repeated a delivery %s" % (
            type(self).__name__ + " ", "EIO" if errno == EIO else "ENOSPC", calls, len(results), len(refused),
            self.TEMPORARY, len(dups),
            sorted({call_kind(p) for p, _ in dups if p})))

    def test_eio_at_every_call(self):
        self.check(EIO)

    def test_enospc_at_every_spool_call(self):
        # A full disk: the commit first deletes the finished files kept for
        # reuse, then tries once more (the 250 then still means durable).
        # Each is aimed by kind (aimed()): the spool's checkpointer writes
        # the journal's header and syncs in its own time, so a call's number
        # differs from one run to the next.
        lines = self.count(ENOSPC, warm=True)
        spool = [n for n in fault_points(lines, stride=False) if "/spool/" in lines[n - 1][2]]
        self.assertGreater(len(spool), 3)
        results = {}
        for n in spool:
            match, k = aimed(lines, n)
            with self.subTest(n=n, call=" ".join(lines[n - 1][1:3]), match=match, k=k):
                results[(match, k)] = self.run_once(k, ENOSPC, warm=True, match=match, label=n)
        # The first write of the queue file is one of them: answered 250
        # after the free file was dropped and the write tried again.
        first = results.get(("writev /spool/incoming/", 1))
        self.assertIsNotNone(first, "the queue file's first write is not a failure point: %s" % sorted(results))
        self.assertIsNotNone(first[0], "the queue file's first write was not failed")
        self.assertEqual((first[0][1], first[1]), ("writev", 250), first)
        # A call of the checkpointer's (a header write, a sync) counted at the
        # end of the counting run may come after a fault run's end: missed.
        print("\nENOSPC on the spool: %d calls aimed at one by one: %d failed, %d refused with 4xx" % (
            len(results), sum(1 for r in results.values() if r and r[0]),
            sum(1 for r in results.values() if r and r[1] != 250)))



class HttpInjection(SubmissionAndDelivery):
    """The same through the HTTP API: POST /v1/messages with the raw
    message. A 202 is the 250 (the queue file and its directory synced); a
    commit that failed is 503, and the client's retry is delivered."""
    TEMPORARY = "503"

    def temporary(self, code):
        return code == 503

    def submit(self, port, tag):
        data = json.dumps({"from": "news@example.com", "to": self.RCPTS, "content": body(tag)}).encode()
        try:
            status, reply = http(self.current, "POST", "/v1/messages", data)  # one daemon per run
        except OSError as e:
            return 0, "no reply: %s" % e
        self.assertNotEqual(status // 100, 4, "a client error for a disk fault: %d %s" % (status, reply))
        return (250, "") if status == 202 else (status, str(reply))

    def daemon(self):
        self.current = super().daemon()
        return self.current


def http(d, method, path, data=None, ctype="application/json"):
    """(status, parsed JSON or text) of one API request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port, path), data=data, method=method,
                                 headers={"Content-Type": ctype} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class OperatorChanges(unittest.TestCase):
    """An operator's change through the API, each a write to the state store
    said to be done only once synced: DELETE /v1/suppressions/X and POST
    /v1/campaigns/X/pause. A 200 after a failed write or sync of the state
    store's WAL would be a change a power loss can undo; the fault must get
    503, and the operator's retry then holds across a restart."""
    ENTRY = "blocked@shop.example"
    CAMPAIGN = "spring"

    def cfg(self):
        return '[breaker]\nmin_messages = 10\nscopes = ["campaign"]\n'

    def suppressed(self, d):
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@shop.example")
            code, _ = s.rcpt(self.ENTRY)
            s.rset()
        return code == 550

    def paused(self, d):
        status, body = http(d, "GET", "/v1/campaigns/" + self.CAMPAIGN)
        return status == 200 and body.get("state") == "paused"

    def prepare(self, d):
        status, body = http(d, "PUT", "/v1/suppressions", ('{"entry":"%s"}\n' % self.ENTRY).encode(),
                            "application/x-ndjson")
        self.assertEqual((status, body["imported"]), (200, 1), body)
        self.assertTrue(self.suppressed(d))

    def change(self, op, d):
        if op == "delete":
            return http(d, "DELETE", "/v1/suppressions/" + self.ENTRY)
        return http(d, "POST", "/v1/campaigns/%s/pause" % self.CAMPAIGN, b"")

    def done(self, op, d):
        return not self.suppressed(d) if op == "delete" else self.paused(d)

    def life(self, op, n):
        d = Daemon(extra_config=self.cfg())
        self.addCleanup(d.cleanup)
        run = FaultRun(d, n)
        self.assertIsNone(run.start())
        self.prepare(d)
        run.go()
        status, body = self.change(op, d)
        at_reply = len(run.trace.lines())
        return d, run, status, body, at_reply

    def count(self, op):
        d, run, status, body, at_reply = self.life(op, 0)
        self.assertEqual(status, 200, body)
        lines = run.stop_and_count()
        # Said done only once synced: the WAL's fdatasync comes before the answer.
        self.assertIn(("fdatasync", "DIR/state.db-wal"), [call_kind(l) for l in lines[:at_reply]],
                      "the %s was answered before the state store synced it" % op)
        return lines

    def run_once(self, op, n):
        d, run, status, body, at_reply = self.life(op, n)
        failed = run.trace.failed()
        point = failed[0] if failed else None
        first = status
        if status != 200:
            self.assertEqual(status, 503, "%s under fault %s" % (body, point))
            self.assertIsNotNone(point, "%d %s without a fault" % (status, body))
            # The operator tries again at once, the fault past: a 200 (or,
            # for a removal, 404) now must be as durable as a first one.
            status, body = self.change(op, d)
            self.assertIn(status, (200, 404, 503) if op == "delete" else (200, 503), body)
        elif point and int(point[0]) <= at_reply and point[2].endswith("state.db-wal"):
            self.fail("200 after the state store's WAL %s failed (%s)" % (point[1], point))
        run.finish(self)
        d.start()
        if status in (200, 404):
            self.assertTrue(self.done(op, d), "the %s answered %d did not survive a restart (fault %s)" % (
                op, status, point))
        else:
            status2, body2 = self.change(op, d)  # the operator tries again
            self.assertIn(status2, (200, 404) if op == "delete" else (200,), body2)
            self.assertTrue(self.done(op, d), "the retried %s did not hold (fault %s)" % (op, point))
        d.stop()
        return point, first

    def check(self, op):
        calls, results = sweep(self, lambda: self.count(op), lambda n: self.run_once(op, n))
        refused = [p for p, status in results if status != 200]
        self.assertTrue(refused, "no fault refused the %s: the sweep missed its writes" % op)
        print("\n%s: %d calls, %d failed one by one: %d refused with 503" % (op, calls, len(results), len(refused)))

    def test_delete_suppression_at_every_call(self):
        self.check("delete")

    def test_campaign_pause_at_every_call(self):
        self.check("pause")


class DsnIntake(unittest.TestCase):
    """A bounce report for a delivered message, on the bounce listener."""
    RCPT = "ok-dsn@sink.test"

    def setUp(self):
        self.sink = Sink()
        self.cfg = delivery_config({"sink.test": (self.sink.host, self.sink.port),
                                    "example.com": (self.sink.host, self.sink.port)}, interval="1s")
        self.cfg += "[bounce]\nreturn_to_sender = true\n"  # the sender is told, once

    def tearDown(self):
        self.sink.close()

    def delivered_one(self, d):
        """Delivers a message without faults; its VERP return path."""
        before = len(self.sink.received(self.RCPT))
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            s.sendmail("news@example.com", [self.RCPT], body("dsn"))
        wait_for(lambda: len(self.sink.received(self.RCPT)) > before, what="delivery")
        wait_for(lambda: not d.queue_ids(), what="an empty queue")
        return self.sink.received(self.RCPT)[-1][0]

    def report(self, d, verp):
        return transaction(d.bounce_port, "", [verp], DSN.format(verp=verp, rcpt=self.RCPT).encode())

    def status(self, d):
        return json.loads(d.ctl("recipient", "show", self.RCPT, "--json").stdout)

    def returned(self):
        """DSNs the daemon sent back to the original sender."""
        return [m for m in self.sink.received("news@example.com") if m[0] == ""]

    def run_once(self, n, errno=EIO):
        d = Daemon(extra_config=self.cfg)
        self.addCleanup(d.cleanup)
        run = FaultRun(d, n, errno)
        self.assertIsNone(run.start())
        verp = self.delivered_one(d)
        returned0 = len(self.returned())
        run.go()
        code, text = self.report(d, verp)
        at_reply = len(run.trace.lines())
        try:
            wait_for(lambda: len(self.returned()) > returned0, timeout=5, what="the DSN to the sender")
        except AssertionError:
            pass
        failed = run.trace.failed()
        run.finish(self)
        point = failed[0] if failed else None
        self.assertIn(code // 100, (2, 4), "%d %s under fault %s" % (code, text, point))
        if point and int(point[0]) <= at_reply and point[1] == "fdatasync" and point[2].endswith("state.db-wal"):
            # The state store's sync failed before the answer: never a 250
            # (and every later sync fails too, until a restart).
            self.assertEqual(code // 100, 4, "250 after the state store's sync failed (%s)" % (point,))
        d.start()
        d.ctl("queue", "flush", "--all", check=False)  # 0 matched: exit 1
        if code != 250:
            code2, text2 = self.report(d, verp)  # the reporting server sends again
            self.assertEqual(code2, 250, text2)
        st = wait_for(lambda: (lambda st: st if st.get("bounce_count") else None)(self.status(d)), timeout=30,
                      what="the bounce recorded after fault %s" % (point,))
        self.assertEqual((st["status"], st["bounce_count"]), ("bounced", 1), "fault %s" % (point,))
        # The sender hears of it once, whatever failed.
        wait_for(lambda: len(self.returned()) == returned0 + 1, timeout=30,
                 what="one DSN to the sender after fault %s" % (point,))
        wait_for(lambda: not d.queue_ids(), timeout=30, what="an empty queue")
        self.assertEqual(len(self.returned()), returned0 + 1, "fault %s" % (point,))
        self.assertEqual(spool_files(d, "corrupt"), [])
        d.stop()
        return point, code, {}

    def count(self):
        d = Daemon(extra_config=self.cfg)
        self.addCleanup(d.cleanup)
        run = FaultRun(d, 0)
        self.assertIsNone(run.start())
        verp = self.delivered_one(d)
        returned0 = len(self.returned())
        run.go()
        self.assertEqual(self.report(d, verp)[0], 250)
        wait_for(lambda: len(self.returned()) > returned0 and not d.queue_ids(), what="the DSN to the sender")
        return run.stop_and_count()

    def test_eio_at_every_call(self):
        calls, results = sweep(self, self.count, self.run_once)
        results = [r for r in results if r]
        print("\nDSN intake, EIO: %d calls, %d failed one by one: %d refused with 4xx" % (
            calls, len(results), sum(1 for _, code, _ in results if code != 250)))


class Restart(unittest.TestCase):
    """Start-up (recovery) and a flush, with two deferred messages, one on
    hold, a finished file in free/ and an unacknowledged one in incoming/."""

    def setUp(self):
        self.sink = Sink()
        cfg = delivery_config({"sink.test": (self.sink.host, self.sink.port)}, interval="1h")
        self.d = Daemon(extra_config=cfg)
        self.addCleanup(self.d.cleanup)
        d = self.d.start()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            for rcpt in ("once-r1@sink.test", "once-r2@sink.test", "ok-r3@sink.test", "once-r4@sink.test"):
                s.sendmail("news@example.com", [rcpt], body(rcpt.split("@")[0]))
        wait_for(lambda: len(d.queue_ids("deferred")) == 3 and self.sink.received("ok-r3") and not d.queue_ids("active"),
                 what="3 deferred, 1 sent and removed")
        held = [m["id"] for m in d.ctl_json("queue", "list") if "once-r4@sink.test" in json.dumps(m)]
        d.ctl("queue", "hold", held[0])
        d.stop()
        with open(os.path.join(d.spool, "incoming", "0AAAAAAAAAAAA"), "w") as f:
            f.write("never acknowledged")
        self.assertTrue(spool_files(d, "free"))
        self.snapshot = tempfile.mkdtemp(prefix="ricochet-fault-snap-")
        self.addCleanup(shutil.rmtree, self.snapshot, True)
        self.keep = [n for n in os.listdir(d.dir) if n.startswith(("spool", "state.db", "events"))]
        for n in self.keep:
            self.copy(os.path.join(d.dir, n), os.path.join(self.snapshot, n))

    def tearDown(self):
        self.sink.close()

    @staticmethod
    def copy(src, dst):
        if os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)

    def restore(self):
        d = self.d
        for n in os.listdir(d.dir):
            if n.startswith(("spool", "state.db", "events")):
                p = os.path.join(d.dir, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        for n in self.keep:
            self.copy(os.path.join(self.snapshot, n), os.path.join(d.dir, n))

    def deliveries(self):
        return {r: len(self.sink.received(r)) for r in ("once-r1@sink.test", "once-r2@sink.test")}

    def life(self, n):
        """One start-up under the shim (armed from the start) and a flush."""
        d = self.d
        self.restore()
        run = FaultRun(d, n, EIO, armed=True)
        err = run.start()
        if err is not None:
            # A start-up that cannot write its state stops with a message
            # and exit 1 (never a crash).
            self.assertIn("daemon exited with 1:", err)
            d.env = None
            os.unlink(run.trace_path)
            return run, None
        d.ctl("queue", "flush", "--all", check=False)
        try:
            wait_for(lambda: not d.queue_ids("deferred") and not d.queue_ids("active"), timeout=5, what="flush")
        except AssertionError:
            pass
        return run, d

    def count(self):
        run, d = self.life(0)
        self.assertIsNotNone(d)
        return run.stop_and_count()

    def run_once(self, n):
        before = self.deliveries()
        run, started = self.life(n)
        point = None
        if started:
            failed = run.trace.failed()
            point = failed[0] if failed else None
            run.finish(self)
        d = self.d
        d.start()
        d.ctl("queue", "flush", "--all", check=False)
        wait_for(lambda: all(v > before[r] for r, v in self.deliveries().items()), timeout=30,
                 what="both deferred messages delivered after fault %s" % (point,))
        wait_for(lambda: not d.queue_ids("deferred") and not d.queue_ids("active"), timeout=30, what="an empty queue")
        self.assertEqual(len(d.queue_ids("hold")), 1, "the held message stays held (fault %s)" % (point,))
        self.assertEqual(spool_files(d, "incoming"), [])
        self.assertEqual(spool_files(d, "corrupt"), [], "fault %s" % (point,))
        d.stop()
        return point, 250 if started else 0, {}

    def test_eio_at_every_call(self):
        calls, results = sweep(self, self.count, self.run_once)
        print("\nrestart, EIO: %d calls, %d failed one by one: %d start-ups stopped with exit 1" % (
            calls, len(results), sum(1 for _, code, _ in results if code == 0)))

if __name__ == "__main__":
    unittest.main()
