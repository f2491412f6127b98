"""Doors that must stay shut, tried against the real daemon: the classic
open-relay tricks on both listeners, the control socket from another user,
and the permissions of everything the daemon writes."""
import os
import smtplib
import socket
import stat
import subprocess
import threading
import time
import unittest

from harness import Daemon, RawClient, delivery_config, message, wait_for
from sink import Sink

UNTRUSTED = "127.0.0.2"

# The classic ways to ask a server to relay: %-hack, source route, quoted
# local part holding an address, bang path, and a plain foreign address.
TRICKS = [
    "victim%elsewhere.test@{d}",
    "@{d}:victim@elsewhere.test",
    '"victim@elsewhere.test"@{d}',
    "elsewhere.test!victim@{d}",
    "victim@elsewhere.test",
    "victim@elsewhere.test@{d}",
    "postmaster@{d}",
]


class NotAnOpenRelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = Sink()
        routes = {"elsewhere.test": (cls.sink.host, cls.sink.port), "sink.test": (cls.sink.host, cls.sink.port)}
        cls.d = Daemon(trusted=["127.0.0.1/32"], extra_config=delivery_config(routes)).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.sink.close()

    def test_unauthenticated_remote_client_cannot_send_anywhere(self):
        # (Another test's message may still be in the queue: its file goes a
        # little after its delivery, once the outcome is recorded.)
        before = set(self.d.queue_ids())
        for trick in TRICKS:
            rcpt = trick.format(d="ricochet.test")
            with smtplib.SMTP("127.0.0.1", self.d.port, source_address=(UNTRUSTED, 0), timeout=30) as s:
                s.ehlo("remote.test")
                code, _ = s.docmd("MAIL FROM:<a@example.com>")
                self.assertEqual(code, 530, rcpt)
                code, _ = s.docmd("RCPT TO:<%s>" % rcpt)
                self.assertIn(code, (503, 530, 501, 553), rcpt)
                code, _ = s.docmd("DATA")
                self.assertIn(code, (503, 530, 554), rcpt)
        self.assertEqual(set(self.d.queue_ids()) - before, set(), "nothing was queued")

    def test_bounce_listener_takes_only_signed_addresses_and_relays_nothing(self):
        for trick in TRICKS:
            rcpt = trick.format(d="bnc.test")
            with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
                s.ehlo("mx.elsewhere.test")
                s.mail("")
                code, msg = s.rcpt(rcpt)
                self.assertIn(code, (550, 501, 553), "%s: %d %s" % (rcpt, code, msg))
        # A real token, wrapped in a source route that points elsewhere: the
        # route is dropped (RFC 5321 C), the report is read, nothing is sent on.
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail("news@example.com", ["ok-sec@sink.test"], message(1))
        wait_for(lambda: self.sink.received("ok-sec"), what="delivery")
        verp = self.sink.received("ok-sec")[0][0]
        before = len(self.sink.messages)
        queued_before = set(self.d.queue_ids())
        with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
            s.ehlo("mx.elsewhere.test")
            s.mail("")
            code, _ = s.docmd("RCPT TO:<@elsewhere.test:%s>" % verp)
            self.assertEqual(code, 250)
            code, _ = s.data(b"Subject: hi\r\n\r\nnot a report\r\n")
            self.assertEqual(code, 250)
        wait_for(lambda: [e for e in self.d.events() if e["type"] == "dsn" and e.get("recipient") == "ok-sec@sink.test"],
                 what="the report kept")
        self.assertEqual(set(self.d.queue_ids()) - queued_before, set(), "a report is never queued for delivery")
        self.assertEqual(len(self.sink.messages), before)


    def test_bdat_content_is_never_read_as_commands(self):
        # A BDAT chunk's octets are content, never commands, whatever they
        # hold and whatever the reply to the BDAT: here a recipient and a
        # second message hide in them.
        chunk = (b"Subject: chunked\r\n\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\n"
                 b"Subject: smuggled\r\n\r\nhi\r\n.\r\n")
        c = RawClient(self.d.port, timeout=30)
        self.assertTrue(c.reply().startswith("220"))
        c.send("EHLO client.test\r\n")
        self.assertIn("CHUNKING", c.reply())
        # Refused (no MAIL yet): the chunk is read whole and dropped.
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        self.assertEqual([c.reply()[:3] for _ in range(2)], ["503", "250"])
        # Accepted: the octets are the message, as they were sent.
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<ok-bdat@sink.test>\r\nBDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertEqual([c.reply()[:3] for _ in range(3)], ["250", "250", "250"])
        # A size that cannot be read ends the session: nothing after it is read.
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<ok-bdat@sink.test>\r\nBDAT 12x LAST\r\n" + chunk)
        self.assertEqual([c.reply()[:3] for _ in range(3)], ["250", "250", "521"])
        with self.assertRaises(ConnectionError):  # closed after the 521
            c.reply()
        wait_for(lambda: self.sink.received("ok-bdat"), what="the chunked message delivered")
        self.assertEqual(len(self.sink.received("ok-bdat")), 1)
        self.assertIn(b"RCPT TO:<victim@elsewhere.test>\r\nDATA\r\n", self.sink.received("ok-bdat")[0][2])
        self.assertEqual(self.sink.received("victim"), [], "nothing smuggled")
        wait_for(lambda: self.d.queue_ids() == [], what="nothing else queued")

    def test_errors_pipelined_behind_a_message_still_count(self):
        # 20 bad commands end a session (421); a queued message forgives
        # the errors before it, not those pipelined behind it while it
        # committed (they used to be forgotten when its 250 went out).
        c = RawClient(self.d.port, timeout=30)
        self.assertTrue(c.reply().startswith("220"))
        c.send("EHLO client.test\r\n")
        c.reply()
        body = b"Subject: errors\r\n\r\nhi\r\n"
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<ok-errors@sink.test>\r\nBDAT %d LAST\r\n" % len(body)
               + body + b"BOGUS\r\n" * 19)
        replies = [c.reply()[:3] for _ in range(22)]
        self.assertEqual(replies, ["250"] * 3 + ["500"] * 19)
        c.send("BOGUS\r\n")
        last = c.reply()
        self.assertTrue(last.startswith("500"), last)
        self.assertTrue(c.reply().startswith("421 4.7.0"), "the 20th error since the message ends the session")
        with self.assertRaises(ConnectionError):
            c.reply()
        wait_for(lambda: self.sink.received("ok-errors"), what="the message delivered")


