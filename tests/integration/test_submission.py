"""Submission against the real daemon: load from concurrent smtplib and swaks
clients, pipelining, every kind of bad input, and ricochetctl's queue commands."""
import os
import re
import smtplib
import stat
import subprocess
import threading
import json
import unittest
import urllib.request

from harness import Daemon, RawClient, delivery_config, message, wait_for
from sink import Sink

QUEUED = re.compile(r"queued as ([0-9A-Z]{13})")


def smtplib_send(port, n, seq0, ids, errors, campaign=None):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("client.test")
            for i in range(n):
                s.mail("sender@example.com")
                code, _ = s.rcpt("rcpt%d@example.net" % (seq0 + i))
                assert code == 250, code
                code, msg = s.data(message(seq0 + i, campaign))
                assert code == 250, (code, msg)
                ids.append(QUEUED.search(msg.decode()).group(1))
    except Exception as e:  # reported by the test thread
        errors.append(repr(e))


def swaks_send(port, n, seq0, ids, errors):
    for i in range(n):
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", "sender@example.com",
                            "--to", "swaks%d@example.org" % (seq0 + i), "--header", "X-Test-Seq: %d" % (seq0 + i),
                            "--header", "X-Campaign-ID: swaks-run", "--timeout", "60"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        m = QUEUED.search(r.stdout)
        if r.returncode != 0 or not m:
            errors.append("swaks exit %d: %s" % (r.returncode, r.stdout[-500:]))
            return
        ids.append(m.group(1))


class SubmissionLoad(unittest.TestCase):
    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def test_1000_messages_from_8_concurrent_clients_all_land_with_distinct_ids(self):
        ids, errors, threads = [], [], []
        # 6 smtplib sessions x 160 messages + 2 swaks loops x 20 messages = 1000
        for c in range(6):
            threads.append(threading.Thread(target=smtplib_send, args=(self.d.port, 160, c * 1000, ids, errors, "load")))
        for c in range(2):
            threads.append(threading.Thread(target=swaks_send, args=(self.d.port, 20, 10000 + c * 1000, ids, errors)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 1000)
        self.assertEqual(len(set(ids)), 1000, "queue ids must be distinct")
        listed = self.d.ctl_json("queue", "list")
        self.assertEqual(sorted(m["id"] for m in listed), sorted(ids))
        self.assertEqual(sum(1 for m in listed if m["campaign"] == "swaks-run"), 40)
        summary = self.d.ctl_json("queue", "summary")
        self.assertEqual(summary["total"]["messages"], 1000)
        self.assertEqual({r["domain"]: r["total"] for r in summary["domains"]}, {"example.net": 960, "example.org": 40})
        queued = [e for e in self.d.events() if e["type"] == "queued"]
        self.assertEqual(len(queued), 1000)
        self.assertEqual(os.listdir(os.path.join(self.d.spool, "incoming")), [])

    def test_pipelining_replies_in_order_and_two_messages_in_one_burst(self):
        c = RawClient(self.d.port)
        self.assertTrue(c.reply().startswith("220 ricochet.test"))
        ehlo = c.cmd("EHLO client.test")
        self.assertIn("PIPELINING", ehlo)
        c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<bad address>\r\n"
               "RCPT TO:<c@example.net>\r\nDATA\r\n")
        self.assertTrue(c.reply().startswith("250 2.1.0"))
        self.assertTrue(c.reply().startswith("250 2.1.5"))
        self.assertTrue(c.reply().startswith("553 5.1.3"))
        self.assertTrue(c.reply().startswith("250 2.1.5"))
        self.assertTrue(c.reply().startswith("354"))
        # Message 1's data, its dot, and all of message 2 in one write.
        c.send(message(1) + ".\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<d@example.net>\r\nDATA\r\n")
        first = c.reply()
        self.assertRegex(first, r"^250 2\.0\.0 Ok: queued as [0-9A-Z]{13}$")
        self.assertTrue(c.reply().startswith("250 2.1.0"))
        self.assertTrue(c.reply().startswith("250 2.1.5"))
        self.assertTrue(c.reply().startswith("354"))
        c.send(message(2) + ".\r\nQUIT\r\n")
        second = c.reply()
        self.assertRegex(second, r"^250 2\.0\.0 Ok: queued as ")
        self.assertTrue(c.reply().startswith("221"))
        id1, id2 = QUEUED.search(first).group(1), QUEUED.search(second).group(1)
        shown = self.d.ctl_json("queue", "show", id1)
        self.assertEqual([r["recipient"] for r in shown["recipients"]], ["b@example.net", "c@example.net"])
        self.assertIn("X-Test-Seq: 1", shown["headers"])
        self.assertIn("Received: from client.test ([127.0.0.1])", shown["headers"])
        self.assertEqual(sorted(self.d.queue_ids()), sorted([id1, id2]))


