"""DANE (RFC 7672) against real peers: a DNSSEC-signed zone (dane.example,
keys and signatures made by ldns-keygen and ldns-signzone) served by nsd on
127.0.0.1; ricochetd validates with libunbound from the zone's own key as
its trust anchor. Receivers are sink.py on 127.0.0.x: with STARTTLS and a
certificate from a test CA (127.0.0.3), or without STARTTLS (127.0.0.4).
Each MX host of the zone is a case: a DANE-EE record that matches, one that
does not, a DANE-TA record for the CA, TLSA for a host without STARTTLS, a
signed host without TLSA (secure denial), and a record whose signature no
longer matches (bogus)."""
import email
import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import Daemon, delivery_config, wait_for
from pki import TestCa, spki_sha256
from sink import Sink
from test_dns import common_port, submit, events

ZONE = "dane.example"


def free_port_both():
    """A port free for both UDP and TCP on 127.0.0.1 (nsd listens on both)."""
    for _ in range(50):
        u, t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


@unittest.skipUnless(shutil.which("nsd") and shutil.which("ldns-signzone"), "nsd and ldnsutils (scripts/deps.sh) needed")
class Dane(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ricochet-dane-")
        ca = TestCa(cls.tmp)
        names = ["mx.%s" % ZONE] + ["mx.%s.%s" % (h, ZONE) for h in ("bad", "ta", "bogus")]
        mx_pem, mx_key = ca.leaf("mx", names)
        # The chain the receiver sends includes the CA: a DANE-TA(2) digest
        # can only match a certificate the server presents (RFC 7671 5.2.2).
        chain = os.path.join(cls.tmp, "mx-chain.pem")
        with open(chain, "w") as out, open(mx_pem) as leaf, open(ca.pem) as root:
            out.write(leaf.read() + root.read())
        cls.port = common_port(["127.0.0.3", "127.0.0.4"])
        cls.tls_sink = Sink(host="127.0.0.3", port=cls.port, certfile=chain, keyfile=mx_key)
        cls.plain_sink = Sink(host="127.0.0.4", port=cls.port)
        ee = cls.ee = spki_sha256(mx_pem)
        ta = spki_sha256(ca.pem)
        tlsa = "_%d._tcp" % cls.port
        rr = [
            "$ORIGIN %s." % ZONE, "$TTL 60",
            "@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60" % (ZONE, ZONE),
            "@ IN NS ns.%s." % ZONE, "ns IN A 127.0.0.1",
            # good.dane.example: DANE-EE(3) SPKI SHA-256 of the receiver's key.
            "good IN MX 10 mx.%s." % ZONE, "mx IN A 127.0.0.3", "%s.mx IN TLSA 3 1 1 %s" % (tlsa, ee),
            # bad: a DANE-EE record for some other key.
            "bad IN MX 10 mx.bad.%s." % ZONE, "mx.bad IN A 127.0.0.3", "%s.mx.bad IN TLSA 3 1 1 %s" % (tlsa, "ab" * 32),
            # ta: DANE-TA(2) for the CA that signed the receiver's certificate (name checked).
            "ta IN MX 10 mx.ta.%s." % ZONE, "mx.ta IN A 127.0.0.3", "%s.mx.ta IN TLSA 2 1 1 %s" % (tlsa, ta),
            # notls: TLSA records, but the host offers no STARTTLS.
            "notls IN MX 10 mx.notls.%s." % ZONE, "mx.notls IN A 127.0.0.4", "%s.mx.notls IN TLSA 3 1 1 %s" % (tlsa, ee),
            # nodane: signed, no TLSA (proven absent): delivered as without DANE.
            "nodane IN MX 10 mx.nodane.%s." % ZONE, "mx.nodane IN A 127.0.0.4",
            # pkix: only a PKIX-EE(1) record, unusable for SMTP (RFC 7672
            # 3.1.3): TLS is required, the certificate not checked against it.
            "pkix IN MX 10 mx.pkix.%s." % ZONE, "mx.pkix IN A 127.0.0.3", "%s.mx.pkix IN TLSA 1 1 1 %s" % (tlsa, "cd" * 32),
            # TLS-RPT for good: reports go to rpt (a plain receiver, no DANE).
            '_smtp._tls.good IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@rpt.%s"' % ZONE,
            "rpt IN MX 10 mx.rpt.%s." % ZONE, "mx.rpt IN A 127.0.0.4",
            # bogus: its address record is altered after signing.
            "bogus IN MX 10 mx.bogus.%s." % ZONE, "mx.bogus IN A 127.0.0.9", "%s.mx.bogus IN TLSA 3 1 1 %s" % (tlsa, ee),
        ]
        zone = os.path.join(cls.tmp, "zone")
        with open(zone, "w") as f:
            f.write("\n".join(rr) + "\n")
        ksk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", ZONE], cwd=cls.tmp, check=True,
                             capture_output=True, text=True).stdout.strip()
        zsk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", ZONE], cwd=cls.tmp, check=True,
                             capture_output=True, text=True).stdout.strip()
        subprocess.run(["ldns-signzone", "-f", zone + ".signed", zone, ksk, zsk], cwd=cls.tmp, check=True,
                       capture_output=True)
        with open(zone + ".signed") as f:
            signed = f.read()
        # The signature of mx.bogus's A record no longer matches it.
        signed = signed.replace("mx.bogus.%s.\t60\tIN\tA\t127.0.0.9" % ZONE, "mx.bogus.%s.\t60\tIN\tA\t127.0.0.3" % ZONE)
        assert "127.0.0.9" not in signed, "the bogus record was not altered"
        with open(zone + ".signed", "w") as f:
            f.write(signed)
        cls.anchor = os.path.join(cls.tmp, ksk + ".key")
        for attempt in range(5):
            cls.dns_port = free_port_both()
            conf = os.path.join(cls.tmp, "nsd.conf")
            with open(conf, "w") as f:
                f.write("server:\n  ip-address: 127.0.0.1\n  port: %d\n  zonesdir: %s\n  pidfile: %s/nsd.pid\n"
                        "  database: \"\"\n  zonelistfile: %s/zone.list\n  xfrdfile: %s/xfrd.state\n  xfrdir: %s\n"
                        "  username: \"\"\n  chroot: \"\"\n  logfile: %s/nsd.log\nremote-control:\n  control-enable: no\n"
                        "zone:\n  name: %s\n  zonefile: %s\n" % ((cls.dns_port,) + (cls.tmp,) * 6 + (ZONE, zone + ".signed")))
            cls.nsd = subprocess.Popen(["nsd", "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(cls.nsd_ready, what="nsd")
                break
            except RuntimeError:
                cls.nsd.kill()
                cls.nsd.wait()
                if attempt == 4:
                    raise
        extra = 'dane = "on"\ndnssec_trust_anchor = "%s"\nmta_sts = "off"\n' % cls.anchor
        cls.d = Daemon(extra_config=delivery_config({}, dns="127.0.0.1:%d" % cls.dns_port, port=cls.port,
                                                    extra=extra)).start()

    @classmethod
    def nsd_ready(cls):
        if cls.nsd.poll() is not None:
            raise RuntimeError("nsd exited: %s" % cls.nsd.stderr.read().decode())
        try:
            with socket.create_connection(("127.0.0.1", cls.dns_port), timeout=0.2):
                return True
        except OSError:
            return False

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.nsd.terminate()
        cls.nsd.wait()
        cls.tls_sink.close()
        cls.plain_sink.close()
        subprocess.run(["rm", "-rf", cls.tmp])

    def last(self, domain, mx):
        return self.d.ctl_json("tls", "show", domain)["tls_rpt"]["last_per_mx"][mx]

    def test_dane_ee_record_that_matches_delivers_over_tls(self):
        before = self.tls_sink.tls_sessions
        submit(self.d, "ok-good@good.%s" % ZONE)
        wait_for(lambda: events(self.d, "delivered", "ok-good@good.%s" % ZONE), what="delivered")
        self.assertGreater(self.tls_sink.tls_sessions, before)
        shown = self.d.ctl_json("tls", "show", "good." + ZONE)
        self.assertTrue(shown["dane"])
        last = shown["tls_rpt"]["last_per_mx"]["mx." + ZONE]
        self.assertTrue(last["ok"], last)
        self.assertEqual((last["policy_type"], last["tlsa"]), ("tlsa", ["3 1 1 " + self.ee.upper()]))
        self.assertIn("TLSA 3 1 1 " + self.ee.upper(), self.d.ctl("tls", "show", "good." + ZONE).stdout)
        # The day's TLS-RPT report for the domain names the TLSA policy.
        out = self.d.ctl_json("tls", "report", "--day", "today")
        self.assertIn("good." + ZONE, [q["domain"] for q in out["queued"]], out)
        got = wait_for(lambda: self.plain_sink.received("tlsrpt@"), what="the report")
        msg = email.message_from_bytes(got[0][2] if isinstance(got[0][2], bytes) else got[0][2].encode())
        part = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"][0]
        pol = json.loads(gzip.decompress(part.get_payload(decode=True)))["policies"]
        tlsa = [p for p in pol if p["policy"]["policy-type"] == "tlsa"]
        self.assertEqual(tlsa[0]["policy"]["policy-string"], ["3 1 1 " + self.ee.upper()])
        self.assertGreaterEqual(tlsa[0]["summary"]["total-successful-session-count"], 1)

    def test_dane_ee_record_that_does_not_match_defers(self):
        submit(self.d, "ok-bad@bad.%s" % ZONE)
        ev = wait_for(lambda: events(self.d, "deferred", "ok-bad@bad.%s" % ZONE), what="deferred")[0]
        self.assertEqual((ev["category"], ev["stage"]), ("tls-failure", "tls"))
        self.assertIn("not accepted", ev["reply"])
        self.assertEqual(self.tls_sink.received("ok-bad"), [])
        self.assertEqual(self.last("bad." + ZONE, "mx.bad." + ZONE)["result_type"], "tlsa-invalid")

    def test_dane_ta_record_for_the_ca_delivers(self):
        submit(self.d, "ok-ta@ta.%s" % ZONE)
        wait_for(lambda: events(self.d, "delivered", "ok-ta@ta.%s" % ZONE), what="delivered")
        self.assertEqual(len(self.tls_sink.received("ok-ta")), 1)

    def test_only_pkix_records_require_tls_without_matching_them(self):
        before = self.tls_sink.tls_sessions
        submit(self.d, "ok-pk@pkix.%s" % ZONE)
        wait_for(lambda: events(self.d, "delivered", "ok-pk@pkix.%s" % ZONE), what="delivered")
        self.assertGreater(self.tls_sink.tls_sessions, before)
        last = self.last("pkix." + ZONE, "mx.pkix." + ZONE)
        self.assertEqual((last["policy_type"], last["tlsa"]), ("tlsa", ["1 1 1 " + "CD" * 32]))

    def test_tlsa_but_no_starttls_is_never_sent_in_clear(self):
        submit(self.d, "ok-nt@notls.%s" % ZONE)
        ev = wait_for(lambda: events(self.d, "deferred", "ok-nt@notls.%s" % ZONE), what="deferred")[0]
        self.assertEqual((ev["category"], ev["stage"]), ("tls-failure", "starttls"))
        self.assertIn("DANE TLSA records", ev["reply"])
        self.assertEqual(self.plain_sink.received("ok-nt"), [])

    def test_a_signed_host_without_tlsa_delivers_as_before(self):
        submit(self.d, "ok-nd@nodane.%s" % ZONE)
        wait_for(lambda: events(self.d, "delivered", "ok-nd@nodane.%s" % ZONE), what="delivered")
        self.assertEqual(len(self.plain_sink.received("ok-nd")), 1)

    def test_a_bogus_address_record_makes_the_host_unusable(self):
        submit(self.d, "ok-bg@bogus.%s" % ZONE)
        ev = wait_for(lambda: events(self.d, "deferred", "ok-bg@bogus.%s" % ZONE), what="deferred")[0]
        self.assertEqual(ev["category"], "tls-failure")
        self.assertIn("DNSSEC validation", ev["reply"])
        self.assertEqual(self.tls_sink.received("ok-bg"), [])
        self.assertEqual(self.last("bogus." + ZONE, "mx.bogus." + ZONE)["result_type"], "dnssec-invalid")


if __name__ == "__main__":
    unittest.main()
