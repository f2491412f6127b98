"""8-bit content and UTF-8 addresses to servers that do not offer 8BITMIME or
SMTPUTF8 (RFC 6152, RFC 6531), against the real daemon and the scripted
sink with those extensions off:

- an 8-bit message (UTF-8 text as 8bit, HTML, a binary attachment, an
  attached message) arrives 7-bit, with no BODY=8BITMIME; Python's email
  package decodes every part to exactly the bytes submitted; the DKIM
  signatures (RSA and Ed25519) verify with dkimpy over what was received;
- the same message to a server that offers 8BITMIME goes as it was, with
  BODY=8BITMIME;
- a message whose Subject is raw UTF-8 cannot be made 7-bit: one bounced
  event with 5.6.3, not sent, never retried;
- a UTF-8 recipient to a server without SMTPUTF8: one bounced event with
  5.6.7, not sent, never retried."""
import email
import email.policy
import os
import smtplib
import tempfile
import unittest

from harness import Daemon, delivery_config, wait_for
from sink import Sink
from test_dkim import make_key, verifies

TEXT = "Grüße aus Köln: 10 € — naïve café, ½ price.\r\nZweite Zeile, ✓.\r\n"
HTML = "<p>Grüße aus <b>Köln</b> — 10 €</p>\r\n"
# Every octet SMTP's DATA may carry without BINARYMIME (RFC 6152: no NUL, CR
# and LF only as CRLF), in lines of 64.
BLOB = b"\r\n".join(bytes(b for b in range(256) if b not in (0, 10, 13))[i:i + 64] for i in range(0, 253, 64)) * 4
INNER = ("From: a@b.example\r\nTo: c@d.example\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
         "Innen: Ärger über Öl.\r\n")


