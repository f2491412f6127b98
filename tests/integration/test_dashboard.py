"""The dashboard (GET /) in a real browser: headless Chromium driven over
CDP, against the real daemon with traffic to the scripted sink (deliveries,
550 5.1.1 hard bounces, 451 deferrals) and an ARF complaint. Each page loads
with no console error, exception or refused policy; the numbers it shows
are the API's; the charts have points with the series' values; pause and
resume clicked on the page change the campaign's state; the recipient
lookup and the classifier show what the API answers. A screenshot of each
page goes to build/test-artifacts/ (not committed). Outside the trusted
networks the page asks for a token and then works with it; the static
files carry their content types and a strict Content-Security-Policy, and
hold no inline script, handler or style."""
import html.parser
import json
import os
import re
import smtplib
import unittest

from harness import SOURCE, Daemon, delivery_config, message, wait_for
from sink import Sink
from test_http_api import call, curl, raw_exchange
from browser import Browser

ARTIFACTS = os.environ.get("RICOCHET_ARTIFACTS", os.path.join(os.path.abspath(SOURCE), "build", "test-artifacts"))
TOKEN = "dashboard-token-0123456789abcdef"


def submit(d, campaign, recipients):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=60) as s:
        s.ehlo("campaign.test")
        for i, rcpt in enumerate(recipients):
            s.sendmail("news@shop.example", [rcpt], message(i, campaign=campaign))


def same_hours(shown, api):
    """The points the page drew and the API's, compared hour by hour. The
    two requests may fall either side of an hour's start: then each has one
    hour the other has not. Returns how many hours both have (all equal)."""
    a, b = dict(shown), dict(api)
    assert len(a) == len(shown) and len(b) == len(api), "one point per hour"
    common = sorted(set(a) & set(b))
    assert len(common) >= min(len(a), len(b)) - 1, (sorted(a)[:2], sorted(b)[:2])
    for t in common:
        assert a[t] == b[t], (t, a[t], b[t])
    return len(common) + (1 if len(common) < len(a) else 0)