class LocalDoors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = Sink()
        cls.d = Daemon(extra_config=delivery_config({"sink.test": (cls.sink.host, cls.sink.port)})).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.sink.close()

    def test_control_socket_refuses_other_users(self):
        sock = os.path.join(self.d.dir, "ricochetd.sock")
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)
        # Even with the file opened up, the daemon checks who is calling.
        os.chmod(self.d.dir, 0o711)
        os.chmod(sock, 0o666)
        probe = ("import socket,sys\n"
                 "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                 "s.sendall(b'{\"command\":\"pauses\"}\\n'); s.settimeout(10)\n"
                 "print(repr(s.recv(65536)))\n")
        r = subprocess.run(["runuser", "-u", "nobody", "--", "python3", "-c", probe, sock],
                           capture_output=True, text=True, timeout=30)
        self.assertNotIn("ok", r.stdout, "another user got an answer: " + r.stdout)
        wait_for(lambda: "refused peer uid" in self.d.log(), what="the refusal in the log")
        # The same request from the owner gets its answer.
        r = subprocess.run(["python3", "-c", probe, sock], capture_output=True, text=True, timeout=30)
        self.assertIn('"ok":true', r.stdout)

    def test_nothing_the_daemon_writes_is_world_readable(self):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail("news@example.com", ["tempfail-p@sink.test"], message(2))  # stays deferred
        wait_for(lambda: self.d.queue_ids("deferred"), what="a deferred message")
        loose = []
        if stat.S_IMODE(os.stat(self.d.spool).st_mode) & 0o007:
            loose.append(self.d.spool)
        for root, dirs, files in os.walk(self.d.spool):
            for n in dirs + files:
                p = os.path.join(root, n)
                if stat.S_IMODE(os.lstat(p).st_mode) & 0o007:
                    loose.append("%s %o" % (p, stat.S_IMODE(os.lstat(p).st_mode)))
        self.assertEqual(loose, [])


