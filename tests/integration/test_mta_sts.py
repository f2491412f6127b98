"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) against real peers: dnsmasq
serves the test zones (MX, A and the _mta-sts / _smtp._tls TXT records) on
127.0.0.1; a Python HTTPS server with a test CA serves the policies at
mta-sts.DOMAIN; receivers are sink.py on 127.0.0.x, with STARTTLS and a
certificate from the same CA (127.0.0.3) or without STARTTLS (127.0.0.4);
TLS-RPT reports are delivered to a sink (127.0.0.5) and read back as RFC 8460
JSON."""
import email
import gzip
import http.server
import json
import os
import ssl
import subprocess
import tempfile
import threading
import unittest

from harness import Daemon, delivery_config, wait_for
from pki import TestCa
from sink import Sink
from test_dns import common_port, dnsmasq_answers, free_udp_port, submit, events

DOMAINS = ["enforce", "plain", "testing", "mismatch", "wrongcert", "redirect", "badweb", "rotate", "gone", "huge", "html"]


def make_pki(d):
    """A test CA, and certificates it signs: one for the TLS receiver, one
    for the policy server (every mta-sts.X.test but badweb's)."""
    ca = TestCa(d)
    mx = ca.leaf("mx", ["mx.enforce.test", "mx.mismatch.test", "mx.testing-tls.test", "mx.rotate.test", "mx.gone.test"])
    web = ca.leaf("web", ["mta-sts.%s.test" % x for x in DOMAINS + ["reports"] if x != "badweb"])
    return ca.pem, mx, web


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join("mx: %s\r\n" % m for m in mx), max_age)


