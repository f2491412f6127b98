"""STARTTLS and AUTH against the real daemon, with a self-signed certificate
made by openssl and a users file hashed by `openssl passwd -6`. Clients bind
to 127.0.0.2, outside the trusted network 127.0.0.1/32, to play a remote
campaign system."""
import os
import re
import smtplib
import ssl
import subprocess
import unittest

from harness import Daemon, RawClient, message, wait_for

UNTRUSTED = "127.0.0.2"


class TlsAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(trusted=["127.0.0.1/32"])
        cert, key, users = (os.path.join(cls.d.dir, n) for n in ("cert.pem", "key.pem", "users"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=ricochet.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        h = subprocess.run(["openssl", "passwd", "-6", "s3cret pass"], check=True, capture_output=True, text=True)
        with open(users, "w") as f:
            f.write("# campaign systems\ncampaigns:%s\n" % h.stdout.strip())
        with open(cls.d.config_path) as f:
            text = f.read()
        text = text.replace("[submission]\n", '[submission]\ntls_cert = "%s"\ntls_key = "%s"\nauth_users_file = "%s"\n'
                            % (cert, key, users))
        with open(cls.d.config_path, "w") as f:
            f.write(text)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def context(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def s_client(self, *args):
        if "-cipher" not in args:
            args = ("-cipher", "DEFAULT@SECLEVEL=0") + args
        return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.d.port, "-starttls", "smtp",
                               *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)

    def test_tls_below_1_2_is_refused(self):
        ok = self.s_client("-tls1_2")
        self.assertRegex(ok.stdout, r"Protocol\s*:\s*TLSv1.2", "the control: TLS 1.2 works")
        for version in ("-tls1_1", "-tls1"):
            old = self.s_client(version)
            # The server's alert 70 (protocol_version), not a client that could not try.
            self.assertIn("alert protocol version", old.stdout + old.stderr, version)
            self.assertIn("no peer certificate available", old.stdout, version)

    def test_weak_ciphers_are_refused(self):
        # Anonymous, null-encryption, export, RC4, 3DES and plain-RSA-kex suites
        # get no handshake; a forward-secret AEAD suite is what TLS 1.2 gets.
        for weak in ("aNULL", "eNULL", "EXPORT", "RC4", "3DES", "kRSA"):
            r = self.s_client("-tls1_2", "-cipher", weak + "@SECLEVEL=0")
            self.assertNotRegex(r.stdout, r"Cipher is (?!\(NONE\))", weak)
        ok = self.s_client("-tls1_2")
        self.assertRegex(ok.stdout, r"Cipher is ECDHE-[A-Z0-9-]*(GCM|CHACHA20)", "the control")

    def test_untrusted_client_without_auth_is_refused(self):
        with smtplib.SMTP("127.0.0.1", self.d.port, source_address=(UNTRUSTED, 0)) as s:
            s.ehlo("remote.test")
            self.assertNotIn("auth", s.esmtp_features, "AUTH must not be offered before TLS")
            code, msg = s.docmd("MAIL FROM:<a@example.com>")
            self.assertEqual(code, 530)
            code, msg = s.docmd("AUTH PLAIN AGNhbXBhaWducwBzM2NyZXQgcGFzcw==")
            self.assertEqual(code, 538)
            s.starttls(context=self.context())
            s.ehlo("remote.test")
            self.assertIn("auth", s.esmtp_features)
            code, _ = s.docmd("MAIL FROM:<a@example.com>")
            self.assertEqual(code, 530, "TLS alone is not authorization")
            code, _ = s.docmd("RCPT TO:<b@example.net>")
            self.assertEqual(code, 503)

    def test_starttls_then_auth_plain_with_smtplib(self):
        with smtplib.SMTP("127.0.0.1", self.d.port, source_address=(UNTRUSTED, 0)) as s:
            s.starttls(context=self.context())
            self.assertGreaterEqual(s.sock.version(), "TLSv1.2")
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("campaigns", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)
            s.login("campaigns", "s3cret pass")
            s.mail("a@example.com")
            s.rcpt("b@example.net")
            code, msg = s.data(message(1))
            self.assertEqual(code, 250)
            qid = re.search(r"queued as (\w+)", msg.decode()).group(1)
        shown = self.d.ctl_json("queue", "show", qid)
        self.assertEqual(shown["auth_user"], "campaigns")
        self.assertEqual(shown["client"], UNTRUSTED)
        self.assertIn("with ESMTPSA id " + qid, shown["headers"])

    def test_swaks_tls_auth_login(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.d.port, "--local-interface", UNTRUSTED,
                            "--tls", "--auth", "LOGIN", "--auth-user", "campaigns", "--auth-password", "s3cret pass",
                            "--from", "a@example.com", "--to", "c@example.net"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout[-1500:] + r.stderr[-1500:])
        self.assertRegex(r.stdout, r"235 2\.7\.0")
        self.assertRegex(r.stdout, r"250 2\.0\.0 Ok: queued as [0-9A-Z]{13}")

    def test_trusted_client_needs_no_auth_and_may_use_tls(self):
        with smtplib.SMTP("127.0.0.1", self.d.port) as s:
            s.starttls(context=self.context())
            s.ehlo("local.test")
            s.mail("a@example.com")
            s.rcpt("b@example.net")
            code, _ = s.data(message(2))
            self.assertEqual(code, 250)

    def test_pipelined_plaintext_after_starttls_is_discarded(self):
        # CVE-2011-0411: commands sent with STARTTLS must not run inside TLS.
        c = RawClient(self.d.port, source=UNTRUSTED)
        c.reply()
        c.cmd("EHLO remote.test")
        c.send("STARTTLS\r\nRSET\r\n")
        self.assertTrue(c.reply().startswith("220 2.0.0"))
        tls = self.context().wrap_socket(c.sock, server_hostname="ricochet.test")
        tls.sendall(b"NOOP\r\n")
        got = tls.recv(4096).decode()
        self.assertTrue(got.startswith("250 2.0.0 Ok"), "only the NOOP's reply, not the RSET's: %r" % got)
        tls.close()

    def test_an_address_that_keeps_failing_is_refused_for_a_while(self):
        prober = "127.0.0.3"  # untrusted too; its own count
        for session in range(4):  # 4 sessions x 3 failures: over the 10 allowed per address
            c = RawClient(self.d.port, source=prober)
            self.assertTrue(c.reply().startswith("220"), "session %d" % session)
            c.cmd("EHLO remote.test")
            c.send("STARTTLS\r\n")
            c.reply()
            tls = self.context().wrap_socket(c.sock, server_hostname="ricochet.test")
            c.sock = tls
            c.cmd("EHLO remote.test")
            for _ in range(3):
                c.send("AUTH PLAIN AGNhbXBhaWducwBub3BlMQ==\r\n")
            c.reply()
            c.reply()
            last = c.reply()
            self.assertTrue(last.startswith("535"), last)
            self.assertTrue(c.reply().startswith("421"))
            wait_for(lambda: c.closed(), what="the session closed")
            c.close()
        wait_for(lambda: "failed authentications; refused" in self.d.log(), what="the block")
        c = RawClient(self.d.port, source=prober)
        self.assertIn("too many failed authentications", c.reply())
        c.close()
        # The count outlives the daemon: after a restart the address is still refused.
        self.d.stop()
        self.d.start()
        self.assertIn("1 client(s) with failed authentications", self.d.log())
        c = RawClient(self.d.port, source=prober)
        self.assertIn("too many failed authentications", c.reply())
        c.close()
        # Other addresses are not affected.
        with smtplib.SMTP("127.0.0.1", self.d.port, source_address=(UNTRUSTED, 0)) as s:
            self.assertEqual(s.ehlo("remote.test")[0], 250)

    def test_three_failed_logins_end_the_session(self):
        with smtplib.SMTP("127.0.0.1", self.d.port, source_address=(UNTRUSTED, 0)) as s:
            s.starttls(context=self.context())
            s.ehlo("remote.test")
            codes = [s.docmd("AUTH PLAIN", "AGNhbXBhaWducwBub3BlMQ==")[0] for _ in range(2)]
            self.assertEqual(codes, [535, 535])
            code, msg = s.docmd("AUTH PLAIN", "AGNhbXBhaWducwBub3BlMQ==")
            self.assertEqual(code, 535)
            self.assertEqual(s.getreply()[0], 421, "the 421 follows the third 535")
            with self.assertRaises(smtplib.SMTPServerDisconnected):
                s.noop()


if __name__ == "__main__":
    unittest.main()