def num(text):
    """'1,204' -> 1204 (the page formats numbers for people)."""
    return int(text.replace(",", ""))


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = Sink()
        extra = delivery_config({"sink.test": (cls.sink.host, cls.sink.port)}, interval="1h")
        extra += '[breaker]\nscopes = ["campaign"]\n'
        cls.d = Daemon(extra_config=extra).start()
        spring = ["okspring-%02d@sink.test" % i for i in range(30)] + ["rejectspring-%d@sink.test" % i for i in range(3)]
        submit(cls.d, "spring", spring + ["tempfailspring-%d@sink.test" % i for i in range(2)])
        submit(cls.d, "autumn", ["okautumn-%02d@sink.test" % i for i in range(12)])

        def settled():
            s = call(cls.d, "GET", "/v1/stats").json
            c = {r["campaign"]: r for r in s["by_campaign"]}
            return (c.get("spring", {}).get("delivered") == 30 and c["spring"]["hard"] == 3 and
                    c["spring"]["deferred"] == 2 and c.get("autumn", {}).get("delivered") == 12)
        wait_for(settled, timeout=60, what="the traffic delivered, bounced and deferred")
        # (A finished message's file goes a little after its outcome is counted.)
        wait_for(lambda: call(cls.d, "GET", "/v1/queue/summary").json["total"]["messages"] == 2,
                 what="only the two deferred messages queued")
        # One complaint (ARF) about an autumn message, at the bounce listener.
        from test_dsn import ARF
        verp, rcpt = [(m, r) for m, r, _ in cls.sink.received() if r.startswith("okautumn-00")][0]
        with smtplib.SMTP("127.0.0.1", cls.d.bounce_port, timeout=30) as s:
            s.sendmail("", [verp], ARF.format(verp=verp, rcpt=rcpt).encode())
        wait_for(lambda: {r["campaign"]: r for r in call(cls.d, "GET", "/v1/stats").json["by_campaign"]}
                 ["autumn"]["complaints"] == 1, what="the complaint counted")
        cls.browser = Browser()

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.d.cleanup()
        cls.sink.close()

    def setUp(self):
        self.b = self.browser
        self.b.errors.clear()

    def tearDown(self):
        self.b.pump()
        self.assertEqual(self.b.errors, [], "the page logged errors")

    def url(self, view=""):
        return "http://127.0.0.1:%d/%s" % (self.d.http_port, view)

    def table(self, table_id, key):
        """The rows of a table as {row's data-KEY: {data-k: text}}."""
        return self.b.eval("""(() => { const out = {};
            for (const tr of document.querySelectorAll('#%s tbody tr')) {
              if (tr.dataset.%s === undefined) continue;
              const row = {}; for (const td of tr.querySelectorAll('td[data-k]')) row[td.dataset.k] = td.textContent;
              out[tr.dataset.%s] = row; }
            return out; })()""" % (table_id, key, key))

    def points(self, chart_id):
        """The chart's markers: [(series, time, value)]."""
        return self.b.eval("""[...document.querySelectorAll('#%s circle.pt')].map(c =>
            [c.dataset.series, c.dataset.t, Number(c.dataset.value)])""" % chart_id)

    def test_queue_page(self):
        self.b.open(self.url("#queue"))
        self.b.wait("document.getElementById('q-messages').textContent !== '–'", what="the queue's counts")
        api = call(self.d, "GET", "/v1/queue/summary").json
        self.assertEqual(num(self.b.eval("document.getElementById('q-messages').textContent")), api["total"]["messages"])
        self.assertEqual(api["total"]["messages"], 2, "the two deferred messages wait")
        rows = self.table("q-domains", "domain")
        self.assertEqual(num(rows["sink.test"]["total"]), 2)
        self.assertIn(api["oldest"]["id"], self.b.eval("document.getElementById('q-oldest').textContent"))
        self.b.screenshot(os.path.join(ARTIFACTS, "dashboard-queue.png"))

    def test_campaigns_page_numbers_charts_and_pause_resume(self):
        self.b.open(self.url("#campaigns"))
        self.b.wait("document.querySelector('#c-table tr[data-campaign=\"spring\"]')", what="the campaigns table")
        self.b.wait("document.querySelectorAll('#c-chart-counts circle.pt').length > 0", what="the chart")
        stats = {r["campaign"]: r for r in call(self.d, "GET", "/v1/stats?since=30d").json["by_campaign"]}
        rows = self.table("c-table", "campaign")
        for name in ("spring", "autumn"):
            for k in ("sent", "delivered", "hard", "soft", "block", "complaints"):
                self.assertEqual(num(rows[name][k]), stats[name][k], (name, k))
        self.assertEqual((stats["spring"]["hard"], stats["autumn"]["complaints"]), (3, 1))
        complaints = [(t, v) for s, t, v in self.points("c-chart-counts") if s == "complaints"]
        self.assertEqual(sum(v for _, v in complaints), 1)
        self.assertEqual(rows["spring"]["bounce_rate"], "%.2f%%" % (stats["spring"]["bounce_rate"] * 100))
        # The chart is the series: its "sent" markers are the API's points, and add up to what was sent.
        series = call(self.d, "GET", "/v1/stats/series?bucket=hour&since=48h").json["series"][0]["points"]
        sent = [(t, v) for s, t, v in self.points("c-chart-counts") if s == "sent"]
        self.assertEqual(same_hours(sent, [(p["t"], p["sent"]) for p in series]), 49)
        self.assertEqual(sum(v for _, v in sent), stats["spring"]["sent"] + stats["autumn"]["sent"])
        self.assertGreater(len([v for _, v in sent if v > 0]), 0)
        self.b.screenshot(os.path.join(ARTIFACTS, "dashboard-campaigns.png"))

        # Pause from the page: the API says paused, and so does the page.
        self.b.click('#c-table tr[data-campaign="spring"] button[data-action="pause"]')
        wait_for(lambda: call(self.d, "GET", "/v1/campaigns/spring").json["state"] == "paused", what="paused")
        self.b.wait("document.querySelector('#c-table tr[data-campaign=\"spring\"] button[data-action=\"resume\"]')",
                    what="the resume button")
        self.assertTrue(self.table("c-table", "campaign")["spring"]["state"].startswith("paused"))
        self.assertEqual([e["reason"] for e in self.d.events() if e["type"] == "campaign_paused"],
                         ["paused by an operator"])
        self.b.click('#c-table tr[data-campaign="spring"] button[data-action="resume"]')
        wait_for(lambda: call(self.d, "GET", "/v1/campaigns/spring").json["state"] == "ok", what="resumed")
        self.b.wait("document.querySelector('#c-table tr[data-campaign=\"spring\"] button[data-action=\"pause\"]')",
                    what="the pause button again")
        self.assertEqual([e["type"] for e in self.d.events() if e["type"].startswith("campaign_")],
                         ["campaign_paused", "campaign_resumed"])

    def test_destinations_page(self):
        self.b.open(self.url("#destinations"))
        self.b.wait("document.querySelector('#d-table tr[data-domain=\"sink.test\"]')", what="the domains table")
        self.b.wait("document.querySelectorAll('#d-chart-delivery circle.pt').length > 0", what="the chart")
        stats = {r["domain"]: r for r in call(self.d, "GET", "/v1/stats?since=30d").json["by_domain"]}["sink.test"]
        row = self.table("d-table", "domain")["sink.test"]
        self.assertEqual(num(row["sent"]), stats["sent"])
        self.assertEqual(num(row["delivered"]), stats["delivered"])
        self.assertEqual(num(row["failed"]), stats["hard"] + stats["soft"] + stats["block"] + stats["technical"])
        series = call(self.d, "GET", "/v1/stats/series?bucket=hour&since=48h&by=domain&top=8").json["series"]
        self.assertEqual([s["domain"] for s in series], ["sink.test"])
        shown = [(t, v) for s, t, v in self.points("d-chart-delivery") if s == "sink.test"]
        self.assertEqual(same_hours(shown, [(p["t"], p["delivery_rate"]) for p in series[0]["points"]]), 49)
        self.assertTrue(any(0 < v < 1 for _, v in shown), "some attempts failed or were deferred")
        # Reply categories: what the API counts, the 550 5.1.1s among them.
        replies = call(self.d, "GET", "/v1/stats/replies?since=48h&limit=30").json["replies"]
        hard = [r for r in replies if r["outcome"] == "bounced" and r["kind"] == "hard"]
        self.assertEqual(sum(r["count"] for r in hard), 3)
        counts = self.b.eval("[...document.querySelectorAll('#d-replies td[data-k=count]')].map(td => td.textContent)")
        self.assertEqual([num(c) for c in counts], [r["count"] for r in replies])
        self.b.screenshot(os.path.join(ARTIFACTS, "dashboard-destinations.png"))

    def test_recipient_lookup(self):
        self.b.open(self.url("#recipient"))
        self.b.type("#r-address", "rejectspring-1@sink.test")
        self.b.click("#r-form button")
        self.b.wait("!document.getElementById('r-result').hidden", what="the recipient")
        api = call(self.d, "GET", "/v1/recipients/rejectspring-1@sink.test?history=100").json
        self.assertEqual(self.b.eval("document.getElementById('r-status').textContent"), api["status"])
        rules = self.b.eval("[...document.querySelectorAll('#r-history td[data-k=rule]')].map(td => td.textContent)")
        self.assertEqual(rules, [h["rule"] for h in api["history"]])
        self.assertIn("bounced", self.b.eval("[...document.querySelectorAll('#r-history td[data-k=type]')]"
                                             ".map(td => td.textContent)"))
        self.b.screenshot(os.path.join(ARTIFACTS, "dashboard-recipient.png"))
        # An address never seen: the API's 404 text, not an error.
        self.b.type("#r-address", "nobody@nowhere.test")
        self.b.click("#r-form button")
        self.b.wait("!document.getElementById('r-none').hidden", what="the not-found text")
        self.assertIn("nobody@nowhere.test: no record", self.b.eval("document.getElementById('r-none').textContent"))
        # Chromium logs the API's 404 itself; that one error is expected, no other.
        self.b.pump()
        expected = [e for e in self.b.errors if "404" in e and "/v1/recipients/nobody%40nowhere.test" in e]
        self.assertEqual(len(expected), 1, self.b.errors)
        self.b.errors.remove(expected[0])

    def test_classifier(self):
        self.b.open(self.url("#classifier"))
        reply = "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org"
        self.b.type("#k-reply", reply)
        self.b.click("#k-form button")
        self.b.wait("!document.getElementById('k-result').hidden", what="the classification")
        api = call(self.d, "POST", "/v1/classify", {"reply": reply, "stage": "rcpt"}).json
        for k in ("kind", "category", "rule"):
            self.assertEqual(self.b.eval("document.getElementById('k-%s').textContent" % k), api[k], k)
        self.assertEqual(api["kind"], "block")
        self.b.screenshot(os.path.join(ARTIFACTS, "dashboard-classifier.png"))


