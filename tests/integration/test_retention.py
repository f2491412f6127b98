"""Retention ([retention], `ricochetctl state prune`): old decisions are
folded into daily totals and deleted while the daemon delivers, and nothing
that matters is lost: `stats` keeps its totals, a held address stays held
(and refused), every message is delivered and counted once, old unreadable
DSNs go and recent ones stay."""
import json
import os
import smtplib
import threading
import time
import unittest

from harness import Daemon, delivery_config, message, wait_for
from sink import Sink


def submit(d, rcpt, seq=1):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("t")
        s.mail("news@example.com")
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return code, msg.decode()
        code, msg = s.data(message(seq, campaign="spring"))
        return code, msg.decode()


class Retention(unittest.TestCase):
    def start(self, retention=""):
        self.sink = Sink()
        hop = (self.sink.host, self.sink.port)
        self.d = Daemon(extra_config=delivery_config({"sink.test": hop, "gmail.com": hop}) + retention).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def stats(self):
        rows = self.d.ctl_json("stats", "--campaign", "spring")["by_campaign"]
        return {k: rows[0][k] for k in ("sent", "delivered", "deferred", "hard", "soft", "block")} if rows else {}

    def delivered(self):
        return sum(1 for e in self.d.events() if e["type"] == "delivered")

    def test_prune_racing_a_delivery_load_loses_nothing(self):
        self.start()
        self.assertEqual(submit(self.d, "reject-g@gmail.com")[0], 250)
        wait_for(lambda: self.d.ctl_json("recipient", "show", "reject-g@gmail.com")["status"] == "held", what="held")
        for i in range(20):
            submit(self.d, "u%d@sink.test" % i, i)
        wait_for(lambda: self.delivered() == 20, what="20 delivered")
        n = 200

        def load():
            with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:
                for i in range(n):
                    s.sendmail("news@example.com", ["load%d@sink.test" % i], message(i, campaign="spring"))
        t = threading.Thread(target=load)
        t.start()
        pruned = 0
        # Prune everything older than now, again and again, while the load runs.
        while t.is_alive() or pruned == 0:
            r = json.loads(self.d.ctl("state", "prune", "--older-than", "0s", "--json").stdout)
            self.assertEqual(set(r), {"pruned", "messages", "dsn_unparsed", "batches", "older_than_s"})
            self.assertEqual(r["messages"], 0, "messages of the last week are never pruned")
            pruned += r["pruned"]
        t.join()
        wait_for(lambda: self.delivered() == 20 + n, timeout=120, what="every message delivered")
        self.d.ctl("state", "prune", "--older-than", "0s")
        self.assertGreater(pruned, 0)
        self.assertEqual(self.stats(), {"sent": 21 + n, "delivered": 20 + n, "deferred": 0, "hard": 1, "soft": 0,
                                        "block": 0}, "stats count every message once, pruned or not")
        self.assertEqual(len(self.sink.messages), 20 + n)
        self.assertTrue(os.listdir(os.path.join(self.d.spool, "free")), "finished files are kept for reuse by default")
        self.assertEqual(self.d.ctl_json("recipient", "show", "reject-g@gmail.com")["status"], "held")
        code, msg = submit(self.d, "reject-g@gmail.com")
        self.assertEqual(code, 550, "a held address is still refused after its history went")
        self.assertIn("held", msg)

    def test_the_daemon_prunes_by_itself_and_unreadable_dsns_age_out(self):
        self.start('[retention]\ndecisions = "1s"\ndsn_unparsed = "1d"\n')
        for i in range(10):
            submit(self.d, "u%d@sink.test" % i, i)
        wait_for(lambda: self.delivered() == 10, what="10 delivered")
        before = self.stats()
        self.assertEqual(before["delivered"], 10)
        wait_for(lambda: "retention: " in self.d.log() and "folded into daily totals" in self.d.log(), timeout=60,
                 what="the daemon's own retention pass")
        def history_gone():
            # A delivered address has no status row: with its history gone there is no record at all.
            r = self.d.ctl("recipient", "show", "u1@sink.test", "--json", check=False)
            return r.returncode == 1 and "no record" in r.stderr or r.returncode == 0 and json.loads(r.stdout)["history"] == []
        wait_for(history_gone, timeout=60, what="history older than retention.decisions gone")
        self.assertEqual(self.stats(), before)
        # dsn-unparsed: a two-day-old file goes, a fresh one stays.
        folder = os.path.join(self.d.spool, "dsn-unparsed")
        os.makedirs(folder, exist_ok=True)
        old, new = os.path.join(folder, "old.eml"), os.path.join(folder, "new.eml")
        for p in (old, new):
            with open(p, "w") as f:
                f.write("Subject: x\n\nnot a report\n")
        two_days = time.time() - 2 * 86400
        os.utime(old, (two_days, two_days))
        r = json.loads(self.d.ctl("state", "prune", "--json").stdout)
        self.assertEqual(r["dsn_unparsed"], 1)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(new))

    def test_free_files_bounds_the_spools_reusable_files(self):
        self.start('[retention]\nfree_files = 0\n')
        for i in range(10):
            submit(self.d, "u%d@sink.test" % i, i)
        wait_for(lambda: self.delivered() == 10, what="10 delivered")
        free = os.path.join(self.d.spool, "free")
        wait_for(lambda: not os.path.isdir(free) or os.listdir(free) == [], what="free/ emptied by the reaper")


if __name__ == "__main__":
    unittest.main()
