"""Delivery against real receivers on loopback: a scripted sink (answers chosen
by recipient) and Postfix's smtp-sink. Covers VERP return paths, 2xx/4xx/5xx
handling, retries, expiry, drops mid-DATA, connection reuse and the
per-domain connection limit, and STARTTLS in opportunistic and required modes."""
import os
import re
import smtplib
import subprocess
import threading
import unittest

from harness import Daemon, delivery_config, free_port, message, wait_for, wait_listening
from sink import Sink

QUEUED = re.compile(r"queued as ([0-9A-Z]{13})")


def submit(d, rcpts, seq=0):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("t")
        s.mail("news@example.com")
        for r in rcpts:
            s.rcpt(r)
        code, msg = s.data(message(seq, campaign="c1"))
        assert code == 250, (code, msg)
        return QUEUED.search(msg.decode()).group(1)


def events(d, kind=None, rcpt=None):
    return [e for e in d.events() if (kind is None or e["type"] == kind) and (rcpt is None or e.get("recipient") == rcpt)]


class Delivery(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        hop = (self.sink.host, self.sink.port)
        # expire.test: same receiver, a per-domain max_age of 4 s
        self.d = Daemon(extra_config=delivery_config(
            {"sink.test": hop, "expire.test": hop}, per_domain=3,
            retry_extra='[[retry.domain]]\ndomain = "expire.test"\nmax_age = "4s"\n')).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def test_delivered_with_signed_verp_return_path(self):
        qid = submit(self.d, ["ok1@sink.test"], seq=7)
        ev = wait_for(lambda: events(self.d, "delivered"), what="delivered event")[0]
        self.assertEqual((ev["queue_id"], ev["recipient"], ev["code"], ev["stage"], ev["campaign"], ev["sync"]),
                         (qid, "ok1@sink.test", 250, "end_of_data", "c1", True))
        (mail_from, rcpt, data), = self.sink.received()
        self.assertRegex(mail_from, r"^b-%s-0-[0-9a-z]{10}@bnc\.test$" % qid.lower())
        self.assertIn(b"X-Test-Seq: 7", data)
        self.assertIn(("Received: from t ([127.0.0.1])").encode(), data)
        wait_for(lambda: self.d.queue_ids() == [], what="empty queue")
        self.assertIn("to=<ok1@sink.test>, relay=127.0.0.1[127.0.0.1]", self.d.log())

    def test_lines_starting_with_a_dot_arrive_as_they_were_sent(self):
        # RFC 5321 4.5.2 both ways: smtplib stuffs, we unstuff on submission
        # and stuff again on delivery; the sink unstuffs. A body line of just
        # "." must not end the message early.
        body = (b"From: a@example.com\r\nTo: dots@sink.test\r\nSubject: dots\r\n\r\n"
                b".leading dot\r\n.\r\n..two dots\r\nmiddle . dot\r\n.")
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("t")
            s.mail("news@example.com")
            s.rcpt("dots@sink.test")
            code, _ = s.data(body)
            self.assertEqual(code, 250)
        wait_for(lambda: events(self.d, "delivered"), what="delivered event")
        (_, _, data), = self.sink.received()
        self.assertTrue(data.endswith(b"\r\n\r\n.leading dot\r\n.\r\n..two dots\r\nmiddle . dot\r\n.\r\n"), data[-80:])

    def test_550_fails_at_once_with_the_whole_reply(self):
        qid = submit(self.d, ["reject1@sink.test"])
        ev = wait_for(lambda: events(self.d, "bounced"), what="bounced event")[0]
        self.assertEqual((ev["queue_id"], ev["code"], ev["enhanced"], ev["stage"]), (qid, 550, "5.1.1", "rcpt"))
        self.assertEqual((ev["kind"], ev["category"]), ("hard", "user-unknown"))
        self.assertEqual(ev["reply"], "550 5.1.1 The email account that you tried to reach does not exist. "
                                      "Please check the address.")
        wait_for(lambda: self.d.queue_ids() == [], what="empty queue")
        self.assertEqual(self.sink.seen["reject1@sink.test"], 1, "a 5xx is not retried")

    def test_mailbox_full_is_final_and_not_retried(self):
        submit(self.d, ["full1@sink.test"])
        ev = wait_for(lambda: events(self.d, "bounced"), what="bounced")[0]
        self.assertEqual((ev["code"], ev["kind"], ev["category"], ev["rule"]), (452, "soft", "mailbox-full", "mailbox-full"))
        wait_for(lambda: self.d.queue_ids() == [], what="empty queue")
        self.assertEqual(self.sink.seen["full1@sink.test"], 1, "bounce.final_soft: no retry")

    def test_dmarc_reject_is_a_block_not_a_bad_address(self):
        submit(self.d, ["dmarc1@sink.test"])
        ev = wait_for(lambda: events(self.d, "bounced"), what="bounced")[0]
        self.assertEqual((ev["code"], ev["enhanced"], ev["stage"], ev["kind"], ev["category"]),
                         (550, "5.7.26", "end_of_data", "block", "auth-failure"))

    def test_451_then_250_is_delivered_on_the_retry(self):
        submit(self.d, ["once1@sink.test"])
        wait_for(lambda: events(self.d, "delivered"), what="delivered after retry")
        deferred = events(self.d, "deferred")
        self.assertEqual([(e["code"], e["enhanced"], e["attempt"], e["kind"]) for e in deferred],
                         [(451, "4.7.1", 1, "soft")])
        self.assertEqual(events(self.d, "delivered")[0]["attempt"], 2)
        self.assertEqual(len(self.sink.received("once1")), 1)

    def test_drop_mid_data_is_deferred_and_delivered_once_later(self):
        submit(self.d, ["drop1@sink.test"])
        wait_for(lambda: events(self.d, "delivered"), what="delivered after drop")
        ev = events(self.d, "deferred")[0]
        self.assertEqual((ev["code"], ev["stage"]), (0, "end_of_data"))
        self.assertEqual(len(self.sink.received("drop1")), 1, "delivered exactly once")

    def test_one_transaction_per_recipient_each_with_its_own_return_path(self):
        qid = submit(self.d, ["ok-a@sink.test", "reject-b@sink.test", "ok-c@sink.test"])
        wait_for(lambda: len(events(self.d, "delivered")) == 2 and events(self.d, "bounced"), what="3 decisions")
        froms = {rcpt: mf for mf, rcpt, _ in self.sink.received()}
        self.assertEqual(set(froms), {"ok-a@sink.test", "ok-c@sink.test"})
        self.assertRegex(froms["ok-a@sink.test"], r"^b-%s-0-" % qid.lower())
        self.assertRegex(froms["ok-c@sink.test"], r"^b-%s-2-" % qid.lower())

    def test_temporary_failures_expire_at_the_domains_max_age(self):
        qid = submit(self.d, ["tempfail1@expire.test"])
        # The event is written when the decision is recorded; the file moves to
        # deferred/ a moment later: wait for the queue to show it there.
        in_deferred = lambda: (lambda m: m if m.get("state") == "deferred" else None)(self.d.ctl_json("queue", "show", qid))
        shown = wait_for(lambda: events(self.d, "deferred") and in_deferred(), what="deferred")
        self.assertEqual(shown["state"], "deferred")
        self.assertEqual(shown["recipients"][0]["status"], "deferred")
        self.assertEqual(shown["recipients"][0]["code"], 451)
        ev = wait_for(lambda: events(self.d, "expired"), timeout=20, what="expired")[0]
        self.assertEqual((ev["queue_id"], ev["code"], ev["enhanced"]), (qid, 451, "4.3.0"),
                         "expiry keeps the last reply")
        wait_for(lambda: self.d.queue_ids() == [], what="empty queue")
        attempts = self.sink.seen["tempfail1@expire.test"]
        self.assertGreaterEqual(attempts, 2)
        self.assertLessEqual(attempts, 6, "retried every 1s for 4s, not more")

    def test_reuse_and_per_domain_connection_limit(self):
        ids = [submit(self.d, ["ok%d@sink.test" % i], seq=i) for i in range(100)]
        wait_for(lambda: len(self.sink.received()) == 100, what="100 messages at the sink")
        self.assertEqual(len(set(ids)), 100)
        self.assertLessEqual(self.sink.max_concurrent, 3, "max_connections_per_domain = 3")
        self.assertLess(self.sink.connections, 10, "100 messages over fewer than 10 connections")

    def test_rset_only_after_a_transaction_that_did_not_end(self):
        # One reused connection: no RSET between messages whose data got a
        # reply (RFC 5321 4.1.1.4: the server has cleared its buffers), but
        # one after a transaction refused before its data (every recipient
        # refused, DATA 554): the sink, as Postfix's smtpd, answers a MAIL
        # inside an open transaction with 503, so without it the next
        # message would fail.
        for rcpt, outcome in (("ok-r1", "delivered"), ("ok-r2", "delivered"), ("reject-r3", "bounced"),
                              ("ok-r4", "delivered"), ("ok-r5", "delivered")):
            submit(self.d, ["%s@sink.test" % rcpt])
            wait_for(lambda: events(self.d, outcome, rcpt="%s@sink.test" % rcpt), what="%s %s" % (rcpt, outcome))
        self.assertEqual(len(self.sink.sessions), 1, "one connection, reused: %r" % self.sink.sessions)
        verbs = [v for v in self.sink.sessions[0] if v not in ("EHLO", "STAR")]
        self.assertEqual(verbs, ["MAIL", "RCPT", "DATA"] * 2 + ["MAIL", "RCPT", "DATA", "RSET"]
                         + ["MAIL", "RCPT", "DATA"] * 2, verbs)

    def test_a_421_on_a_reused_idle_connection_is_not_the_recipients(self):
        # The server closed the idle connection with a 421 of its own before
        # the next message's MAIL arrived: that message goes once more on a
        # fresh connection, is not deferred, and the 421 is not read as the
        # destination's (no rate-limit reading, no bounce event).
        self.sink.idle_421_after_message = True
        for rcpt in ("ok-s1", "ok-s2", "ok-s3"):
            submit(self.d, ["%s@sink.test" % rcpt])
            wait_for(lambda: events(self.d, "delivered", rcpt="%s@sink.test" % rcpt), what="%s delivered" % rcpt)
        self.assertEqual(events(self.d, "deferred"), [], "the stale connection's 421 deferred nobody")

    def test_held_message_is_not_delivered_until_released(self):
        qid = submit(self.d, ["tempfail-h@sink.test"])
        wait_for(lambda: events(self.d, "deferred"), what="first attempt")
        self.d.ctl("queue", "hold", qid)
        n = self.sink.seen["tempfail-h@sink.test"]
        wait_for(lambda: "%s: on hold, not delivered" % qid in self.d.log(), what="the retry to find it held")
        self.assertEqual(self.sink.seen["tempfail-h@sink.test"], n, "held: no attempts")
        self.assertEqual(self.d.queue_ids("hold"), [qid])
        self.d.ctl("queue", "release", qid)
        wait_for(lambda: self.sink.seen["tempfail-h@sink.test"] > n, what="an attempt after release")

    def test_held_message_still_expires_on_time(self):
        qid = submit(self.d, ["tempfail-x@expire.test"])
        wait_for(lambda: events(self.d, "deferred"), what="first attempt")
        self.d.ctl("queue", "hold", qid)
        ev = wait_for(lambda: events(self.d, "expired"), timeout=20, what="expiry while held")[0]
        self.assertEqual((ev["queue_id"], ev["code"], ev["category"]), (qid, 451, "other-temporary"))
        wait_for(lambda: self.d.queue_ids() == [], what="removed after expiry")


class SmtpSink(unittest.TestCase):
    """Postfix's own smtp-sink as the receiver."""

    def smtp_sink_daemon(self, server_extra=""):
        """smtp-sink on a free port, and a daemon routing example.net to it
        (both stopped at the test's end)."""
        port = free_port()
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", "127.0.0.1:%d" % port, "100"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(sink.wait)
        self.addCleanup(sink.terminate)
        wait_listening("127.0.0.1", port)
        d = Daemon(extra_config=delivery_config({"example.net": ("127.0.0.1", port)}), server_extra=server_extra)
        self.addCleanup(d.cleanup)
        return d.start()

    def test_delivers_to_smtp_sink(self):
        d = self.smtp_sink_daemon()
        for i in range(20):
            submit(d, ["user%d@example.net" % i], seq=i)
        wait_for(lambda: len(events(d, "delivered")) == 20, what="20 delivered")
        wait_for(lambda: d.queue_ids() == [], what="empty queue")


    def test_several_io_threads_relay_concurrent_clients_to_smtp_sink(self):
        # server.io_threads: the default is one thread on a 2-core machine
        # (CI), so 4 are run here on purpose: sessions and deliveries then
        # run on any of them at once.
        d = self.smtp_sink_daemon(server_extra="io_threads = 4")
        self.assertIn("4 I/O thread(s)", d.log())
        errors = []

        def client(c):
            try:
                with smtplib.SMTP("127.0.0.1", d.port, timeout=60) as s:
                    for i in range(50):
                        s.sendmail("sender@example.com", ["user%d-%d@example.net" % (c, i)], message(c * 100 + i))
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.fail("%s: %s" % (errors, self.state_of(d)))
        try:
            wait_for(lambda: len(events(d, "delivered")) >= 300, what="300 delivered")
        except AssertionError as e:
            self.fail("%s: %s" % (e, self.state_of(d)))
        delivered = events(d, "delivered")
        if len(delivered) != 300:
            self.fail("%d delivered events for 300 recipients: %s" % (len(delivered), self.state_of(d)))
        self.assertEqual(len({e["recipient"] for e in delivered}), 300)
        wait_for(lambda: d.queue_ids() == [], what="empty queue")

    @staticmethod
    def state_of(d):
        """What a failure message needs: the events by type, the queue,
        and the end of the daemon's log."""
        kinds = {}
        for e in d.events():
            kinds[e["type"]] = kinds.get(e["type"], 0) + 1
        return "events %s, queue %s, log:\n%s" % (kinds, d.ctl_json("queue", "list")[:5], d.log()[-4000:])


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.dirname(os.path.abspath(__file__))
        import tempfile
        cls.tmp = tempfile.mkdtemp(prefix="ricochet-tls-")
        cls.cert, cls.key = os.path.join(cls.tmp, "cert.pem"), os.path.join(cls.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=sink.test", "-keyout", cls.key, "-out", cls.cert], check=True, capture_output=True)
        # One for the address the route names (what tls_verify checks then).
        cls.ip_cert, cls.ip_key = os.path.join(cls.tmp, "ip-cert.pem"), os.path.join(cls.tmp, "ip-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", cls.ip_key,
                        "-out", cls.ip_cert], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.tmp])

    def run_with(self, tls_mode, sink_tls, extra="", cert=None):
        cert, key = cert or (self.cert, self.key)
        sink = Sink(certfile=cert if sink_tls else None, keyfile=key if sink_tls else None)
        d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)}, tls=tls_mode, extra=extra)).start()
        self.addCleanup(sink.close)
        self.addCleanup(d.cleanup)
        submit(d, ["ok@sink.test"])
        return d, sink

    def test_opportunistic_uses_starttls_with_a_self_signed_certificate(self):
        d, sink = self.run_with("opportunistic", True)
        wait_for(lambda: events(d, "delivered"), what="delivered")
        self.assertEqual(sink.tls_sessions, 1)

    def test_opportunistic_falls_back_to_plain_when_not_offered(self):
        d, sink = self.run_with("opportunistic", False)
        wait_for(lambda: events(d, "delivered"), what="delivered")
        self.assertEqual(sink.tls_sessions, 0)

    def test_required_with_self_signed_certificate_delivers(self):
        d, sink = self.run_with("required", True)
        wait_for(lambda: events(d, "delivered"), what="delivered")
        self.assertEqual(sink.tls_sessions, 1)

    def test_verify_refuses_a_certificate_no_one_vouches_for(self):
        d, sink = self.run_with("required", True, extra="tls_verify = true\n", cert=(self.ip_cert, self.ip_key))
        ev = wait_for(lambda: events(d, "deferred"), what="deferred")[0]
        self.assertEqual((ev["stage"], ev["category"]), ("tls", "tls-failure"))
        self.assertIn("certificate of 127.0.0.1 not accepted: self-signed certificate", ev["reply"])
        self.assertEqual(sink.received(), [])

    def test_verify_with_its_trust_anchor_delivers(self):
        d, sink = self.run_with("required", True, extra='tls_verify = true\ntls_ca_file = "%s"\n' % self.ip_cert,
                                cert=(self.ip_cert, self.ip_key))
        wait_for(lambda: events(d, "delivered"), what="delivered")
        self.assertEqual(sink.tls_sessions, 1)

    def test_verify_checks_the_name_too(self):
        # Trusted, but issued to sink.test, not to the address delivered to.
        d, sink = self.run_with("required", True, extra='tls_verify = true\ntls_ca_file = "%s"\n' % self.cert)
        ev = wait_for(lambda: events(d, "deferred"), what="deferred")[0]
        self.assertEqual(ev["stage"], "tls")
        self.assertIn("certificate of 127.0.0.1 not accepted: IP address mismatch", ev["reply"])
        self.assertEqual(sink.received(), [])

    def test_required_without_starttls_defers(self):
        d, sink = self.run_with("required", False)
        ev = wait_for(lambda: events(d, "deferred"), what="deferred")[0]
        self.assertEqual(ev["stage"], "starttls")
        self.assertIn("does not offer STARTTLS", ev["reply"])
        self.assertEqual(sink.received(), [])


