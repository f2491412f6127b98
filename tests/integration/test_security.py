"""Doors that must stay shut, tried against the real daemon: the classic
open-relay tricks on both listeners, the control socket from another user,
and the permissions of everything the daemon writes."""
import os
import smtplib
import socket
import stat
import subprocess
import unittest

from harness import Daemon, delivery_config, message, wait_for
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
        self.assertEqual(self.d.queue_ids(), [], "nothing was queued")

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
        with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
            s.ehlo("mx.elsewhere.test")
            s.mail("")
            code, _ = s.docmd("RCPT TO:<@elsewhere.test:%s>" % verp)
            self.assertEqual(code, 250)
            code, _ = s.data(b"Subject: hi\r\n\r\nnot a report\r\n")
            self.assertEqual(code, 250)
        wait_for(lambda: [e for e in self.d.events() if e["type"] == "dsn" and e.get("recipient") == "ok-sec@sink.test"],
                 what="the report kept")
        self.assertEqual(self.d.queue_ids(), [], "a report is never queued for delivery")
        self.assertEqual(len(self.sink.messages), before)


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
        self.assertIn("refused peer uid", self.d.log())
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


if __name__ == "__main__":
    unittest.main()
