"""Asynchronous bounces against the real daemon: a message is delivered to a
scripted receiver, and a report about it comes back later to its signed VERP
return path on the bounce listener. Covers RFC 3464 bounces, ARF complaints,
auto-replies, unparseable reports (kept), and forged or foreign addresses
(refused, so nothing is relayed and no address can be marked by a forgery)."""
import json
import os
import smtplib
import unittest

from harness import Daemon, delivery_config, message, wait_for
from sink import Sink

DSN = """From: MAILER-DAEMON@mx.sink.test (Mail Delivery System)
To: {verp}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sink.test

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; store.sink.test
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table

--B
Content-Type: text/rfc822-headers

To: {rcpt}
Subject: test

--B--
"""

ARF = """From: feedback@sink.test
To: {verp}
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an abuse report.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeFBL/1.0
Version: 1
Original-Rcpt-To: <{rcpt}>

--F
Content-Type: message/rfc822

To: {rcpt}
Subject: test

hello
--F--
"""

AUTOREPLY = """From: {rcpt}
To: {verp}
Subject: Out of Office: test
Auto-Submitted: auto-replied

I am away until Monday.
"""


class Dsn(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        self.d = Daemon(extra_config=delivery_config({"sink.test": (self.sink.host, self.sink.port)})).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def deliver(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("t")
            s.sendmail("news@example.com", [rcpt], message(1, campaign="fall"))
        wait_for(lambda: self.sink.received(rcpt), what="delivery of " + rcpt)
        return self.sink.received(rcpt)[0][0]  # the VERP return path it was sent with

    def bounce(self, verp, body, rcpt_to=None):
        with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
            s.ehlo("mx.sink.test")
            s.mail("")
            code, msg = s.rcpt(rcpt_to or verp)
            if code != 250:
                return code, msg.decode()
            code, msg = s.data(body.encode())
            return code, msg.decode()

    def events(self, kind, rcpt):
        return [e for e in self.d.events() if e["type"] == kind and e.get("recipient") == rcpt]

    def status(self, rcpt):
        return json.loads(self.d.ctl("recipient", "show", rcpt, "--json").stdout)

    def test_a_later_bounce_changes_the_recipients_status(self):
        verp = self.deliver("ok-v@sink.test")
        code, _ = self.bounce(verp, DSN.format(verp=verp, rcpt="ok-v@sink.test"))
        self.assertEqual(code, 250)
        ev = wait_for(lambda: self.events("bounced", "ok-v@sink.test"), what="bounced event")[0]
        self.assertEqual((ev["sync"], ev["kind"], ev["category"], ev["enhanced"], ev["campaign"]),
                         (False, "hard", "user-unknown", "5.1.1", "fall"))
        st = self.status("ok-v@sink.test")
        self.assertEqual((st["status"], st["bounce_count"]), ("bounced", 1))

    def test_complaint_unsubscribes(self):
        verp = self.deliver("ok-c@sink.test")
        self.assertEqual(self.bounce(verp, ARF.format(verp=verp, rcpt="ok-c@sink.test"))[0], 250)
        wait_for(lambda: self.events("complaint", "ok-c@sink.test"), what="complaint event")
        self.assertEqual(self.status("ok-c@sink.test")["status"], "unsubscribed")
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("t")
            s.mail("news@example.com")
            code, msg = s.rcpt("ok-c@sink.test")
        self.assertEqual(code, 550, "the next mail to a complainer is refused at RCPT")

    def test_autoreply_is_reported_and_counts_nothing(self):
        verp = self.deliver("ok-a@sink.test")
        self.assertEqual(self.bounce(verp, AUTOREPLY.format(verp=verp, rcpt="ok-a@sink.test"))[0], 250)
        ev = wait_for(lambda: self.events("dsn", "ok-a@sink.test"), what="dsn event")[0]
        self.assertIn("autoreply", ev["reply"])
        self.assertEqual(self.status("ok-a@sink.test")["status"], "active")

    def test_unparseable_report_is_kept_not_dropped(self):
        verp = self.deliver("ok-u@sink.test")
        self.assertEqual(self.bounce(verp, "Subject: hi\n\nnothing useful here\n")[0], 250)
        ev = wait_for(lambda: self.events("dsn", "ok-u@sink.test"), what="dsn event")[0]
        self.assertIn("no delivery report found", ev["reply"])
        kept = os.listdir(os.path.join(self.d.spool, "dsn-unparsed"))
        self.assertEqual(len(kept), 1)

    def test_forged_and_foreign_addresses_are_refused(self):
        verp = self.deliver("ok-f@sink.test")
        local, domain = verp.split("@")
        forged = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
        other_index = local.replace("-0-", "-1-") + "@" + domain
        for rcpt in (forged, other_index, "postmaster@bnc.test", "someone@example.org", "b-@bnc.test"):
            code, msg = self.bounce(verp, DSN.format(verp=verp, rcpt="ok-f@sink.test"), rcpt_to=rcpt)
            self.assertEqual(code, 550, rcpt)
        self.assertEqual(self.events("bounced", "ok-f@sink.test"), [])
        st = json.loads(self.d.ctl("recipient", "show", "ok-f@sink.test", "--json").stdout)
        self.assertEqual(st["status"], "active")


if __name__ == "__main__":
    unittest.main()


class ReturnToSender(unittest.TestCase):
    def test_final_failure_is_mailed_to_the_sender_with_the_report(self):
        sink = Sink()
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)}) +
                   "[bounce]\nreturn_to_sender = true\n").start()
        self.addCleanup(d.cleanup)
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            s.ehlo("t")
            s.sendmail("ok-sender@sink.test", ["reject-r@sink.test"], message(5, campaign="rts"))
        got = wait_for(lambda: sink.received("ok-sender"), what="the DSN at the sender")
        mail_from, rcpt, body = got[0]
        self.assertEqual(mail_from, "", "sent from the null sender: it can never loop")
        text = body.decode()
        self.assertIn("multipart/report; report-type=delivery-status", text)
        self.assertIn("Final-Recipient: rfc822; reject-r@sink.test", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertIn("X-Test-Seq: 5", text, "the original headers are attached")
        # and the DSN is one our own parser reads
        import subprocess, tempfile
        from harness import BIN
        with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
            f.write(body)
            f.flush()
            parsed = json.loads(subprocess.run([os.path.join(BIN, "ricochetctl"), "--config", d.config_path, "bounce",
                                                "parse", "--json", f.name], capture_output=True, text=True).stdout)
        self.assertEqual([(r["recipient"], r["enhanced"]) for r in parsed], [("reject-r@sink.test", "5.1.1")])