def bdat(body, cuts):
    """body (bytes) as BDAT chunks cut at the given offsets, the last one LAST."""
    edges = [0] + list(cuts) + [len(body)]
    parts = [body[a:b] for a, b in zip(edges, edges[1:])]
    return b"".join(b"BDAT %d%s\r\n" % (len(p), b" LAST" if i == len(parts) - 1 else b"") + p
                    for i, p in enumerate(parts))


def spool_commits(d):
    """Group commits of the spool so far, from /metrics (the Prometheus parser)."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % d.http_port, timeout=30).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ricochet_spool_commit_seconds_count":
                return sample.value
    raise AssertionError("no ricochet_spool_commit_seconds_count in /metrics")


class Chunking(unittest.TestCase):
    """RFC 3030 BDAT on a real connection: messages sent without waiting for
    their replies, made durable together, answered in order, delivered as
    they were sent."""

    def setUp(self):
        self.sink = Sink()
        self.d = Daemon(submission_extra="max_message_size = 5000000\n",
                        extra_config=delivery_config({"example.net": (self.sink.host, self.sink.port)})).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def test_forty_messages_in_one_write_commit_together_and_are_answered_in_order(self):
        c = RawClient(self.d.port, timeout=60)
        self.assertTrue(c.reply().startswith("220"))
        self.assertIn("CHUNKING", c.cmd("EHLO client.test"))
        commits_before = spool_commits(self.d)
        burst, want, bodies = b"", [], {}
        for i in range(40):
            body = message(100 + i, size=300 * i).encode()
            bodies[i] = body
            burst += b"MAIL FROM:<a@example.com>\r\nRCPT TO:<rcpt%d@example.net>\r\n" % i
            burst += bdat(body, (len(body) // 3, 2 * len(body) // 3))
            want += ["250", "250", "250", "250", "250 queued"]
            if i == 20:  # a refused transaction in the middle changes nothing around it
                burst += b"MAIL FROM:<a@example.com>\r\nRCPT TO:<bad address>\r\nBDAT 5 LAST\r\nhelloRSET\r\nNOOP\r\n"
                want += ["250", "553", "503", "250", "250"]
        c.send(burst + b"QUIT\r\n")
        got = [c.reply() for _ in range(len(want) + 1)]
        self.assertTrue(got[-1].startswith("221"), got[-1])
        ids = []
        for w, r in zip(want, got):
            if w == "250 queued":
                self.assertRegex(r, r"^250 2\.0\.0 Ok: queued as [0-9A-Z]{13}$")
                ids.append(QUEUED.search(r).group(1))
            else:
                self.assertEqual(r[:3], w, r)
        self.assertEqual(len(set(ids)), 40)
        # Several messages of the one connection in each group commit (one
        # message per commit when each waits for the last one's reply).
        self.assertLess(spool_commits(self.d) - commits_before, 40)
        wait_for(lambda: len(self.sink.messages) >= 40, what="40 deliveries")
        self.assertEqual(len(self.sink.messages), 40)
        # The n-th reply names the n-th message: its recipient, its content.
        for i, qid in enumerate(ids):
            got = [m for m in self.sink.messages if ("id %s" % qid).encode() in m[2]]
            self.assertEqual(len(got), 1, qid)
            self.assertEqual(got[0][1], "rcpt%d@example.net" % i)
            self.assertTrue(got[0][2].endswith(bodies[i]), "message %d changed on the way" % i)

    def test_a_refused_large_message_leaves_nothing_in_the_next_one(self):
        # Message 1 goes on to a spill file (over 256 KiB) and is refused at
        # its end (50 Received: a mail loop); message 2, sent right behind
        # it, spills too. It must arrive with its own content, not message
        # 1's from the file it left behind. With BDAT, and with DATA.
        loop = "".join("Received: from hop%d.test by x.test; Tue, 1 Dec 2026 00:00:00 +0000\r\n" % i
                       for i in range(50))
        first = message(1, size=400000, extra_headers=loop).encode()
        second = message(2, size=400000).encode().replace(b"x" * 70, b"z" * 70)
        for mode in ("bdat", "data"):
            c = RawClient(self.d.port, timeout=60)
            c.reply()
            c.cmd("EHLO client.test")
            env = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<%s-%s@example.net>\r\n"
            if mode == "bdat":
                c.send(env % (b"first", mode.encode()) + bdat(first, ()) + env % (b"second", mode.encode()) + bdat(second, ()))
                got = [c.reply() for _ in range(6)]
                self.assertEqual([g[:3] for g in got], ["250", "250", "554", "250", "250", "250"], got)
            else:
                c.send(env % (b"first", mode.encode()) + b"DATA\r\n")
                self.assertEqual([c.reply()[:3] for _ in range(3)], ["250", "250", "354"])
                c.send(first + b".\r\n" + env % (b"second", mode.encode()) + b"DATA\r\n")
                self.assertEqual([c.reply()[:3] for _ in range(4)], ["554", "250", "250", "354"])
                c.send(second + b".\r\n")
                got = [c.reply()]
            self.assertRegex(got[-1], r"queued as ")
            c.cmd("QUIT")
            wait_for(lambda: self.sink.received("second-" + mode), what="message 2 (%s)" % mode)
            delivered = self.sink.received("second-" + mode)[0][2]
            self.assertTrue(delivered.endswith(second), mode + ": message 2 arrived with other content")
        self.assertEqual(self.sink.received("first"), [])

    def test_a_large_message_in_odd_chunks_arrives_whole_and_limits_hold(self):
        # 2.7 MB: past the 256 KiB kept in memory, it goes on to the spool as
        # it arrives. Chunk edges fall inside lines and between CR and LF;
        # bare LFs become CRLF, dots stay as sent.
        lines = [b".%05d " % i + b"y" * (i % 900) for i in range(6000)]
        body = b"Subject: big\r\nX-Test-Seq: 7\r\n\r\n" + b"\r\n".join(lines[:3000]) + b"\n" + \
            b"\r\n".join(lines[3000:]) + b"\r\n"
        cuts = list(range(1, len(body), 65521))
        cr = body.index(b"\r\n", 40000) + 1  # one edge between a CR and its LF
        cuts = sorted(set(cuts + [cr]))
        c = RawClient(self.d.port, timeout=60)
        c.reply()
        c.cmd("EHLO client.test")
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<big@example.net>\r\n" + bdat(body, cuts))
        replies = [c.reply() for _ in range(2 + len(cuts) + 1)]
        self.assertEqual([r[:3] for r in replies], ["250"] * len(replies), replies[-3:])
        self.assertRegex(replies[-1], r"queued as ")
        # Over max_message_size in total: the chunk that passes it gets 552,
        # the one pipelined after it is read and discarded, the session goes on.
        over = (b"z" * 998 + b"\r\n") * 5001  # 5,001,000 octets, the limit 5,000,000
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<over@example.net>\r\n" +
               bdat(over, (2500000, 4990000, 5000500)) + b"NOOP\r\n")
        self.assertEqual([c.reply()[:3] for _ in range(7)], ["250", "250", "250", "250", "552", "503", "250"])
        self.assertEqual(c.cmd("QUIT")[:3], "221")
        wait_for(lambda: self.sink.received("big"), what="the large message")
        delivered = self.sink.received("big")[0][2]
        self.assertTrue(delivered.endswith(body.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")),
                        "content changed")
        self.assertEqual(self.sink.received("over"), [])


class BadInput(unittest.TestCase):
    """Each kind of bad input gets its documented reply and nothing is queued."""

    def setUp(self):
        self.d = Daemon(submission_extra='max_message_size = 4096\nmax_recipients = 2\n'
                                         'command_timeout = "1s"\nmax_connections = 3').start()

    def tearDown(self):
        self.d.cleanup()

    def session(self):
        c = RawClient(self.d.port)
        c.reply()
        return c

    def test_replies_to_bad_commands(self):
        c = self.session()
        cases = [
            ("MAIL FROM:<a@example.com>", "503 5.5.1"),    # before EHLO
            ("EHLO", "501 5.5.4"),
            ("EHLO client.test", "250"),
            ("FOO", "500 5.5.2"),
            ("X" * 1200, "500 5.5.2"),                   # line too long
            ("RCPT TO:<b@example.net>", "503 5.5.1"),    # before MAIL
            ("MAIL FROM:<a@@example.com>", "553 5.1.7"),
            ("MAIL FROM:<jörg@example.com>", "553 5.6.7"),
            ("MAIL FROM:<a@example.com> SIZE=999999", "552 5.3.4"),
            ("MAIL FROM:<a@example.com> FOO=BAR", "555 5.5.4"),
            ("MAIL FROM:<a@example.com>", "250 2.1.0"),
            ("DATA", "503 5.5.1"),                       # no RCPT
            ("RCPT TO:<no-domain>", "553 5.1.3"),
            ("RCPT TO:<b@example.net>", "250 2.1.5"),
            ("RCPT TO:<c@example.net>", "250 2.1.5"),
            ("RCPT TO:<d@example.net>", "452 4.5.3"),    # max_recipients = 2
            ("VRFY b@example.net", "252 2.0.0"),
            ("RSET", "250 2.0.0"),
            ("NOOP", "250 2.0.0"),
            ("STARTTLS", "502 5.5.1"),                   # no certificate configured
            ("QUIT", "221 2.0.0"),
        ]
        for line, want in cases:
            got = c.cmd(line)
            self.assertTrue(got.startswith(want), "%r: got %r, want %r" % (line[:40], got, want))
        self.assertEqual(self.d.queue_ids(), [])

    def test_oversize_message_and_long_data_line_are_refused_and_not_queued(self):
        c = self.session()
        c.cmd("EHLO client.test")
        for body, want in [(message(size=8000), "552 5.3.4"),
                           ("Subject: x\r\n\r\n" + "y" * 1500 + "\r\n", "500 5.5.2")]:
            self.assertTrue(c.cmd("MAIL FROM:<a@example.com>").startswith("250"))
            self.assertTrue(c.cmd("RCPT TO:<b@example.net>").startswith("250"))
            self.assertTrue(c.cmd("DATA").startswith("354"))
            c.send(body + ".\r\n")
            got = c.reply()
            self.assertTrue(got.startswith(want), "got %r, want %r" % (got, want))
        # the session is still usable
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.net>")
        c.cmd("DATA")
        c.send(message(1) + ".\r\n")
        self.assertTrue(c.reply().startswith("250 2.0.0"))
        self.assertEqual(len(self.d.queue_ids()), 1)

    def test_smuggled_end_of_data_stays_content(self):
        c = self.session()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.net>")
        c.cmd("DATA")
        c.send("Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\n.\r\n")
        self.assertTrue(c.reply().startswith("250 2.0.0"))
        ids = self.d.queue_ids()
        self.assertEqual(len(ids), 1, "one message, not two")
        self.assertEqual(self.d.ctl_json("queue", "show", ids[0])["recipients"][0]["recipient"], "b@example.net")

    def test_idle_client_gets_421_timeout(self):
        c = self.session()
        got = c.reply()  # nothing sent: the 1 s command time-out fires
        self.assertTrue(got.startswith("421 4.4.2"), got)
        self.assertTrue(c.closed())

class ConnectionLimit(unittest.TestCase):
    def test_the_session_over_the_limit_gets_421(self):
        # its own daemon: BadInput's 1 s time-out would close the held sessions
        d = Daemon(submission_extra="max_connections = 3").start()
        self.addCleanup(d.cleanup)
        def hold_one():
            # The start-up probe's session may still hold a slot for a moment.
            c = RawClient(d.port)
            if c.reply().startswith("220"):
                return c
            c.close()
            return None
        held = [wait_for(hold_one, what="a session slot") for _ in range(3)]
        extra = RawClient(d.port)
        self.assertTrue(extra.reply().startswith("421 4.7.0"))
        for c in held:
            c.close()


class Ctl(unittest.TestCase):
    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def submit(self, rcpt, campaign):
        with smtplib.SMTP("127.0.0.1", self.d.port) as s:
            s.ehlo("t")
            s.mail("sender@example.com")
            s.rcpt(rcpt)
            return QUEUED.search(s.data(message(0, campaign))[1].decode()).group(1)

    def test_queue_commands_with_daemon_running_and_stopped(self):
        a = self.submit("x@one.example", "c1")
        b = self.submit("y@two.example", "c2")
        c = self.submit("z@two.example", "c2")
        mode = stat.S_IMODE(os.stat(os.path.join(self.d.dir, "ricochetd.sock")).st_mode)
        self.assertEqual(mode, 0o600)

        r = self.d.ctl_json("queue", "hold", "--domain", "two.example")
        self.assertEqual(sorted(r["changed"]), sorted([b, c]))
        self.assertEqual(sorted(self.d.queue_ids("hold")), sorted([b, c]))
        # a is active or already deferred (no route to one.example in this test)
        self.assertEqual(sorted(self.d.queue_ids()), sorted([a, b, c]))
        self.assertEqual([m["id"] for m in self.d.ctl_json("queue", "list", "--campaign", "c1")], [a])
        self.assertIn("two.example", self.d.ctl("queue", "summary").stdout)

        r = self.d.ctl_json("queue", "release", c)
        self.assertEqual(r["changed"], [c])
        self.d.ctl("queue", "delete", "--campaign", "c1")
        self.assertNotIn(a, self.d.queue_ids())
        deleted = [e for e in self.d.events() if e["type"] == "admin" and e.get("action") == "delete"]
        self.assertEqual([(e["queue_id"], e["recipient"]) for e in deleted], [(a, "x@one.example")])

        # unknown id: exit 1; bad usage: exit 2
        self.assertEqual(self.d.ctl("queue", "show", "0000000000000", check=False).returncode, 1)
        self.assertEqual(self.d.ctl("queue", "hold", check=False).returncode, 2)
        self.assertEqual(self.d.ctl("queue", "frobnicate", check=False).returncode, 2)

        # daemon stopped: listings and changes still work, on the spool directly
        wait_for(lambda: self.d.queue_ids("deferred") == [c], what="c deferred by its delivery attempt")
        self.d.stop()
        self.assertEqual(sorted(self.d.queue_ids()), sorted([b, c]))
        self.assertEqual(self.d.ctl_json("queue", "show", b)["state"], "hold")
        self.d.ctl("queue", "release", "--all")
        self.assertEqual(self.d.queue_ids("active"), [b])  # c was deferred by its delivery attempt
        self.assertEqual(self.d.queue_ids("hold"), [])
        # and the daemon picks up the new state at start
        self.d.start()
        self.assertIn("1 active, 1 deferred, 0 hold", self.d.log())


class CheckConfig(unittest.TestCase):
    def run_check(self, text):
        d = Daemon(extra_config=text)
        try:
            from harness import BIN
            return subprocess.run([os.path.join(BIN, "ricochetd"), "--config", d.config_path, "--check-config"],
                                  capture_output=True, text=True)
        finally:
            d.cleanup()

    def test_good_and_bad(self):
        self.assertEqual(self.run_check("").returncode, 0)
        r = self.run_check('[bounce]\nheld_after_days = "soon"\n')
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"ricochet\.toml:\d+: bounce\.held_after_days: expected an integer")


class EventsLogRotation(unittest.TestCase):
    """logrotate renames events.jsonl and sends SIGHUP: the daemon writes on
    into a new file of the same name; no event is lost or written twice."""

    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def send(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail("sender@example.com", [rcpt], message(1))

    def lines(self, path):
        import json
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def test_sighup_reopens_the_events_log(self):
        self.send("before@example.net")
        wait_for(lambda: any(e["recipient"] == "before@example.net" for e in self.d.events()), what="first event")
        # The shipped logrotate configuration, aimed at this daemon's file and
        # pid, run by the real logrotate: it renames the file and sends SIGHUP.
        src = os.path.join(os.environ.get("RICOCHET_SOURCE", "../.."), "etc", "logrotate.d", "ricochet")
        with open(src) as f:
            conf = f.read()
        conf = conf.replace("/var/lib/ricochet/events.jsonl", self.d.events_path)
        conf = conf.replace("su ricochet ricochet", "su root root")
        conf = re.sub(r"postrotate\n.*?\n\s*endscript", "postrotate\n        kill -HUP %d\n    endscript" % self.d.proc.pid,
                      conf, flags=re.S)
        conf_path = os.path.join(self.d.dir, "logrotate.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(self.d.dir, "logrotate.state"), conf_path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rotated = self.d.events_path + ".1"
        self.assertTrue(os.path.exists(rotated), os.listdir(self.d.dir))
        # The reopen creates the file again: that is the sign it happened.
        wait_for(lambda: os.path.exists(self.d.events_path), what="a new events log")
        self.send("after@example.net")
        wait_for(lambda: any(e["recipient"] == "after@example.net" for e in self.d.events()), what="event in the new file")
        self.assertIsNone(self.d.proc.poll(), "SIGHUP must not stop the daemon")
        old, new = self.lines(rotated), self.lines(self.d.events_path)
        queued = lambda evs: [e["recipient"] for e in evs if e["type"] == "queued"]
        self.assertEqual(queued(old), ["before@example.net"])
        self.assertEqual(queued(new), ["after@example.net"])
        both = [e["seq"] for e in old + new]
        self.assertEqual(both, sorted(set(both)), "each event once, numbering going on across the files")
        self.assertIn("events log %s reopened" % self.d.events_path, self.d.log())


class EventsLogSelfRotation(unittest.TestCase):
    """The daemon rotates the events log by size: under a submission load,
    every event is in exactly one segment (events.jsonl, .1, .2.gz, ...),
    and GET /v1/events reads through all of them, each event once."""

    def setUp(self):
        self.d = Daemon(server_extra='events_max_size = "16KiB"\nevents_keep = 200').start()

    def tearDown(self):
        self.d.cleanup()

    def segments(self):
        import gzip
        # One file per segment, as the readers take them: while a segment is
        # being compressed, events.jsonl.N and events.jsonl.N.gz may both
        # exist for a moment (the .gz is complete before the plain one goes).
        names = set(os.listdir(self.d.dir))
        out = []
        for name in sorted(names):
            if not name.startswith("events.jsonl") or name.endswith(".gz.tmp"):
                continue
            if name + ".gz" in names:
                continue
            path = os.path.join(self.d.dir, name)
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt") as f:
                out.append((name, [json.loads(l) for l in f if l.strip()]))
        return out

    def test_size_rotation_keeps_every_event_once(self):
        n = 400
        import concurrent.futures

        def send(i):
            with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
                for k in range(i, n, 4):
                    s.sendmail("sender@example.com", ["r%d@example.net" % k], message(k))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(4)))

        def queued():
            # (The daemon rotates while this reads: a segment renamed between
            # the listing and the open is read at the next try.)
            try:
                return sum(1 for _, evs in self.segments() for e in evs if e["type"] == "queued")
            except FileNotFoundError:
                return -1
        wait_for(lambda: queued() >= n, timeout=120, what="%d queued events across the segments" % n)
        # The API reads through every segment, oldest first, each event
        # once, while the daemon goes on writing and rotating.
        got, after = [], 0
        for _ in range(1000):
            with urllib.request.urlopen("http://127.0.0.1:%d/v1/events?after=%d&limit=37" % (self.d.http_port, after),
                                        timeout=30) as r:
                body = json.loads(r.read())
            if not body["events"]:
                break
            got += [e["seq"] for e in body["events"]]
            after = body["last_seq"]
        self.assertEqual(got, sorted(set(got)), "each event once, in order")
        # Stopped (no rotation while the files are read): every event in exactly one segment.
        self.d.stop()
        segs = self.segments()
        names = [name for name, _ in segs]
        self.assertIn("events.jsonl.1", names)
        self.assertTrue(any(name.endswith(".gz") for name in names), names)
        for name in names:
            if name != "events.jsonl" and name != "events.jsonl.1":
                self.assertTrue(name.endswith(".gz"), "older segments are compressed: %s" % names)
        seqs = sorted(e["seq"] for _, evs in segs for e in evs)
        self.assertEqual(len(seqs), len(set(seqs)), "no event written twice")
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "no event lost between segments")
        self.assertEqual(got, seqs[:len(got)], "the API gave every event from the first on, none skipped")
        self.assertGreaterEqual(len(got), n)
        self.assertIn("events log rotated", self.d.log())


if __name__ == "__main__":
    unittest.main()