def eight_bit_message(subject="Angebot"):
    b = "=_b1"
    return (("From: news@shop.example\r\nTo: someone@sink.test\r\nSubject: %s\r\n"
             "Message-ID: <8bit-1@shop.example>\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=\"%s\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
             "--%s\r\nContent-Type: multipart/alternative; boundary=\"=_b2\"\r\n\r\n"
             "--=_b2\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s"
             "--=_b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n%s"
             "--=_b2--\r\n"
             "--%s\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s"
             "--%s\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\n"
             "Content-Disposition: attachment; filename=\"blob.bin\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
            % (subject, b, b, TEXT, HTML, b, INNER, b)).encode("utf-8") + BLOB + ("\r\n--%s--\r\n" % b).encode()


def submit(d, data, rcpt="someone@sink.test", sender="news@shop.example", options=()):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("campaign.test")
        s.sendmail(sender, [rcpt], data, mail_options=list(options))


class EightBit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="ricochet-8bit-")
        rsa, rsa_rec = make_key(cls.keys, "rsa", "rsa")
        ed, ed_rec = make_key(cls.keys, "ed", "ed25519")
        cls.dns = {b"r1._domainkey.shop.example.": rsa_rec, b"e1._domainkey.shop.example.": ed_rec}
        cls.seven = Sink(eightbitmime=False, smtputf8=False)
        cls.eight = Sink()
        extra = delivery_config({"sink.test": (cls.seven.host, cls.seven.port),
                                 "eight.test": (cls.eight.host, cls.eight.port)})
        extra += '[[dkim]]\ndomain = "shop.example"\nselector = "r1"\nkey_file = "%s"\n' % rsa
        extra += '[[dkim]]\ndomain = "shop.example"\nselector = "e1"\nkey_file = "%s"\n' % ed
        cls.d = Daemon(extra_config=extra).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.seven.close()
        cls.eight.close()
        os.system("rm -rf " + cls.keys)

    def dnsfunc(self, name, timeout=5):
        return self.dns.get(name)

    def events_for(self, rcpt):
        return [e for e in self.d.events() if e.get("recipient") == rcpt and e["type"] != "queued"]

    def parts(self, data):
        """Every leaf part's content type and decoded bytes, in order."""
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
        out = []
        for p in msg.walk():
            if p.is_multipart():
                continue
            if p.get_content_type() == "message/rfc822":
                continue
            out.append((p.get_content_type(), p.get_payload(decode=True)))
        return out

    def test_an_8bit_message_arrives_7bit_decoding_to_the_same_bytes_and_signed(self):
        original = eight_bit_message()
        submit(self.d, original, options=["BODY=8BITMIME"])
        got = wait_for(lambda: self.seven.received(), what="delivered to the sink without 8BITMIME")
        _, rcpt, data = got[0]
        self.assertEqual(rcpt, "someone@sink.test")
        self.assertTrue(all(b < 0x80 for b in data), "7-bit on the wire")
        self.assertTrue(all(len(l) <= 998 for l in data.split(b"\r\n")))
        self.assertNotIn("BODY=8BITMIME", [p.upper() for p in self.seven.mail_params[-1]])
        # Every part decodes to what was submitted (the attached message is walked into).
        want = self.parts(original)
        self.assertEqual(self.parts(data), want)
        self.assertEqual([t for t, _ in want], ["text/plain", "text/html", "text/plain", "application/octet-stream"])
        self.assertEqual(want[0][1], TEXT.encode()[:-2])  # (the CRLF before a boundary belongs to the boundary)
        self.assertEqual(want[3][1], BLOB)
        # What was sent is what was signed: both signatures verify over the bytes received.
        self.assertEqual(data.count(b"DKIM-Signature:"), 2)
        for idx in (0, 1):
            self.assertTrue(verifies(data, idx, self.dnsfunc), "signature %d" % idx)
        ev = wait_for(lambda: [e for e in self.events_for("someone@sink.test") if e["type"] == "delivered"],
                      what="the delivered event")
        self.assertEqual(len(ev), 1)
        self.assertIn("sent 7-bit", self.d.log())

    def test_to_a_server_with_8bitmime_it_goes_as_it_was(self):
        original = eight_bit_message()
        submit(self.d, original, rcpt="someone@eight.test", options=["BODY=8BITMIME"])
        _, _, data = wait_for(lambda: self.eight.received(), what="delivered")[0]
        self.assertIn("BODY=8BITMIME", [p.upper() for p in self.eight.mail_params[-1]])
        self.assertIn(TEXT.encode(), data, "not re-encoded")
        for idx in (0, 1):
            self.assertTrue(verifies(data, idx, self.dnsfunc), "signature %d" % idx)

    def test_an_8bit_header_cannot_be_converted_and_bounces_once(self):
        rcpt = "headers@sink.test"
        submit(self.d, eight_bit_message(subject="Grüße").replace(b"someone@", b"headers@"), rcpt=rcpt,
               options=["BODY=8BITMIME"])
        ev = wait_for(lambda: [e for e in self.events_for(rcpt) if e["type"] == "bounced"], what="the bounce")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["enhanced"], "5.6.3")
        self.assertIn("header field Subject has 8-bit characters", ev[0]["reply"])
        self.assertIn("does not offer 8BITMIME", ev[0]["reply"])
        self.assertEqual([e["type"] for e in self.events_for(rcpt)], ["bounced"], "no deferral, no retry")
        self.assertFalse([r for _, r, _ in self.seven.received() if r == rcpt], "nothing sent")
        wait_for(lambda: self.d.queue_ids() == [], what="nothing left to retry")

    def test_a_utf8_recipient_to_a_server_without_smtputf8_bounces_once(self):
        rcpt = "jörg@sink.test"
        submit(self.d, b"From: news@shop.example\r\nTo: x@sink.test\r\nSubject: hi\r\n\r\nhello\r\n", rcpt=rcpt,
               options=["SMTPUTF8"])
        ev = wait_for(lambda: [e for e in self.events_for(rcpt) if e["type"] == "bounced"], what="the bounce")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["enhanced"], "5.6.7")
        self.assertIn("needs SMTPUTF8", ev[0]["reply"])
        self.assertEqual([e["type"] for e in self.events_for(rcpt)], ["bounced"], "no deferral, no retry")
        self.assertFalse([r for _, r, _ in self.seven.received() if r == rcpt], "nothing sent")


if __name__ == "__main__":
    unittest.main()
