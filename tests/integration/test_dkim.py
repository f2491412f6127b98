"""DKIM signing against an independent verifier: messages go through the real
daemon to the scripted SMTP sink, and the bytes the sink received are
verified by dkimpy (Debian's python3-dkim), with the public keys served by its
DNS hook from the keys' own public halves. RSA-2048 and Ed25519 (RFC 8463),
two signatures for one domain, a "*" entry for other From domains; 8-bit
bodies, long folded headers, trailing blank lines, whitespace runs, lines
that need dot-stuffing, an empty body, a bare LF. A changed body, a changed
List-Unsubscribe or Subject must fail verification. Bad keys are refused at
start, naming the key."""
import base64
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import unittest

from harness import BIN, Daemon, delivery_config, free_port, wait_for
from sink import Sink

try:
    import dkim
except ImportError:  # Debian's python3-dkim, from an interpreter of its own (pyenv)
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def verifies(data, idx, dnsfunc):
    """dkimpy's verdict on signature idx (it raises on some failures, returns False on others)."""
    try:
        return dkim.DKIM(data).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.ValidationError:
        return False


def make_key(directory, name, kind):
    path = os.path.join(directory, name + ".pem")
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    elif kind == "rsa1024":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", path)
    elif kind == "encrypted":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes256", "-pass", "pass:secret",
                "-out", path)
    elif kind == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    else:
        openssl("genpkey", "-algorithm", "ED25519", "-out", path)
    if kind == "encrypted":
        return path, b""
    der = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    if kind == "ed25519":  # RFC 8463 4.2: p= is the raw 32-octet key
        record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])
    else:
        record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    return path, record


