"""Asynchronous bounces against the real daemon: a message is delivered to a
scripted receiver, and a report about it comes back later to its signed VERP
return path on the bounce listener. Covers RFC 3464 bounces, ARF complaints,
auto-replies, unparseable reports (kept), and forged or foreign addresses
(refused, so nothing is relayed and no address can be marked by a forgery)."""
import json
import os
import smtplib
import unittest

from harness import Daemon, RawClient, delivery_config, message, wait_for
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

# Exim's free-text bounce: no report part, X-Failed-Recipients, and (as Exim
# does) Auto-Submitted: auto-replied although it is a mail system's notice.
FREE_TEXT = """From: Mail Delivery System <Mailer-Daemon@mx.sink.test>
To: {verp}
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied
X-Failed-Recipients: {rcpt}

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {rcpt}
    host store.sink.test [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<{rcpt}>:
    550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown
"""

# A person answering the return path, quoting an error: not a bounce.
PERSON = """From: Someone <someone@sink.test>
To: {verp}
Subject: Re: your newsletter

Your list keeps failing for {rcpt} with 550 5.1.1 user unknown, please check.
"""

DELAYED = DSN.replace("Action: failed", "Action: delayed").replace("Status: 5.1.1", "Status: 4.4.7").replace(
    "550 5.1.1", "451 4.4.7")

# Two records; the one about our recipient is the second.
TWO_RECORDS = DSN.replace("Final-Recipient: rfc822; {rcpt}", """Final-Recipient: rfc822; other@sink.test
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full

Final-Recipient: rfc822; {rcpt}""", 1)

