"""The bounce engine end to end: the real daemon delivers to a scripted
receiver; replies change (or do not change) recipient status; suppressed
addresses are refused at RCPT (or dropped); ricochetctl reads and changes
status; stats count by kind."""
import smtplib
import unittest

from harness import Daemon, delivery_config, message, wait_for
from sink import Sink


def submit(d, rcpt, campaign="c1"):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("t")
        s.mail("news@example.com")
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return code, msg.decode()
        code, msg = s.data(message(1, campaign=campaign))
        return code, msg.decode()


def events(d, kind, rcpt):
    return [e for e in d.events() if e["type"] == kind and e.get("recipient") == rcpt]


class BounceEngine(unittest.TestCase):
    suppressed = "reject"

    def setUp(self):
        self.sink = Sink()
        hop = (self.sink.host, self.sink.port)
        self.d = Daemon(extra_config=delivery_config({"sink.test": hop, "gmail.com": hop}) +
                        '[bounce]\nsuppressed = "%s"\n' % self.suppressed).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def status(self, addr):
        r = self.d.ctl("recipient", "show", addr, "--json", check=False)
        return None if r.returncode else __import__("json").loads(r.stdout)


class RejectMode(BounceEngine):
    def test_user_unknown_bounces_the_address_and_a_trusted_domain_holds_it(self):
        submit(self.d, "reject-u@sink.test")
        wait_for(lambda: events(self.d, "bounced", "reject-u@sink.test"), what="bounce")
        st = wait_for(lambda: (self.status("reject-u@sink.test") or {}).get("bounce_count") and
                      self.status("reject-u@sink.test"), what="status")
        self.assertEqual((st["status"], st["bounce_count"], st["last_category"]), ("bounced", 1, "user-unknown"))
        self.assertEqual(submit(self.d, "reject-u@sink.test")[0], 250, "bounced is not suppressed")

        submit(self.d, "reject-g@gmail.com")
        wait_for(lambda: (self.status("reject-g@gmail.com") or {}).get("status") == "held", what="held")
        code, msg = submit(self.d, "reject-g@gmail.com")
        self.assertEqual(code, 550)
        self.assertIn("5.7.1 <reject-g@gmail.com>: recipient is held after 1 bounce(s) (last: user-unknown)", msg)
        held = self.d.ctl_json("recipient", "list", "--status", "held")
        self.assertEqual([r["address"] for r in held], ["reject-g@gmail.com"])

        # the operator vouches for it: accepted again
        self.d.ctl("recipient", "clear", "reject-g@gmail.com")
        self.assertEqual(self.status("reject-g@gmail.com")["status"], "active")
        self.assertEqual(submit(self.d, "ok-g@gmail.com")[0], 250)
        self.assertEqual(submit(self.d, "reject-g@gmail.com")[0], 250)

    def test_status_changes_are_events_and_every_event_is_numbered_across_restarts(self):
        submit(self.d, "reject-s@gmail.com")
        held = wait_for(lambda: events(self.d, "status_changed", "reject-s@gmail.com"), what="status_changed")
        ch = held[0]
        self.assertEqual((ch["from"], ch["to"], ch["bounce_count"], ch["category"]),
                         ("active", "held", 1, "user-unknown"))
        self.assertTrue(ch["first_bounce"] and ch["first_bounce"] == ch["last_bounce"], ch)
        bounce = events(self.d, "bounced", "reject-s@gmail.com")[0]
        self.assertLess(bounce["seq"], ch["seq"], "the change follows the decision that made it")
        self.d.ctl("recipient", "clear", "reject-s@gmail.com")
        cleared = wait_for(lambda: [e for e in events(self.d, "status_changed", "reject-s@gmail.com")
                                    if e["to"] == "active"], what="cleared")
        self.assertEqual(cleared[0]["reason"], "admin: clear")
        self.d.stop()
        self.d.start()
        submit(self.d, "ok-after@sink.test")
        wait_for(lambda: events(self.d, "delivered", "ok-after@sink.test"), what="delivery after restart")
        evs = self.d.events()
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, sorted(seqs), "in the file in seq order")
        self.assertEqual(len(set(seqs)), len(seqs), "never reused across the restart")
        self.assertEqual(len({e["id"] for e in evs}), len(evs))

    def test_final_soft_reply_counts_once_and_is_not_retried(self):
        submit(self.d, "full-s@sink.test")
        st = wait_for(lambda: (self.status("full-s@sink.test") or {}).get("bounce_count") and
                      self.status("full-s@sink.test"), what="status")
        self.assertEqual((st["status"], st["bounce_count"], st["last_kind"]), ("bounced", 1, "soft"))
        self.assertEqual(self.sink.seen["full-s@sink.test"], 1)

    def test_421_try_later_is_retried_and_leaves_the_address_alone(self):
        submit(self.d, "later-t@sink.test")
        wait_for(lambda: len(events(self.d, "deferred", "later-t@sink.test")) >= 2, what="two attempts")
        st = self.status("later-t@sink.test")
        self.assertEqual((st["status"], st["bounce_count"]), ("active", 0), "a deferral says nothing about the address")
        self.assertEqual([h["type"] for h in st["history"]][:2], ["deferred", "deferred"])

    def test_dmarc_reject_is_block_and_the_address_stays_active(self):
        submit(self.d, "dmarc-d@sink.test")
        ev = wait_for(lambda: events(self.d, "bounced", "dmarc-d@sink.test"), what="bounce")[0]
        self.assertEqual((ev["kind"], ev["category"]), ("block", "auth-failure"))
        st = self.status("dmarc-d@sink.test")
        self.assertEqual((st["status"], st["bounce_count"]), ("active", 0), "a block never counts against the address")
        self.assertEqual(submit(self.d, "dmarc-d@sink.test")[0], 250)

    def test_unsubscribe_refuses_and_stats_count_by_kind(self):
        self.d.ctl("recipient", "unsubscribe", "Gone@Sink.test")
        code, msg = submit(self.d, "gone@sink.test")
        self.assertEqual(code, 550)
        self.assertIn("recipient has unsubscribed", msg)
        for rcpt in ("ok-1@sink.test", "reject-2@sink.test", "dmarc-3@sink.test"):
            submit(self.d, rcpt, campaign="spring")
        wait_for(lambda: len(events(self.d, "delivered", "ok-1@sink.test")) == 1 and
                 events(self.d, "bounced", "reject-2@sink.test") and events(self.d, "bounced", "dmarc-3@sink.test"),
                 what="three decisions")
        stats = self.d.ctl_json("stats", "--campaign", "spring")
        row, = stats["by_campaign"]
        self.assertEqual((row["sent"], row["delivered"], row["hard"], row["block"]), (3, 1, 1, 1))
        self.assertAlmostEqual(row["bounce_rate"], 1 / 3)
        self.assertIn("spring", self.d.ctl("stats").stdout)


