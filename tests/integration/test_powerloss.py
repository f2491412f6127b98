"""Power loss, not only process death, against the real daemon.

tests/faults/fault_inject.cpp in crash mode (RICOCHET_FAULT_CRASH=1) models
the page cache as LazyFS does: file data not covered by an fsync, fdatasync
or syncfs is lost at the crash, names (create, rename, unlink) are kept. At
the N-th call that changes the disk under the daemon's directory it rolls
every unsynced file back and SIGKILLs the daemon. (dm-flakey or
dm-log-writes would model the disk itself, but this VM's kernel has no
device-mapper; the shim runs wherever the tests do.)

Crash points are the distinct calls (first and last of each run of alike
calls) of three scenarios, one run each:

  submission + delivery  two messages delivered first (their files wait in
                         free/ and are written over by the next ones), then
                         four messages on one connection, delivered to the
                         scripted sink; the decisions go to SQLite
  DSN intake             a bounce report for a delivered message
  decision journal       a bounce while another process holds the state
                         store locked: the decisions wait in
                         decisions.pending, then go in (every call on the
                         journal, and the replay's first)

  torn queue files      the submission scenario's commit points again, with
                         files in active/ torn rather than rolled back
                         (RICOCHET_FAULT_TORN: a commit renames before its
                         journal record's fdatasync or its syncfs, so a
                         name can reach the disk with only part of its
                         data; the journal writes an acknowledged one back,
                         the file's check line tells the others)

The daemon runs with the defaults, so a commit appends to spool_dir/journal
and fdatasyncs it; the crash points include those calls and the
checkpointer's syncfs and header writes.

After each crash the daemon is started again without the shim, and:
every message that got a 250 is delivered, octet for octet; none that was
recorded as delivered before the crash (its file renamed to free/) is
delivered again; a report that got a 250 is counted, once; nothing is
left in incoming/ or corrupt/; SQLite's integrity_check says ok.
"""
import json
import os
import re
import smtplib
import sqlite3
import unittest

from harness import Daemon, delivery_config, wait_for
from sink import Sink
from test_faults import DSN, EIO, FaultRun, body, content_of, fault_points, spool_files, transaction

QUEUED = re.compile(r"queued as ([0-9A-Z]{13})")


def crash_run(daemon, nth, torn=0):
    run = FaultRun(daemon, nth, EIO)
    daemon.env["RICOCHET_FAULT_CRASH"] = "1"
    if torn:
        daemon.env["RICOCHET_FAULT_TORN"] = str(torn)
    return run


def integrity(d):
    db = sqlite3.connect(os.path.join(d.dir, "state.db"))
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