# Amazon SES's notification by mail (an SNS e-mail subscription): JSON.
SES_BOUNCE = """From: AWS Notifications <no-reply@sns.amazonaws.com>
To: {verp}
Subject: AWS Notification Message
Content-Type: text/plain; charset=UTF-8

{{"notificationType":"Bounce","bounce":{{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{{"emailAddress":"{rcpt}","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}}],"reportingMTA":"dsn; a1.smtp-out.amazonses.com"}},"mail":{{"source":"news@example.com"}}}}

--
If you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe.
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

    def bounce(self, verp, body, rcpt_to=None, mail_from=""):
        with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
            s.ehlo("mx.sink.test")
            s.mail(mail_from)
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

    def test_a_report_sent_in_bdat_chunks_counts_like_one_sent_with_data(self):
        # Exchange and Microsoft 365 send with BDAT when CHUNKING is offered,
        # and the bounce listener offers it: a report in three chunks, its
        # line ends cut between CR and LF, is read like any other.
        verp = self.deliver("ok-chunks@sink.test")
        report = DSN.format(verp=verp, rcpt="ok-chunks@sink.test").replace("\r\n", "\n").replace("\n", "\r\n").encode()
        cut1 = report.index(b"\r\n", len(report) // 3) + 1
        cut2 = 2 * len(report) // 3
        c = RawClient(self.d.bounce_port, timeout=30)
        self.assertTrue(c.reply().startswith("220"))
        self.assertIn("CHUNKING", c.cmd("EHLO mx.sink.test"))
        c.send(b"MAIL FROM:<>\r\nRCPT TO:<%s>\r\n" % verp.encode())
        for part, last in ((report[:cut1], b""), (report[cut1:cut2], b""), (report[cut2:], b" LAST")):
            c.send(b"BDAT %d%s\r\n" % (len(part), last) + part)
        got = [c.reply() for _ in range(5)]
        self.assertEqual([g[:3] for g in got], ["250"] * 5, got)
        self.assertEqual(c.cmd("QUIT")[:3], "221")
        ev = wait_for(lambda: self.events("bounced", "ok-chunks@sink.test"), what="bounced event")[0]
        self.assertEqual((ev["kind"], ev["category"], ev["enhanced"]), ("hard", "user-unknown", "5.1.1"))

    def test_a_bounce_after_a_crash_still_finds_its_message(self):
        # The message's rows (which a later bounce is matched against) are in
        # the store, or its journal, before the client hears 250: a kill -9
        # right after cannot lose them. The store is held locked so that
        # they can only reach the journal, and slowly.
        import os
        import sqlite3
        db = sqlite3.connect(os.path.join(self.d.dir, "state.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:
                s.ehlo("t")
                s.sendmail("news@example.com", ["ok-crash@sink.test"], message(1, campaign="fall"))
            self.d.kill9()
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.d.start()
        wait_for(lambda: self.sink.received("ok-crash@sink.test"), what="delivery after the restart", timeout=60)
        verp = self.sink.received("ok-crash@sink.test")[0][0]
        code, _ = self.bounce(verp, DSN.format(verp=verp, rcpt="ok-crash@sink.test"))
        self.assertEqual(code, 250)
        ev = wait_for(lambda: self.events("bounced", "ok-crash@sink.test"), what="bounced event", timeout=30)[0]
        self.assertEqual(ev["campaign"], "fall")
        self.assertFalse(self.events("dsn", "ok-crash@sink.test"), "the store knew the message")

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

    def test_free_text_bounce_from_a_mail_system_counts(self):
        verp = self.deliver("ok-x@sink.test")
        self.assertEqual(self.bounce(verp, FREE_TEXT.format(verp=verp, rcpt="ok-x@sink.test"))[0], 250)
        ev = wait_for(lambda: self.events("bounced", "ok-x@sink.test"), what="bounced event")[0]
        self.assertEqual((ev["kind"], ev["enhanced"]), ("hard", "5.1.1"), "not mistaken for an auto-reply")
        self.assertEqual(self.status("ok-x@sink.test")["status"], "bounced")

    def test_an_amazon_ses_notification_counts_like_a_report(self):
        verp = self.deliver("ok-ses@sink.test")
        code, _ = self.bounce(verp, SES_BOUNCE.format(verp=verp, rcpt="ok-ses@sink.test"),
                              mail_from="bounces@sns.amazonaws.com")
        self.assertEqual(code, 250)
        ev = wait_for(lambda: self.events("bounced", "ok-ses@sink.test"), what="bounced event")[0]
        self.assertEqual((ev["kind"], ev["category"], ev["enhanced"]), ("hard", "user-unknown", "5.1.1"))
        self.assertEqual(self.status("ok-ses@sink.test")["status"], "bounced")

    def test_free_text_from_a_person_is_kept_and_counts_nothing(self):
        verp = self.deliver("ok-p@sink.test")
        code, _ = self.bounce(verp, PERSON.format(verp=verp, rcpt="ok-p@sink.test"), mail_from="someone@sink.test")
        self.assertEqual(code, 250)
        ev = wait_for(lambda: self.events("dsn", "ok-p@sink.test"), what="dsn event")[0]
        self.assertIn("not from a mail system", ev["reply"])
        self.assertEqual(self.events("bounced", "ok-p@sink.test"), [])
        self.assertEqual(self.status("ok-p@sink.test")["status"], "active")
        self.assertEqual(len(os.listdir(os.path.join(self.d.spool, "dsn-unparsed"))), 1, "kept for a human")

    def test_delay_notice_counts_nothing(self):
        verp = self.deliver("ok-d@sink.test")
        self.assertEqual(self.bounce(verp, DELAYED.format(verp=verp, rcpt="ok-d@sink.test"))[0], 250)
        ev = wait_for(lambda: self.events("dsn", "ok-d@sink.test"), what="dsn event")[0]
        self.assertTrue(ev["reply"].startswith("delayed"), ev)
        self.assertEqual(self.events("bounced", "ok-d@sink.test"), [])
        self.assertEqual(self.status("ok-d@sink.test")["status"], "active")

    def test_the_record_about_the_tokens_recipient_is_used(self):
        verp = self.deliver("ok-t@sink.test")
        self.assertEqual(self.bounce(verp, TWO_RECORDS.format(verp=verp, rcpt="ok-t@sink.test"))[0], 250)
        ev = wait_for(lambda: self.events("bounced", "ok-t@sink.test"), what="bounced event")[0]
        self.assertEqual((ev["enhanced"], ev["category"]), ("5.1.1", "user-unknown"), "not the other record's 5.2.2")
        self.assertEqual(self.events("bounced", "other@sink.test"), [], "the other address is not ours to mark")

    def test_the_same_report_twice_counts_once(self):
        verp = self.deliver("ok-2@sink.test")
        for n in (1, 2):
            self.assertEqual(self.bounce(verp, DSN.format(verp=verp, rcpt="ok-2@sink.test"))[0], 250)
            wait_for(lambda: len(self.events("bounced", "ok-2@sink.test")) == n, what="bounced event %d" % n)
        self.assertEqual(self.status("ok-2@sink.test")["bounce_count"], 1)

    def test_report_that_cannot_be_kept_gets_452_and_is_taken_later(self):
        verp = self.deliver("ok-k@sink.test")
        blocker = os.path.join(self.d.spool, "dsn-unparsed")
        with open(blocker, "w") as f:  # a file where the directory should be: the write fails
            f.write("x")
        code, msg = self.bounce(verp, "Subject: hi\n\nnothing useful here\n")
        self.assertEqual(code, 452, msg)
        self.assertEqual(self.events("dsn", "ok-k@sink.test"), [], "nothing said about a report not taken")
        os.unlink(blocker)
        self.assertEqual(self.bounce(verp, "Subject: hi\n\nnothing useful here\n")[0], 250, "the retry is taken")
        self.assertEqual(len(os.listdir(blocker)), 1)

    def test_report_for_a_message_the_store_does_not_know_changes_nothing(self):
        verp = self.deliver("ok-n@sink.test")
        self.d.stop()
        for suffix in ("", "-wal", "-shm"):  # a state database started over
            path = os.path.join(self.d.dir, "state.db" + suffix)
            if os.path.exists(path):
                os.unlink(path)
        self.d.start()
        # The report names a different address than the message had: it must
        # not be believed.
        code, _ = self.bounce(verp, DSN.format(verp=verp, rcpt="victim@sink.test"))
        self.assertEqual(code, 250)
        ev = wait_for(lambda: [e for e in self.d.events() if e["type"] == "dsn" and "does not know" in e["reply"]],
                      what="dsn event")[0]
        self.assertEqual(ev["recipient"], "")
        self.assertEqual(self.events("bounced", "victim@sink.test"), [])
        r = self.d.ctl("recipient", "show", "victim@sink.test", check=False)
        self.assertIn("no record", r.stderr, "nothing at all was recorded against the address")
        self.assertEqual(len(os.listdir(os.path.join(self.d.spool, "dsn-unparsed"))), 1)

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


class BounceListenerLimits(unittest.TestCase):
    def test_own_size_and_connection_limits(self):
        d = Daemon(bounce_extra="max_message_size = 4096\nmax_connections = 2\n").start()
        self.addCleanup(d.cleanup)
        def hold_one():
            # The start-up probe's session may still hold a slot for a moment.
            c = RawClient(d.bounce_port)
            if c.reply().startswith("220"):
                return c
            c.close()
            return None
        held = [wait_for(hold_one, what="a session slot") for _ in range(2)]
        third = RawClient(d.bounce_port)
        self.assertTrue(third.reply().startswith("421"), "the third connection is turned away")
        # Submission is not affected by the bounce listener's limit.
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            self.assertEqual(s.ehlo("t")[0], 250)
        for c in held + [third]:
            c.close()

        def ehlo_when_free():  # the closed sessions leave the count as they end
            try:
                with smtplib.SMTP("127.0.0.1", d.bounce_port, timeout=30) as s:
                    code, msg = s.ehlo("mx.sink.test")
                    return code, msg, s.mail("", ["SIZE=10000"])
            except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, ConnectionError):
                return None
        code, msg, (mcode, mmsg) = wait_for(ehlo_when_free, what="a free bounce listener slot")
        self.assertIn(b"SIZE 4096", msg)
        self.assertEqual(mcode, 552, mmsg)


class ReturnToSender(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        self.addCleanup(self.sink.close)
        routes = {"sink.test": (self.sink.host, self.sink.port), "other.test": (self.sink.host, self.sink.port)}
        self.d = Daemon(extra_config=delivery_config(routes) + "[bounce]\nreturn_to_sender = true\n").start()
        self.addCleanup(self.d.cleanup)

    def submit(self, sender, rcpts, seq):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("t")
            s.sendmail(sender, rcpts, message(seq, campaign="rts"))

    def settled(self):
        """Every message, the returned DSNs included, has left the queue."""
        wait_for(lambda: self.d.queue_ids() == [], what="an empty queue")

    def parse(self, body):
        import subprocess, tempfile
        from harness import BIN
        with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
            f.write(body)
            f.flush()
            out = subprocess.run([os.path.join(BIN, "ricochetctl"), "--config", self.d.config_path, "bounce", "parse",
                                  "--json", f.name], capture_output=True, text=True).stdout
        return json.loads(out)

    def test_one_report_per_message_lists_every_failure(self):
        # Two failing recipients in two domains (two delivery batches) and one that is delivered.
        self.submit("ok-sender@sink.test", ["reject-r@sink.test", "reject-s@other.test", "ok-t@sink.test"], 5)
        wait_for(lambda: self.sink.received("ok-sender"), what="the DSN at the sender")
        self.settled()
        got = self.sink.received("ok-sender")
        self.assertEqual(len(got), 1, "one report for the message, not one per domain")
        mail_from, rcpt, body = got[0]
        self.assertEqual(mail_from, "", "sent from the null sender: it can never loop")
        text = body.decode()
        self.assertIn("multipart/report; report-type=delivery-status", text)
        self.assertIn("X-Test-Seq: 5", text, "the original headers are attached")
        self.assertNotIn("ok-t@sink.test\r\nAction", text, "the delivered recipient is not reported")
        # and the DSN is one our own parser reads
        self.assertEqual(sorted((r["recipient"], r["enhanced"]) for r in self.parse(body)),
                         [("reject-r@sink.test", "5.1.1"), ("reject-s@other.test", "5.1.1")])

    def test_no_report_to_our_own_bounce_domain(self):
        self.submit("someone@bnc.test", ["reject-r@sink.test"], 6)
        wait_for(lambda: [e for e in self.d.events() if e["type"] == "bounced"], what="the failure")
        self.settled()
        self.assertEqual(self.sink.received("someone"), [])
        wait_for(lambda: "removed" in self.d.log(), what="the log line after the removal")

    def test_a_later_bounce_goes_back_to_the_sender_once(self):
        self.submit("ok-origin@sink.test", ["ok-later@sink.test"], 7)
        wait_for(lambda: self.sink.received("ok-later"), what="delivery")
        self.settled()  # the message has left the spool; only the state store knows its sender
        verp = self.sink.received("ok-later")[0][0]
        for n in (1, 2):  # the same report twice
            with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
                s.ehlo("mx.sink.test")
                s.mail("")
                s.rcpt(verp)
                code, _ = s.data(DSN.format(verp=verp, rcpt="ok-later@sink.test").encode())
            self.assertEqual(code, 250)
            wait_for(lambda: len([e for e in self.d.events() if e["type"] == "bounced"]) == n, what="bounced %d" % n)
            self.settled()
        got = self.sink.received("ok-origin")
        self.assertEqual(len(got), 1, "a failure reported twice is returned once")
        mail_from, _, body = got[0]
        self.assertEqual(mail_from, "")
        self.assertEqual([(r["recipient"], r["enhanced"]) for r in self.parse(body)], [("ok-later@sink.test", "5.1.1")])
        self.assertNotIn("text/rfc822-headers", body.decode(), "the original is gone; nothing is made up")


if __name__ == "__main__":
    unittest.main()