class StaleConnections(unittest.TestCase):
    def test_connections_the_server_closed_are_replaced_not_deferred(self):
        # The receiver hangs up after every message, as servers with short
        # idle time-outs do: every connection left in the pool is dead by
        # the time it is reused.
        sink = Sink()
        sink.close_after_message = True
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)}, per_domain=3)).start()
        self.addCleanup(d.cleanup)
        for rnd in range(3):
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:  # several messages at once: several connections
                for i in range(8):
                    s.sendmail("news@example.com", ["ok-s%d-%d@sink.test" % (rnd, i)], message(i))
            wait_for(lambda: len(sink.received("ok-s%d-" % rnd)) == 8, what="round %d delivered" % rnd)
        self.assertEqual(events(d, "deferred"), [], "a stale connection says nothing about the recipient")


class MisbehavingReceivers(unittest.TestCase):
    """Each kind of broken receiver ends in a deferral; once it behaves, the
    message is delivered, once."""

    def test_each_ends_deferred_then_delivered_once(self):
        for mode in ("silent", "garbage", "421", "slow"):
            with self.subTest(mode=mode):
                sink = Sink(greeting_delay=5)  # slow: longer than the 2 s greeting time-out
                sink.misbehave = mode
                d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)}, interval="1s",
                                                        command_timeout="2s")).start()
                try:
                    submit(d, ["ok-mis@sink.test"])
                    ev = wait_for(lambda: events(d, "deferred"), what="a deferral (%s)" % mode)[0]
                    self.assertEqual(ev["kind"], "technical", ev)
                    self.assertEqual(sink.received(), [])
                    sink.misbehave = None
                    wait_for(lambda: events(d, "delivered"), what="delivery after %s" % mode)
                    wait_for(lambda: d.queue_ids() == [], what="an empty queue")
                    self.assertEqual(len(sink.received("ok-mis")), 1, "delivered exactly once")
                finally:
                    d.cleanup()
                    sink.close()


