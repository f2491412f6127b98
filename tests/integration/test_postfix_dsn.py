"""End to end with no test-written DSN: Ricochet delivers to a real Postfix
on loopback, which accepts the message (so Ricochet logs `delivered`) and
relays it to the scripted receiver, which answers 550 5.1.1; Postfix itself
then sends an RFC 3464 DSN to the message's VERP return path, routed to
Ricochet's bounce listener, and the recipient's status changes."""
import json
import smtplib
import unittest

from harness import Daemon, delivery_config, message, wait_for
from sink import Sink
import postfix_instance


@unittest.skipUnless(postfix_instance.available(), "needs root and Debian's postfix")
class PostfixBounce(unittest.TestCase):
    def test_postfix_dsn_reaches_the_bounce_engine(self):
        sink = Sink()  # Postfix's next hop: "reject..." recipients get 550 5.1.1
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({}))  # ports known before Postfix is configured
        pf = postfix_instance.Postfix(
            relay_domains=["pf.test"],
            transport={"pf.test": "smtp:[127.0.0.1]:%d" % sink.port,
                       "bnc.test": "smtp:[127.0.0.1]:%d" % d.bounce_port})
        self.addCleanup(pf.stop)
        with open(d.config_path) as f:
            cfg = f.read()
        cfg = cfg.replace("[retry]", '[[delivery.route]]\ndomain = "pf.test"\nhost = "127.0.0.1:%d"\n[retry]' % pf.port)
        with open(d.config_path, "w") as f:
            f.write(cfg)
        pf.start()
        d.start()
        self.addCleanup(d.cleanup)

        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            s.ehlo("t")
            s.sendmail("news@example.com", ["reject-n@pf.test"], message(1, campaign="pf"))
        events = lambda kind: [e for e in d.events() if e["type"] == kind and e.get("recipient") == "reject-n@pf.test"]
        wait_for(lambda: events("delivered"), what="Postfix accepting the message")
        ev = wait_for(lambda: events("bounced"), timeout=60, what="Postfix's DSN at the bounce listener")[0]
        self.assertEqual((ev["sync"], ev["enhanced"], ev["kind"], ev["category"], ev["campaign"]),
                         (False, "5.1.1", "hard", "user-unknown", "pf"))
        st = json.loads(d.ctl("recipient", "show", "reject-n@pf.test", "--json").stdout)
        self.assertEqual((st["status"], st["bounce_count"]), ("bounced", 1))
        self.assertIn("status=bounced", pf.log(), "Postfix bounced it itself")


if __name__ == "__main__":
    unittest.main()
