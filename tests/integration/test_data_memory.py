"""Bounded memory while DATA arrives, against the real daemon: past
submission.data_memory a message goes on to an anonymous file in the
spool as it arrives, so sessions sending large messages at once do not grow
the daemon by what they send; the message is queued and delivered octet for
octet; the size limit still holds; and on the bounce listener, which reads a
report whole, a message that would take the process over
server.data_memory_budget gets 452 4.3.1 instead, and an HTTP body that
would gets 503."""
import hashlib
import os
import smtplib
import socket
import unittest

from harness import Daemon, delivery_config, wait_for
from sink import Sink

MB = 1 << 20
# The sanitizer run (scripts/test.sh's second pass): ASan's quarantine keeps
# freed memory, so the daemon's RSS says nothing there; the rest still holds.
SANITIZED = "ASAN_OPTIONS" in os.environ


def body(size, seed):
    """A message of about `size` octets: headers, then 76-character lines."""
    head = "From: news@shop.example\r\nTo: big@sink.test\r\nSubject: big %s\r\nX-Campaign-ID: large\r\n\r\n" % seed
    line = hashlib.sha256(seed.encode()).hexdigest()[:74] + "\r\n"
    return (head + line * (size // len(line))).encode()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    raise AssertionError("no VmRSS")


def spilled_octets(pid, spool):
    """The sizes of the daemon's open files in the spool's incoming/ that have no name (the spill files)."""
    total = 0
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
            if target.startswith(os.path.join(spool, "incoming")) and target.endswith("(deleted)"):
                total += os.stat(os.path.join(fd_dir, fd)).st_size
        except OSError:
            pass
    return total


class Session:
    """A raw submission session that sends DATA and holds back the final dot."""

    def __init__(self, port, data, rcpt="big@sink.test"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.s.makefile("rb")
        self.expect(b"220")
        for cmd, code in ((b"EHLO t", b"250"), (b"MAIL FROM:<news@shop.example>", b"250"),
                          (("RCPT TO:<%s>" % rcpt).encode(), b"250"), (b"DATA", b"354")):
            self.s.sendall(cmd + b"\r\n")
            self.expect(code)
        self.s.sendall(data)

    def expect(self, code):
        while True:
            line = self.f.readline()
            assert line.startswith(code), line
            if line[3:4] != b"-":
                return line

    def finish(self):
        self.s.sendall(b".\r\n")
        line = self.f.readline()
        self.s.close()
        return line.decode().strip()


class DataMemory(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        extra = delivery_config({"sink.test": (self.sink.host, self.sink.port)})
        self.d = Daemon(extra_config=extra, server_extra='data_memory_budget = "1MiB"',
                        submission_extra="max_message_size = 20971520").start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def test_large_messages_in_flight_do_not_grow_the_daemon_and_arrive_intact(self):
        n, size = 8, 8 * MB
        before = rss_kib(self.d.proc.pid)
        msgs = [body(size, "m%d" % i) for i in range(n)]
        sessions = [Session(self.d.port, m) for m in msgs]
        # The daemon has read most of it (the rest sits in socket buffers): on disk, not in memory.
        wait_for(lambda: spilled_octets(self.d.proc.pid, self.d.spool) >= n * (size - 4 * MB),
                 timeout=60, what="the DATA written to spill files")
        during = rss_kib(self.d.proc.pid)
        if not SANITIZED:
            self.assertLess(during - before, 32 * 1024,
                            "%d sessions x %d MB in flight grew the daemon by %d KiB" % (n, size // MB, during - before))
        replies = [s.finish() for s in sessions]
        self.assertTrue(all(r.startswith("250 2.0.0 Ok: queued as") for r in replies), replies)
        got = wait_for(lambda: len(self.sink.received()) == n and self.sink.received(), timeout=120, what="delivered")
        for _, _, data in got:
            subject = data.split(b"Subject: big ")[1].split(b"\r\n")[0].decode()
            original = msgs[int(subject[1:])]
            self.assertTrue(data.endswith(original), "octet for octet (after our Received: on top)")
            self.assertIn(b"Received: from t ([127.0.0.1])", data[:len(data) - len(original)], data[:300])
        queued = [e for e in self.d.events() if e["type"] == "queued"]
        self.assertEqual({e["campaign"] for e in queued}, {"large"}, "the header was read from the spilled message")
        self.assertEqual(os.listdir(os.path.join(self.d.spool, "incoming")), [], "no spill file is left")

    def test_the_size_limit_holds_for_a_spilled_message(self):
        s = Session(self.d.port, body(21 * MB, "too-big"))
        self.assertTrue(s.finish().startswith("552 5.3.4"))
        self.assertEqual(self.d.queue_ids(), [])

    def test_the_bounce_listener_refuses_what_would_go_over_the_budget(self):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:  # a message, for a return path to answer
            s.sendmail("news@shop.example", ["ok@sink.test"], body(1000, "small"))
        verp = wait_for(lambda: self.sink.received(), what="delivered")[0][0]
        with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=60) as s:
            s.ehlo("mx.sink.test")
            s.mail("")
            self.assertEqual(s.rcpt(verp)[0], 250)
            code, msg = s.data(body(int(1.5 * MB), "report"))
        self.assertEqual(code, 452, msg)
        self.assertIn(b"4.3.1", msg)
        self.assertIn("over the budget", self.d.log())
        # An HTTP body is held whole until it is answered: it counts against the same budget.
        from test_http_api import curl
        r = curl(self.d, "POST", "/v1/messages", {"from": "news@shop.example", "to": ["ok@sink.test"],
                                                   "content": body(int(1.5 * MB), "http").decode()})
        self.assertEqual(r.status, 503, r)
        self.assertIn("too much data in memory", r.json["error"])
        self.assertEqual(r.header("Retry-After"), "5")
        # The submission listener, with the same budget, spills instead.
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:
            s.sendmail("news@shop.example", ["big@sink.test"], body(3 * MB, "fine"))
        wait_for(lambda: len(self.sink.received()) == 2, what="the 3 MB message delivered")


if __name__ == "__main__":
    unittest.main()