class Crash(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        self.cfg = delivery_config({"sink.test": (self.sink.host, self.sink.port),
                                    "example.com": (self.sink.host, self.sink.port)}, interval="1s")
        self.cfg += "[bounce]\nreturn_to_sender = true\n"

    def tearDown(self):
        self.sink.close()

    def daemon(self):
        # A small journal: the shim copies a file whole before its first
        # unsynced write, and the journal is written at every commit.
        d = Daemon(extra_config=self.cfg, server_extra='spool_journal_size = "1MiB"')
        self.addCleanup(d.cleanup)
        return d

    def delivered(self, tag):
        want = content_of(body(tag))
        n = 0
        for (_, rcpt, data) in self.sink.received():
            if ("X-Tag: %s\r\n" % tag) in data.decode(errors="replace"):
                self.assertEqual(content_of(data), want, "message %s arrived changed" % tag)
                n += 1
        return n

    def ended(self, d, run):
        """Waits until the crash, or (no crash point reached) stops the daemon;
        the trace's last line then says which."""
        try:
            wait_for(lambda: d.proc.poll() is not None, timeout=5, what="the crash")
        except AssertionError:
            pass
        crashed = d.proc.poll() is not None
        if not crashed:
            d.proc.terminate()
            d.proc.wait(timeout=20)
        lines = run.trace.lines()
        os.unlink(run.trace_path)
        d.env = None
        d.proc = None
        return crashed, lines

    # -- submission and delivery ------------------------------------------

    def submission_life(self, nth, seq, torn=0):
        d = self.daemon()
        run = crash_run(d, nth, torn)
        self.assertIsNone(run.start())
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            for k in range(2):
                s.sendmail("news@example.com", ["ok-warm%d-%d@sink.test" % (k, seq)], body("warm%d-%d" % (k, seq)))
        wait_for(lambda: len(os.listdir(os.path.join(d.spool, "free"))) == 2 and not d.queue_ids(),
                 what="two files in free/")
        run.go()
        acked = {}  # tag -> queue id
        try:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("client.test")
                for k in range(4):
                    tag = "p%d-%d" % (k, seq)
                    s.mail("news@example.com")
                    s.rcpt("ok-%s@sink.test" % tag)
                    code, msg = s.data(body(tag))
                    if code == 250:
                        acked[tag] = QUEUED.search(msg.decode()).group(1)
        except (smtplib.SMTPException, OSError):
            pass  # the power went
        if nth == 0:
            wait_for(lambda: all(self.delivered(t) for t in acked) and not d.queue_ids(), what="delivery")
        crashed, lines = self.ended(d, run)
        return d, acked, crashed, lines

    def test_submission_and_delivery(self):
        _, acked, _, lines = self.submission_life(0, 0)
        self.assertEqual(len(acked), 4)
        points = fault_points(lines)
        crashes = 0
        for seq, n in enumerate(points, 1):
            with self.subTest(n=n, call=" ".join(lines[n - 1][1:3])):
                d, acked, crashed, trace = self.submission_life(n, seq)
                crashes += crashed
                # Recorded as delivered before the crash: the file went to free/.
                finished = {l[2].split("/")[-1] for l in trace if l[1] == "renameat" and "/free/" in l[2] and l[3] == "ok"}
                before = {t: self.delivered(t) for t in acked}
                d.start()
                d.ctl("queue", "flush", "--all", check=False)  # 0 matched: exit 1
                for tag in acked:
                    wait_for(lambda: self.delivered(tag) >= 1, timeout=30,
                             what="%s (acknowledged) after a crash at %s" % (tag, trace[-1]))
                wait_for(lambda: not d.queue_ids(), timeout=30, what="an empty queue")
                for tag, qid in acked.items():
                    if qid in finished:
                        self.assertEqual(self.delivered(tag), before[tag],
                                         "%s was delivered again after its delivery was recorded" % tag)
                self.assertEqual(spool_files(d, "incoming"), [])
                self.assertEqual(spool_files(d, "corrupt"), [], "crash at %s" % (trace[-1],))
                d.stop()
                self.assertEqual(integrity(d), "ok")
        self.assertGreater(crashes, len(points) // 2)
        print("\nsubmission + delivery: %d calls, %d crash points" % (len(lines), len(points)))

    def test_submission_with_torn_queue_files(self):
        """A commit renames its files into active/ before its one syncfs, so
        a power loss can leave a name whose data reached the disk only in
        part. Here the first 4 KiB of each unsynced file in active/ reached
        it and the rest did not (the messages are bigger than that); each
        crash point of a commit is tried. Every acknowledged message is
        delivered whole, no torn file is ever delivered, and what recovery
        set aside in corrupt/ was never acknowledged."""
        _, acked, _, lines = self.submission_life(0, 0)
        self.assertEqual(len(acked), 4)
        # The journal's append and fdatasync too (server.spool_journal, the
        # default): a file torn under a record whose fdatasync the crash cut
        # off was never acknowledged; under a whole record it is written back.
        commit = [n for n in fault_points(lines, stride=False)
                  if "/incoming/" in lines[n - 1][2] or "/active/" in lines[n - 1][2] or lines[n - 1][1] == "syncfs"
                  or lines[n - 1][2].endswith("/journal")]
        set_aside = 0
        # Every commit point even in the sanitizer pass (RICOCHET_FAULT_STRIDE
        # is not applied): they are few, and a stride can skip every one
        # that tears a file.
        for seq, n in enumerate(commit, 1):
            with self.subTest(n=n, call=" ".join(lines[n - 1][1:3])):
                d, acked, crashed, trace = self.submission_life(n, 1000 + seq, torn=4096)
                d.start()
                d.ctl("queue", "flush", "--all", check=False)
                for tag in acked:
                    wait_for(lambda: self.delivered(tag) >= 1, timeout=30,
                             what="%s (acknowledged) after a crash at %s" % (tag, trace[-1]))
                wait_for(lambda: not d.queue_ids(), timeout=30, what="an empty queue")
                for k in range(4):
                    self.delivered("p%d-%d" % (k, 1000 + seq))  # asserts every copy that arrived is whole
                corrupt = spool_files(d, "corrupt")
                self.assertFalse(set(corrupt) & set(acked.values()), "an acknowledged message was set aside")
                set_aside += len(corrupt)
                d.stop()
                self.assertEqual(integrity(d), "ok")
        self.assertGreater(set_aside, 0, "no crash point left a torn file: the check went untested")
        print("\ntorn queue files: %d commit crash points, %d torn file(s) set aside" % (len(commit), set_aside))

    # -- DSN intake ---------------------------------------------------------

    def dsn_life(self, nth, seq):
        d = self.daemon()
        run = crash_run(d, nth)
        self.assertIsNone(run.start())
        rcpt = "ok-dsn%d@sink.test" % seq
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            s.sendmail("news@example.com", [rcpt], body("dsn%d" % seq))
        wait_for(lambda: self.sink.received(rcpt) and not d.queue_ids(), what="delivery")
        verp = self.sink.received(rcpt)[0][0]
        run.go()
        code = 0
        try:
            with smtplib.SMTP("127.0.0.1", d.bounce_port, timeout=30) as s:
                s.sendmail("", [verp], DSN.format(verp=verp, rcpt=rcpt).encode())
            code = 250
        except (smtplib.SMTPException, OSError):
            pass
        if nth == 0:
            wait_for(lambda: [m for m in self.sink.received("news@example.com") if m[0] == ""], what="the DSN")
            wait_for(lambda: not d.queue_ids(), what="an empty queue")
        crashed, lines = self.ended(d, run)
        return d, rcpt, verp, code, crashed, lines

    def test_dsn_intake(self):
        _, _, _, code, _, lines = self.dsn_life(0, 0)
        self.assertEqual(code, 250)
        points = fault_points(lines)
        unparsed = 0
        for seq, n in enumerate(points, 1):
            with self.subTest(n=n, call=" ".join(lines[n - 1][1:3])):
                d, rcpt, verp, code, crashed, trace = self.dsn_life(n, seq)
                d.start()
                if code != 250:
                    with smtplib.SMTP("127.0.0.1", d.bounce_port, timeout=30) as s:  # sent again
                        s.sendmail("", [verp], DSN.format(verp=verp, rcpt=rcpt).encode())
                r = d.ctl("recipient", "show", rcpt, "--json", check=False)
                st = json.loads(r.stdout) if r.returncode == 0 else {}
                if code == 250 or st:
                    # Acknowledged: counted, once. (Or sent again, and the
                    # message's own rows survived: counted once.)
                    self.assertEqual((st.get("status"), st.get("bounce_count")), ("bounced", 1),
                                     "the report (%d) after a crash at %s" % (code, trace[-1]))
                else:
                    # Not acknowledged, and the crash came within a second
                    # of the delivery: the message's decisions (recorded,
                    # not yet synced) went with it, so the report sent again
                    # cannot be tied to an address. It is kept, not lost.
                    kept = os.listdir(os.path.join(d.spool, "dsn-unparsed"))
                    self.assertEqual(len(kept), 1, "crash at %s" % (trace[-1],))
                    unparsed += 1
                self.assertEqual(spool_files(d, "corrupt"), [])
                d.stop()
                self.assertEqual(integrity(d), "ok")
        print("\nDSN intake: %d calls, %d crash points; %d reports sent again found their message's rows lost"
              " (kept in dsn-unparsed)" % (len(lines), len(points), unparsed))

    # -- the decision journal ----------------------------------------------

    def journal_life(self, nth, seq):
        """A bounce while the state store is locked by another process: its
        decision waits in decisions.pending (fsynced), then goes in once the
        lock is gone."""
        d = self.daemon()
        run = crash_run(d, nth)
        self.assertIsNone(run.start())
        rcpt = "reject-j%d@sink.test" % seq
        db = sqlite3.connect(os.path.join(d.dir, "state.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        locked = True
        try:
            run.go()
            # The submission's own decision (queued) already waits for the
            # lock and goes to the journal before the 250.
            acked = transaction(d.port, "news@example.com", [rcpt], body("j%d" % seq))[0] == 250
            wait_for(lambda: d.proc.poll() is not None or "kept in" in d.log(), timeout=60,
                     what="the decision kept in the journal")
            db.execute("ROLLBACK")
            locked = False
            if nth == 0:
                wait_for(lambda: d.ctl("recipient", "show", rcpt, check=False).returncode == 0, timeout=60,
                         what="the decision recorded once the store is back")
        finally:
            if locked:
                db.execute("ROLLBACK")
            db.close()
        crashed, lines = self.ended(d, run)
        return d, rcpt, acked, crashed, lines

    def test_decision_journal(self):
        _, _, acked, _, lines = self.journal_life(0, 0)
        self.assertTrue(acked)
        first = next(i for i, l in enumerate(lines, 1) if "decisions.pending" in l[2])
        # Every call on the journal; of the rest after its first write (the
        # replay into SQLite), the first and the last of each run.
        points = [n for n in fault_points(lines, stride=False)
                  if n >= first and ("decisions.pending" in lines[n - 1][2] or n == first + 1)]
        points = sorted(set(points) | {i for i, l in enumerate(lines, 1) if "decisions.pending" in l[2]})
        self.assertGreaterEqual(len(points), 3)
        for seq, n in enumerate(points, 1):
            with self.subTest(n=n, call=" ".join(lines[n - 1][1:3])):
                d, rcpt, acked, crashed, trace = self.journal_life(n, seq)
                self.assertTrue(crashed, trace[-1])
                d.start()
                if not acked:  # the power went before the 250: the client sends again
                    self.assertEqual(transaction(d.port, "news@example.com", [rcpt], body("j%d" % seq))[0], 250)
                # What the journal holds goes in before the listeners open;
                # a bounce not yet in it was never finished: the message is
                # still queued, tried again, and bounces again. Counted once.
                d.ctl("queue", "flush", "--all", check=False)  # 0 matched: exit 1
                st = wait_for(lambda: (lambda r: json.loads(r.stdout) if r.returncode == 0 and
                                       json.loads(r.stdout).get("bounce_count") else None)(
                    d.ctl("recipient", "show", rcpt, "--json", check=False)), timeout=30,
                    what="the bounce recorded after a crash at %s" % (trace[-1],))
                # Not acknowledged, the first copy may still have been queued
                # (the window between the commit and the 250, here as long
                # as the store's lock wait): then both copies bounce, and
                # both count.
                self.assertEqual(st["status"], "bounced")
                self.assertIn(st["bounce_count"], (1,) if acked else (1, 2), "crash at %s" % (trace[-1],))
                wait_for(lambda: not d.queue_ids(), timeout=30, what="an empty queue")
                d.stop()
                self.assertEqual(integrity(d), "ok")
        print("\ndecision journal: %d calls, %d crash points" % (len(lines), len(points)))


if __name__ == "__main__":
    unittest.main()