class DropMode(BounceEngine):
    suppressed = "drop"

    def test_suppressed_recipient_is_accepted_and_dropped(self):
        self.d.ctl("recipient", "unsubscribe", "gone@sink.test")
        code, msg = submit(self.d, "gone@sink.test")
        self.assertEqual(code, 250)
        self.assertIn("nothing queued", msg)
        # The event is published off the SMTP thread (the recorder writes it):
        # it follows the reply, it does not precede it.
        ev = wait_for(lambda: events(self.d, "suppressed", "gone@sink.test"), what="suppressed event")
        self.assertEqual(len(ev), 1)
        self.assertEqual(self.d.queue_ids(), [])


if __name__ == "__main__":
    unittest.main()


class StateStoreDown(unittest.TestCase):
    """A state database that cannot be written (here: another process holds
    an exclusive lock) loses no decision: the daemon says why, keeps them in
    spool_dir/decisions.pending, and records them once the store is back."""

    def test_decisions_wait_for_a_locked_store(self):
        import os
        import sqlite3
        sink = Sink()
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({"sink.test": (sink.host, sink.port)})).start()
        self.addCleanup(d.cleanup)
        db = sqlite3.connect(os.path.join(d.dir, "state.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            self.assertEqual(submit(d, "reject-locked@sink.test")[0], 250)
            wait_for(lambda: events(d, "bounced", "reject-locked@sink.test"), what="the bounce")
            wait_for(lambda: "kept in" in d.log(), what="the daemon saying why", timeout=60)
            self.assertIn("state store: cannot record", d.log())
            self.assertTrue(os.path.getsize(os.path.join(d.spool, "decisions.pending")) > 0)
        finally:
            db.execute("ROLLBACK")
            db.close()
        wait_for(lambda: d.ctl("recipient", "show", "reject-locked@sink.test", check=False).returncode == 0,
                 what="the decision recorded once the store is back", timeout=60)
        st = __import__("json").loads(d.ctl("recipient", "show", "reject-locked@sink.test", "--json").stdout)
        self.assertEqual((st["status"], st["bounce_count"]), ("bounced", 1))
        self.assertIn("waiting decision(s) recorded", d.log())
        self.assertEqual(os.path.getsize(os.path.join(d.spool, "decisions.pending")), 0)