class PolicyServer:
    """HTTPS on 127.0.0.1: /.well-known/mta-sts.txt per Host, from a table
    the test may change; counts the fetches per host."""

    def __init__(self, certfile, keyfile):
        self.pages, self.fetches, self.lock = {}, {}, threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                with server.lock:
                    server.fetches[host] = server.fetches.get(host, 0) + 1
                    status, body, headers = server.pages.get(host, (404, "not here", {}))
                if self.path != "/.well-known/mta-sts.txt":
                    status, body, headers = 404, "wrong path", {}
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.get("Content-Type", "text/plain"))
                for k, v in headers.items():
                    if k != "Content-Type":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certfile, keyfile)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, domain, status, body, **headers):
        with self.lock:
            self.pages["mta-sts." + domain] = (status, body, headers)

    def count(self, domain):
        with self.lock:
            return self.fetches.get("mta-sts." + domain, 0)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class MtaSts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ricochet-sts-")
        cls.ca, (mx_pem, mx_key), (web_pem, web_key) = make_pki(cls.tmp)
        cls.port = common_port(["127.0.0.3", "127.0.0.4", "127.0.0.5"])
        cls.tls_sink = Sink(host="127.0.0.3", port=cls.port, certfile=mx_pem, keyfile=mx_key)
        cls.plain_sink = Sink(host="127.0.0.4", port=cls.port)
        cls.report_sink = Sink(host="127.0.0.5", port=cls.port)
        cls.web = PolicyServer(web_pem, web_key)
        w = cls.web
        w.serve("enforce.test", 200, policy("enforce", "mx.enforce.test"))
        w.serve("plain.test", 200, policy("enforce", "mx.plain.test"))
        w.serve("testing.test", 200, policy("testing", "mx.testing.test"))
        w.serve("mismatch.test", 200, policy("enforce", "*.elsewhere.test"))
        w.serve("wrongcert.test", 200, policy("enforce", "*.wrongcert.test"))
        w.serve("redirect.test", 301, "", Location="https://mta-sts.enforce.test/.well-known/mta-sts.txt")
        w.serve("badweb.test", 200, policy("enforce", "mx.badweb.test"))
        w.serve("rotate.test", 200, policy("testing", "mx.rotate.test"))
        w.serve("gone.test", 200, policy("enforce", "mx.gone.test"))
        w.serve("huge.test", 200, policy("enforce", "mx.huge.test") + "x-padding: " + "x" * 70000 + "\r\n")
        w.serve("html.test", 200, policy("enforce", "mx.html.test"), **{"Content-Type": "text/html"})
        # The reports' own domain enforces TLS its MX does not offer: RFC
        # 8460 3 says reports go all the same.
        w.serve("reports.test", 200, policy("enforce", "mx.reports.test"))
        cls.txt = {x: "v=STSv1; id=1" for x in DOMAINS}
        cls.start_dns()
        extra = 'tls_ca_file = "%s"\nmta_sts_port = %d\n' % (cls.ca, cls.web.port)
        cls.d = Daemon(extra_config=delivery_config({}, dns="127.0.0.1:%d" % cls.dns_port, port=cls.port,
                                                    extra=extra)).start()

    @classmethod
    def start_dns(cls):
        args = []
        for x in DOMAINS:
            # MX hosts: TLS-capable on 127.0.0.3, plain text on 127.0.0.4.
            ip = "127.0.0.4" if x in ("plain", "testing", "badweb") else "127.0.0.3"
            args += ["--mx-host=%s.test,mx.%s.test,10" % (x, x), "--host-record=mx.%s.test,%s" % (x, ip),
                     "--host-record=mta-sts.%s.test,127.0.0.1" % x]
            if cls.txt.get(x):
                args += ["--txt-record=_mta-sts.%s.test,%s" % (x, cls.txt[x])]
        args += ["--txt-record=_smtp._tls.enforce.test,v=TLSRPTv1; rua=mailto:tlsrpt@reports.test",
                 "--txt-record=_smtp._tls.testing.test,v=TLSRPTv1;rua=mailto:tlsrpt@reports.test",
                 "--mx-host=reports.test,mx.reports.test,10", "--host-record=mx.reports.test,127.0.0.5",
                 "--txt-record=_mta-sts.reports.test,v=STSv1; id=1", "--host-record=mta-sts.reports.test,127.0.0.1"]
        for attempt in range(5):
            if not getattr(cls, "dns_port", None) or attempt:
                cls.dns_port = free_udp_port()
            cls.dnsmasq = subprocess.Popen([
                "dnsmasq", "--keep-in-foreground", "--port=%d" % cls.dns_port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=" + os.path.join(cls.tmp, "pid"), "--user=root", "--local=/test/", "--local-ttl=1",
            ] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(cls.dns_ready, what="dnsmasq")
                return
            except RuntimeError as e:
                if attempt == 4 or "Address already in use" not in str(e):
                    raise

    @classmethod
    def dns_ready(cls):
        return dnsmasq_answers(cls.dnsmasq, cls.dns_port, "mx.enforce.test")

    @classmethod
    def restart_dns(cls):
        """The same port with new records (TXT ids changed)."""
        cls.dnsmasq.terminate()
        cls.dnsmasq.wait()
        cls.start_dns()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.dnsmasq.terminate()
        cls.dnsmasq.wait()
        for s in (cls.tls_sink, cls.plain_sink, cls.report_sink):
            s.close()
        cls.web.close()
        subprocess.run(["rm", "-rf", cls.tmp])

    def show(self, domain):
        return self.d.ctl_json("tls", "show", domain)

    def test_enforce_delivers_over_verified_tls_and_caches_the_policy(self):
        before = self.tls_sink.tls_sessions
        submit(self.d, "ok-enf1@enforce.test")
        wait_for(lambda: events(self.d, "delivered", "ok-enf1@enforce.test"), what="delivered")
        self.assertGreater(self.tls_sink.tls_sessions, before, "delivered inside TLS")
        submit(self.d, "ok-enf2@enforce.test")
        wait_for(lambda: events(self.d, "delivered", "ok-enf2@enforce.test"), what="second delivered")
        self.assertEqual(self.web.count("enforce.test"), 1, "the policy is fetched once for its id")
        shown = self.show("enforce.test")
        p = shown["mta_sts"]["policy"]
        self.assertEqual((p["id"], p["mode"], p["mx"], p["in_force"]), ("1", "enforce", ["mx.enforce.test"], True))
        last = shown["tls_rpt"]["last_per_mx"]["mx.enforce.test"]
        self.assertEqual((last["ok"], last["ip"]), (True, "127.0.0.3"))
        self.assertGreaterEqual(shown["tls_rpt"]["successful_sessions"], 1)
        with open(os.path.join(self.d.spool, "mta-sts", "enforce.test.json")) as f:
            self.assertEqual(json.load(f)["id"], "1")
        text = self.d.ctl("tls", "show", "enforce.test").stdout
        self.assertIn("mode enforce", text)
        # dnsmasq here passes no DNSSEC (and the root cannot be reached):
        # DANE stays out of force rather than defer every domain.
        self.assertFalse(shown["dane"])
        self.assertIn("DNSSEC", shown["dane_status"])

    def test_enforce_without_starttls_defers_and_sends_nothing(self):
        submit(self.d, "ok-pl@plain.test")
        ev = wait_for(lambda: events(self.d, "deferred", "ok-pl@plain.test"), what="deferred")[0]
        self.assertEqual((ev["category"], ev["stage"]), ("tls-failure", "starttls"))
        self.assertIn("MTA-STS", ev["reply"])
        self.assertEqual(self.plain_sink.received("ok-pl"), [], "nothing in plain text")
        last = self.show("plain.test")["tls_rpt"]["last_per_mx"]["mx.plain.test"]
        self.assertEqual((last["ok"], last["result_type"]), (False, "starttls-not-supported"))

    def test_testing_mode_delivers_and_reports_the_failure(self):
        submit(self.d, "ok-tst@testing.test")
        wait_for(lambda: events(self.d, "delivered", "ok-tst@testing.test"), what="delivered")
        self.assertEqual(len(self.plain_sink.received("ok-tst")), 1)
        last = self.show("testing.test")["tls_rpt"]["last_per_mx"]["mx.testing.test"]
        self.assertEqual(last["result_type"], "starttls-not-supported")

    def test_mx_not_in_the_policy_is_not_used(self):
        before = len(self.tls_sink.received("ok-mm"))
        submit(self.d, "ok-mm@mismatch.test")
        ev = wait_for(lambda: events(self.d, "deferred", "ok-mm@mismatch.test"), what="deferred")[0]
        self.assertEqual((ev["category"], ev["stage"]), ("tls-failure", "tls"))
        self.assertIn("MTA-STS policy 1 of mismatch.test allows only mx *.elsewhere.test, not mx.mismatch.test", ev["reply"])
        self.assertEqual(len(self.tls_sink.received("ok-mm")), before)

    def test_a_certificate_for_another_name_is_refused(self):
        submit(self.d, "ok-wc@wrongcert.test")
        ev = wait_for(lambda: events(self.d, "deferred", "ok-wc@wrongcert.test"), what="deferred")[0]
        self.assertEqual((ev["category"], ev["stage"]), ("tls-failure", "tls"))
        self.assertIn("certificate", ev["reply"])
        self.assertEqual(self.tls_sink.received("ok-wc"), [])
        last = self.show("wrongcert.test")["tls_rpt"]["last_per_mx"]["mx.wrongcert.test"]
        self.assertEqual(last["result_type"], "certificate-host-mismatch")

    def test_a_redirect_is_not_followed_and_mail_goes_as_without_policy(self):
        submit(self.d, "ok-rd@redirect.test")
        wait_for(lambda: events(self.d, "delivered", "ok-rd@redirect.test"), what="delivered")
        shown = self.show("redirect.test")["mta_sts"]
        self.assertIsNone(shown["policy"])
        self.assertEqual(shown["last_fetch_failure"]["type"], "sts-policy-fetch-error")
        self.assertIn("redirect", shown["last_fetch_failure"]["error"])
        self.assertEqual(self.web.count("enforce.test"), 0, "the redirect's target was not fetched (tests run in name order)")

    def test_a_policy_over_64_kib_or_not_text_plain_is_not_used(self):
        for dom, rcpt, kind, part in (("huge.test", "ok-huge@huge.test", "sts-policy-fetch-error", "64 KiB"),
                                      ("html.test", "ok-html@html.test", "sts-policy-invalid", "text/html")):
            submit(self.d, rcpt)
            wait_for(lambda: events(self.d, "delivered", rcpt), what="delivered as without a policy")
            shown = self.show(dom)["mta_sts"]
            self.assertIsNone(shown["policy"], dom)
            self.assertEqual(shown["last_fetch_failure"]["type"], kind)
            self.assertIn(part, shown["last_fetch_failure"]["error"])

    def test_a_policy_server_with_an_untrusted_name_is_webpki_invalid(self):
        submit(self.d, "ok-bw@badweb.test")
        wait_for(lambda: events(self.d, "delivered", "ok-bw@badweb.test"), what="delivered")
        shown = self.show("badweb.test")["mta_sts"]
        self.assertIsNone(shown["policy"])
        self.assertEqual(shown["last_fetch_failure"]["type"], "sts-webpki-invalid")

    def test_tls_rpt_report_reaches_the_rua_as_rfc8460_json(self):
        submit(self.d, "ok-rpt@enforce.test")
        wait_for(lambda: events(self.d, "delivered", "ok-rpt@enforce.test"), what="delivered")
        submit(self.d, "ok-rpt@testing.test")
        wait_for(lambda: events(self.d, "delivered", "ok-rpt@testing.test"), what="delivered")
        out = self.d.ctl_json("tls", "report", "--day", "today")
        queued = {q["domain"] for q in out["queued"]}
        self.assertTrue({"enforce.test", "testing.test"} <= queued, out)
        skipped = {s["domain"]: s["why"] for s in out["skipped"]}
        self.assertIn("no TLSRPT record", skipped.get("plain.test", ""))
        reports = wait_for(lambda: len(self.report_sink.received("tlsrpt@")) >= 2 and self.report_sink.received("tlsrpt@"),
                           what="two reports delivered")
        by_domain = {}
        for mail_from, rcpt, data in reports:
            self.assertEqual(mail_from, "", "reports come from the null sender")
            msg = email.message_from_bytes(data if isinstance(data, bytes) else data.encode())
            self.assertEqual(msg.get_content_type(), "multipart/report")
            self.assertEqual(msg.get_param("report-type"), "tlsrpt")
            part = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"][0]
            report = json.loads(gzip.decompress(part.get_payload(decode=True)))
            by_domain[msg["TLS-Report-Domain"]] = (msg, report)
        msg, enf = by_domain["enforce.test"]
        self.assertEqual(msg["TLS-Report-Submitter"], "ricochet.test")
        self.assertTrue(msg["Subject"].startswith("Report Domain: enforce.test Submitter: ricochet.test Report-ID: <"))
        pol = enf["policies"][0]
        self.assertEqual(pol["policy"]["policy-type"], "sts")
        self.assertEqual(pol["policy"]["policy-domain"], "enforce.test")
        self.assertIn("mode: enforce", pol["policy"]["policy-string"])
        self.assertGreaterEqual(pol["summary"]["total-successful-session-count"], 1)
        for key in ("organization-name", "date-range", "contact-info", "report-id"):
            self.assertIn(key, enf)
        _, tst = by_domain["testing.test"]
        fails = tst["policies"][0]["failure-details"]
        self.assertTrue(any(f["result-type"] == "starttls-not-supported" and f["receiving-mx-hostname"] == "mx.testing.test"
                            and f["receiving-ip"] == "127.0.0.4" for f in fails), fails)
        self.assertGreaterEqual(tst["policies"][0]["summary"]["total-failure-session-count"], 1)
        # reports.test enforces TLS its MX lacks: the reports went through
        # (above) without TLS and are not counted; other mail there waits.
        self.assertEqual(self.show("reports.test")["tls_rpt"]["last_per_mx"], {})
        submit(self.d, "someone@reports.test")
        ev = wait_for(lambda: events(self.d, "deferred", "someone@reports.test"), what="deferred")[0]
        self.assertEqual(ev["category"], "tls-failure")
        # No [[dkim]] key here: the daemon said at start that reports go unsigned.
        self.assertIn("TLS-RPT: no [[dkim]] key signs mail from postmaster@ricochet.test", self.d.log())
        # Reported once: a second request for the day queues nothing for them.
        again = self.d.ctl_json("tls", "report", "--day", "today")
        self.assertFalse({"enforce.test", "testing.test"} & {q["domain"] for q in again["queued"]}, again)

    def test_zz_a_new_id_is_fetched_and_the_cache_outlives_a_restart(self):
        # rotate.test: testing under id 1; the receiver publishes enforce under id 2.
        submit(self.d, "ok-rot1@rotate.test")
        wait_for(lambda: events(self.d, "delivered", "ok-rot1@rotate.test"), what="delivered")
        self.assertEqual(self.show("rotate.test")["mta_sts"]["policy"]["mode"], "testing")
        # gone.test: enforce, cached; then its TXT record and its policy server vanish.
        submit(self.d, "ok-gone1@gone.test")
        wait_for(lambda: events(self.d, "delivered", "ok-gone1@gone.test"), what="delivered")
        self.web.serve("rotate.test", 200, policy("enforce", "mx.rotate.test"))
        self.web.serve("gone.test", 500, "down")
        self.__class__.txt["rotate"] = "v=STSv1; id=2"
        self.__class__.txt["gone"] = None
        self.d.stop()
        self.restart_dns()
        self.d.start()
        submit(self.d, "ok-rot2@rotate.test")
        wait_for(lambda: events(self.d, "delivered", "ok-rot2@rotate.test"), what="delivered under id 2")
        p = self.show("rotate.test")["mta_sts"]["policy"]
        self.assertEqual((p["id"], p["mode"]), ("2", "enforce"))
        self.assertEqual(self.web.count("rotate.test"), 2)
        # No TXT record and no server: the cached enforce policy still holds,
        # from the file (RFC 8461 5.1), and nothing is fetched.
        submit(self.d, "ok-gone2@gone.test")
        wait_for(lambda: events(self.d, "delivered", "ok-gone2@gone.test"), what="delivered")
        self.assertEqual(self.web.count("gone.test"), 1)
        self.assertEqual(self.show("gone.test")["mta_sts"]["policy"]["mode"], "enforce")
        self.assertIn("mx.gone.test", self.show("gone.test")["tls_rpt"]["last_per_mx"])
        self.assertTrue(self.show("gone.test")["tls_rpt"]["last_per_mx"]["mx.gone.test"]["ok"])


if __name__ == "__main__":
    unittest.main()