class SlowAndFloodingClients(unittest.TestCase):
    TIMEOUT = 3  # seconds, command_timeout and data_timeout in this test

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(trusted=["127.0.0.0/8"],
                       submission_extra='command_timeout = "%ds"\ndata_timeout = "%ds"\nmax_connections_per_ip = 5\n'
                       % (cls.TIMEOUT, cls.TIMEOUT),
                       bounce_extra="max_connections_per_ip = 3\n").start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def trickle(self, client, data, every, stop):
        for b in data:
            if stop.is_set():
                return
            try:
                client.send(b)
            except OSError:
                return
            stop.wait(every)

    def test_a_byte_at_a_time_does_not_hold_a_session(self):
        for where in ("command", "DATA", "BDAT"):
            c = RawClient(self.d.port)
            self.assertTrue(c.reply().startswith("220"))
            if where != "command":
                for cmd, want in (("EHLO slow.test", "250"), ("MAIL FROM:<a@example.com>", "250"),
                                  ("RCPT TO:<b@example.net>", "250")):
                    self.assertTrue(c.cmd(cmd).startswith(want), cmd)
            if where == "DATA":
                self.assertTrue(c.cmd("DATA").startswith("354"))
            if where == "BDAT":  # the chunk's deadline moves with each 1000 octets, not with each read
                c.send("BDAT 1000 LAST\r\n")
            stop = threading.Event()
            # One byte every half second, for far longer than the time-out:
            # each read is quick, but no line is ever finished.
            t = threading.Thread(target=self.trickle, args=(c, "X" * 40, 0.5, stop))
            start = time.monotonic()
            t.start()
            try:
                reply = c.reply()
            finally:
                stop.set()
                t.join()
                c.close()
            self.assertTrue(reply.startswith("421"), where + ": " + reply)
            self.assertLess(time.monotonic() - start, 3 * self.TIMEOUT, where + ": cut off by the per-line deadline")

    def test_a_time_out_inside_a_chunk_answers_the_messages_before_it_first(self):
        # Message 1 is complete and committing when message 2's chunk stops
        # half-way. Its 250 must still be sent before the 421: a client that
        # never hears it sends the message again.
        c = RawClient(self.d.port, timeout=30)
        self.assertTrue(c.reply().startswith("220"))
        self.assertIn("CHUNKING", c.cmd("EHLO slow.test"))
        body = message(1, size=200000).encode()
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<one@example.net>\r\nBDAT %d LAST\r\n" % len(body) + body +
               b"MAIL FROM:<a@example.com>\r\nRCPT TO:<two@example.net>\r\nBDAT 100 LAST\r\nonly ten..")
        got = [c.reply() for _ in range(6)]
        self.assertEqual([g[:3] for g in got], ["250", "250", "250", "250", "250", "421"], got)
        self.assertRegex(got[2], r"queued as ([0-9A-Z]{13})$")
        qid = got[2].rsplit(" ", 1)[1]
        self.assertIn(qid, self.d.queue_ids())

    def test_one_address_cannot_take_every_connection(self):
        held = [RawClient(self.d.port, source="127.0.0.2") for _ in range(5)]
        for c in held:
            self.assertTrue(c.reply().startswith("220"))
        extra = RawClient(self.d.port, source="127.0.0.2")
        self.assertIn("too many connections from your address", extra.reply())
        # Another client is served meanwhile.
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail("a@example.com", ["b@example.net"], message(3))
        for c in held + [extra]:
            c.close()
        bheld = [RawClient(self.d.bounce_port, source="127.0.0.2") for _ in range(3)]
        for c in bheld:
            self.assertTrue(c.reply().startswith("220"))
        bextra = RawClient(self.d.bounce_port, source="127.0.0.2")
        self.assertIn("too many connections from your address", bextra.reply())
        for c in bheld + [bextra]:
            c.close()


if __name__ == "__main__":
    unittest.main()