if __name__ == "__main__":
    unittest.main()


class Flush(unittest.TestCase):
    def test_flush_retries_a_deferred_message_now(self):
        sink = Sink()
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)}, interval="1h")).start()
        self.addCleanup(d.cleanup)
        qid = submit(d, ["tempfail-f@sink.test"])
        wait_for(lambda: d.queue_ids("deferred") == [qid], what="deferred for an hour")
        self.assertEqual(sink.seen["tempfail-f@sink.test"], 1)
        r = d.ctl_json("queue", "flush", qid)
        self.assertEqual(r["changed"], [qid])
        wait_for(lambda: len(events(d, "deferred")) == 2, what="second attempt after flush")
        self.assertEqual(sink.seen["tempfail-f@sink.test"], 2)
        self.assertEqual(events(d, "deferred")[1]["attempt"], 2)


class DestinationBackoff(unittest.TestCase):
    # (A rate-limited reply no longer pauses: it halves the destination's
    # rate, test_shaping.Adaptive. A blocklist or reputation reply still does
    # when there is no other source IP to try.)
    def test_blocklist_reply_pauses_the_destination(self):
        sink = Sink()
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)}) +
                   '[bounce]\ndestination_backoff = "1h"\n').start()
        self.addCleanup(d.cleanup)
        sink.block_sources.add("127.0.0.1")
        submit(d, ["throttle1@sink.test"])
        # A 5xx: that recipient fails (kind block: nothing against the address), and the destination pauses.
        ev = wait_for(lambda: events(d, "bounced"), what="the blocklist reply")[0]
        self.assertEqual((ev["code"], ev["kind"], ev["category"]), (550, "block", "blocklisted"))
        ids = [submit(d, ["ok-p%d@sink.test" % i], seq=i) for i in range(5)]
        wait_for(lambda: d.log().count("sink.test paused for") >= 5, what="five messages held back by the pause")
        self.assertEqual(sink.received("ok-p"), [], "no attempt while the destination is paused")
        self.assertEqual(sink.seen.get("throttle1@sink.test"), 1)
        # (The move to deferred/ runs on delivery's sync threads, after the log line.)
        wait_for(lambda: sorted(set(ids) & set(d.queue_ids("deferred"))) == sorted(ids), what="the five in deferred/")
        # (throttle1's file goes a little after its bounce, once recorded.)
        row = wait_for(lambda: [r for r in d.ctl_json("queue", "summary")["domains"]
                                if r["domain"] == "sink.test" and r["total"] == 5], what="five for sink.test")[0]
        self.assertIn("paused_until", row)
        self.assertIn("PAUSED UNTIL", d.ctl("queue", "summary").stdout)
        # an operator's flush does not break the pause either
        d.ctl("queue", "flush", "--all")
        wait_for(lambda: d.log().count("sink.test paused for") >= 11, what="flushed messages held back")
        self.assertEqual(sink.received("ok-p"), [])