class Files(unittest.TestCase):
    """The static files over curl: types, headers, no inline code."""

    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def test_types_headers_and_no_inline_code(self):
        index = curl(self.d, "GET", "/")
        self.assertEqual(index.status, 200)
        self.assertEqual(index.header("Content-Type"), "text/html; charset=utf-8")
        csp = index.header("Content-Security-Policy")
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(index.header("X-Frame-Options"), "DENY")
        self.assertEqual(index.header("X-Content-Type-Options"), "nosniff")

        class Scan(html.parser.HTMLParser):
            refs, inline = [], []

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                for k in a:
                    if k.startswith("on") or k == "style":
                        self.inline.append((tag, k))
                if tag == "script":
                    self.refs.append(a.get("src"))
                if tag == "style":
                    self.inline.append((tag, "style element"))
                if tag == "link" and a.get("href"):
                    self.refs.append(a["href"])

            def handle_data(self, data):
                if self.lasttag == "script" and data.strip():
                    self.inline.append(("script", data[:40]))
        scan = Scan()
        scan.feed(index.raw.decode())
        self.assertEqual(scan.inline, [])
        self.assertNotIn(None, scan.refs, "every script has a src")
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
        for ref in scan.refs:
            self.assertTrue(ref.startswith("/ui/"), ref)
            r = curl(self.d, "GET", ref)
            self.assertEqual((r.status, r.header("Content-Type")), (200, types[os.path.splitext(ref)[1]]), ref)
            self.assertEqual(r.header("Content-Security-Policy"), csp)
            with open(os.path.join(SOURCE, "http", "dashboard", ref[4:]), "rb") as f:
                self.assertEqual(r.raw, f.read(), "the file shipped is the file in the repository")
            if ref.endswith(".js"):  # text from the API is never parsed as HTML
                self.assertIsNone(re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(",
                                            r.raw.decode()), ref)
        head = curl(self.d, "HEAD", "/ui/app.js")
        self.assertEqual(head.status, 200)
        self.assertEqual(int(head.header("Content-Length")), os.path.getsize(os.path.join(SOURCE, "http", "dashboard", "app.js")))
        self.assertEqual(curl(self.d, "GET", "/ui/nothing.js").status, 404)
        self.assertTrue(raw_exchange(self.d.http_port, b"GET /ui/../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        .startswith(b"HTTP/1.1 400 "))
        self.assertEqual(curl(self.d, "POST", "/").status, 405)


class CrossOrigin(unittest.TestCase):
    """A web page elsewhere cannot use the operator's browser to change
    anything (CSRF): on loopback no token is needed, so a browser's
    cross-origin write is refused by its Origin and Sec-Fetch-Site headers.
    The dashboard's public paths take no body."""

    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def test_cross_origin_writes_are_refused(self):
        port = self.d.http_port
        for headers in (["Origin: https://evil.example"], ["Origin: null"],
                        ["Origin: http://127.0.0.1:%d" % (port + 1)], ["Sec-Fetch-Site: cross-site"],
                        ["Sec-Fetch-Site: same-site", "Origin: http://localhost:%d" % port]):
            r = curl(self.d, "POST", "/v1/campaigns/spring/pause", headers=headers)
            self.assertEqual(r.status, 403, headers)
            self.assertIn("cross-origin request refused", r.json["error"])
        self.assertEqual(call(self.d, "GET", "/v1/campaigns/spring").status, 404, "nothing was paused")
        self.assertFalse([e for e in self.d.events() if e["type"] == "campaign_paused"])
        # The page's own requests, and clients that are not browsers, go through.
        r = curl(self.d, "POST", "/v1/campaigns/spring/pause",
                 headers=["Origin: http://127.0.0.1:%d" % port, "Sec-Fetch-Site: same-origin"])
        self.assertEqual((r.status, r.json["state"]), (200, "paused"))
        self.assertEqual(curl(self.d, "POST", "/v1/campaigns/spring/resume").json["state"], "ok")
        # Reading cross-origin is harmless (the browser keeps the answer from the page).
        self.assertEqual(curl(self.d, "GET", "/v1/stats", headers=["Origin: https://evil.example"]).status, 200)

    def test_public_paths_take_no_body(self):
        r = curl(self.d, "GET", "/", raw=b"x" * 1000)
        self.assertEqual(r.status, 413)
        out = raw_exchange(self.d.http_port, b"GET /ui/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out[:100])


class Tokens(unittest.TestCase):
    """Outside the trusted networks: the page loads, its data needs the token."""

    def setUp(self):
        self.dir_token = None
        d = Daemon()
        tokens = os.path.join(d.dir, "tokens")
        with open(tokens, "w") as f:
            f.write("ops:%s\n" % TOKEN)
        with open(d.config_path) as f:
            text = f.read()
        text = text.replace("[http]\n", '[http]\ntrusted_networks = []\ntokens_file = "%s"\n' % tokens, 1)
        with open(d.config_path, "w") as f:
            f.write(text)
        self.d = d.start()
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail("news@shop.example", ["someone@nowhere.test"], message(1, campaign="c1"))

    def tearDown(self):
        self.d.cleanup()

    def test_the_page_asks_for_a_token_and_uses_it(self):
        self.assertEqual(curl(self.d, "GET", "/").status, 200)
        self.assertEqual(curl(self.d, "GET", "/ui/app.js").status, 200)
        self.assertEqual(curl(self.d, "GET", "/v1/queue/summary").status, 401)
        self.assertEqual(curl(self.d, "POST", "/v1/classify", {"reply": "550 x"}).status, 401)
        b = Browser()
        try:
            b.open("http://127.0.0.1:%d/#queue" % self.d.http_port)
            b.wait("!document.getElementById('token-form').hidden", what="the token form")
            self.assertEqual(b.eval("document.getElementById('q-messages').textContent"), "–", "no data without it")
            b.type("#token", "wrong-token-0123456789")
            b.click("#token-form button")
            b.wait("document.getElementById('token-error').textContent === 'invalid token'", what="refused")
            b.type("#token", TOKEN)
            b.click("#token-form button")
            b.wait("document.getElementById('q-messages').textContent === '1'", what="the queue with the token")
            self.assertTrue(b.eval("document.getElementById('token-form').hidden"))
            self.assertIn("(token ops)", self.d.log())
            # The browser's own 401s are logged as errors by Chromium; nothing else may be.
            b.pump()
            others = [e for e in b.errors if "401" not in e]
            self.assertEqual(others, [])
        finally:
            b.close()


class Off(unittest.TestCase):
    def test_dashboard_false_serves_nothing_and_needs_the_token(self):
        d = Daemon(http_extra="dashboard = false\ntrusted_networks = []\n").start()
        try:
            self.assertEqual(curl(d, "GET", "/").status, 401, "not public when off")
        finally:
            d.cleanup()
        d = Daemon(http_extra="dashboard = false\n").start()
        try:
            r = curl(d, "GET", "/")
            self.assertEqual(r.status, 404)
            self.assertIn("http.dashboard = false", r.json["error"])
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