class Dkim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="ricochet-dkim-")
        rsa, rsa_rec = make_key(cls.keys, "rsa", "rsa")
        ed, ed_rec = make_key(cls.keys, "ed", "ed25519")
        star, star_rec = make_key(cls.keys, "star", "rsa")
        cls.dns = {b"r1._domainkey.shop.example.": rsa_rec, b"e1._domainkey.shop.example.": ed_rec,
                   b"any._domainkey.other.example.": star_rec}
        cls.sink = Sink()
        cls.unsub_port = free_port()
        extra = delivery_config({"sink.test": (cls.sink.host, cls.sink.port)})
        extra += '[[dkim]]\ndomain = "shop.example"\nselector = "r1"\nkey_file = "%s"\n' % rsa
        extra += '[[dkim]]\ndomain = "Shop.Example"\nselector = "e1"\nkey_file = "%s"\n' % ed
        extra += '[[dkim]]\ndomain = "*"\nselector = "any"\nkey_file = "%s"\ncanonicalization = "simple/simple"\n' % star
        extra += ('[unsubscribe]\nenabled = true\nlisten = ["127.0.0.1:%d"]\nurl_base = "http://127.0.0.1:%d/u/"\n'
                  % (cls.unsub_port, cls.unsub_port))
        cls.d = Daemon(extra_config=extra).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.sink.close()

    def dnsfunc(self, name, timeout=5):
        return self.dns.get(name, b"")

    def send(self, rcpt, data, sender="news@shop.example", eightbit=False):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail(sender, [rcpt], data, mail_options=["BODY=8BITMIME"] if eightbit else [])
        got = wait_for(lambda: self.sink.received(rcpt), what="delivery to " + rcpt)
        self.assertEqual(len(got), 1)
        return got[0][2]

    def signatures(self, data):
        return [m.group(0) for m in re.finditer(rb"(?im)^DKIM-Signature:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", data)]

    def verify_all(self, data):
        """Every signature in data, each verified by dkimpy: [(a=, d=, s=)]."""
        out = []
        sigs = self.signatures(data)
        self.assertTrue(sigs, "no DKIM-Signature in:\n%s" % data.decode("utf-8", "replace")[:2000])
        for i, sig in enumerate(sigs):
            tags = dict(t.strip().split(b"=", 1) for t in re.sub(rb"\s+", b"", sig.split(b":", 1)[1]).split(b";") if t)
            ok = verifies(data, i, self.dnsfunc)
            self.assertTrue(ok, "signature %d (%r) does not verify:\n%s" % (i, tags, data.decode("utf-8", "replace")[:3000]))
            out.append((tags[b"a"].decode(), tags[b"d"].decode(), tags[b"s"].decode()))
        return out

    def test_rsa_and_ed25519_both_verify_and_cover_the_unsubscribe_fields(self):
        msg = (b"From: Shop <news@shop.example>\r\nTo: alice@sink.test\r\nSubject: Sale\r\n"
               b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@shop.example>\r\nX-Campaign-ID: spring\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n")
        data = self.send("alice@sink.test", msg)
        self.assertEqual(sorted(self.verify_all(data)),
                         [("ed25519-sha256", "shop.example", "e1"), ("rsa-sha256", "shop.example", "r1")])
        head = data.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", head)
        self.assertIn(b"Feedback-ID: spring:shop.example:ricochet", head)
        for sig in self.signatures(data):
            h = re.search(rb"h=([^;]*);", re.sub(rb"\s+", b"", sig)).group(1).split(b":")
            for name in (b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
                         b"list-unsubscribe-post", b"feedback-id", b"mime-version", b"content-type"):
                self.assertIn(name, h, sig)
        # Each change a forwarder or attacker might make breaks every signature.
        for before, after in ((b"Hello\r\n", b"Hellp\r\n"), (b"Subject: Sale", b"Subject: Sale!"),
                              (b"List-Unsubscribe: <http", b"List-Unsubscribe: <https"),
                              (b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Click")):
            changed = data.replace(before, after, 1)
            self.assertNotEqual(changed, data)
            for i in range(len(self.signatures(data))):
                self.assertFalse(verifies(changed, i, self.dnsfunc), (before, after, i))

    def test_awkward_messages_verify(self):
        long_subject = b"Subject: " + b" ".join(b"word%d" % i for i in range(60))
        folded = b"Subject: a subject\r\n  folded\tover\r\n\tthree lines  \r\n"
        cases = {
            "eightbit": (b"From: news@shop.example\r\nSubject: caf\xc3\xa9\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e \xe2\x82\xac\r\n", True),
            "long_header": (b"From: news@shop.example\r\n" + long_subject + b"\r\n\r\nbody\r\n", False),
            "folded_header": (b"From: news@shop.example\r\n" + folded + b"To:   bob@sink.test  \r\n\r\nbody\r\n", False),
            "trailing_blank_lines": (b"From: news@shop.example\r\nSubject: t\r\n\r\nbody\r\n\r\n\r\n\r\n", False),
            "whitespace_runs": (b"From: news@shop.example\r\nSubject: t\r\n\r\na  b\t\tc   \r\n \t \r\nend \t\r\n", False),
            "dots": (b"From: news@shop.example\r\nSubject: t\r\n\r\n.\r\n..two\r\n.leading dot\r\nend\r\n.\r\n", False),
            "empty_body": (b"From: news@shop.example\r\nSubject: t\r\n\r\n", False),
            "no_final_newline": (b"From: news@shop.example\r\nSubject: t\r\n\r\nno end", False),
            "bare_lf": (b"From: news@shop.example\r\nSubject: t\r\n\r\nline one\nline two\r\n", False),
        }
        for name, (msg, eightbit) in cases.items():
            with self.subTest(name):
                data = self.send("awk-%s@sink.test" % name.replace("_", "-"), msg, eightbit=eightbit)
                self.assertEqual(sorted(self.verify_all(data)),
                                 [("ed25519-sha256", "shop.example", "e1"), ("rsa-sha256", "shop.example", "r1")])
                body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
                tampered = data + b"tampered\r\n" if body.strip() == b"" else data.replace(body, body[:-3] + b"X" + body[-2:], 1)
                self.assertNotEqual(tampered, data)
                for i in range(2):
                    self.assertFalse(verifies(tampered, i, self.dnsfunc), name)

    def test_other_from_domains_use_the_star_entry_with_their_own_domain(self):
        data = self.send("carol@sink.test", b"From: Other <news@Other.Example>\r\nSubject: hi\r\n\r\nhi  there \r\n\r\n",
                         sender="news@other.example")
        self.assertEqual(self.verify_all(data), [("rsa-sha256", "other.example", "any")])
        self.assertIn(b"c=simple/simple", self.signatures(data)[0].replace(b"\r\n\t", b""))

    def test_dkim_records_prints_what_to_publish(self):
        out = subprocess.run([os.path.join(BIN, "ricochetd"), "--config", self.d.config_path, "--dkim-records"],
                             capture_output=True, check=True, timeout=30).stdout
        want = {b'r1._domainkey.shop.example. IN TXT "' + self.dns[b"r1._domainkey.shop.example."] + b'"',
                b'e1._domainkey.shop.example. IN TXT "' + self.dns[b"e1._domainkey.shop.example."] + b'"',
                b'any._domainkey.FROM-DOMAIN. IN TXT "' + self.dns[b"any._domainkey.other.example."] + b'"'}
        self.assertEqual(set(out.splitlines()), want)

    def test_mail_without_a_from_is_not_signed(self):
        data = self.send("dave@sink.test", b"Subject: no from\r\n\r\nbody\r\n")
        self.assertEqual(self.signatures(data), [])


class BadKeys(unittest.TestCase):
    def check_refused(self, kind, expect):
        keys = tempfile.mkdtemp(prefix="ricochet-dkim-")
        if kind == "missing":
            path = os.path.join(keys, "nope.pem")
        elif kind == "garbage":
            path = os.path.join(keys, "garbage.pem")
            with open(path, "w") as f:
                f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        else:
            path, _ = make_key(keys, kind, kind)
        d = Daemon(extra_config='[[dkim]]\ndomain = "shop.example"\nselector = "s1"\nkey_file = "%s"\n' % path)
        try:
            r = subprocess.run([os.path.join(BIN, "ricochetd"), "--config", d.config_path, "--check-config"],
                               capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn(expect, r.stderr)
            self.assertIn("nope.pem" if kind == "missing" else path, r.stderr)
        finally:
            d.cleanup()

    def test_short_rsa_key(self):
        self.check_refused("rsa1024", "at least 2048")

    def test_ec_key(self):
        self.check_refused("ec", "RSA (2048 bits or more) or Ed25519")

    def test_encrypted_key_fails_without_asking(self):
        self.check_refused("encrypted", "encrypted one")

    def test_not_a_key(self):
        self.check_refused("garbage", "not a PEM private key")

    def test_missing_key(self):
        self.check_refused("missing", "key_file")


if __name__ == "__main__":
    unittest.main()
