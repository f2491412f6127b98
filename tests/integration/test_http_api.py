"""The HTTP API against the real daemon, with real clients (curl and Python's
urllib and http.client) on loopback: every endpoint and its errors, the
listener's checks (Host, bearer tokens, body/header limits, time-outs,
connection limits), /metrics read with the Prometheus parser and checked
against what was sent, and 10,000 messages injected over HTTP and delivered
to a real SMTP receiver."""
import http.client
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from harness import Daemon, delivery_config, free_port, wait_for, wait_listening
from sink import Sink

from harness import text_string_to_metric_families

CURL = shutil.which("curl")
if CURL is None:
    raise RuntimeError("curl is not installed (scripts/deps.sh installs it): these tests use it as a real client")

QUEUE_ID = re.compile(r"^[0-9A-Z]{13}$")
HTTP_ID = re.compile(rb"with HTTPA? id ([0-9A-Z]{13})")


# --- clients ---------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.raw = status, headers, body

    @property
    def json(self):
        return json.loads(self.raw)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.raw[:300])


def call(d, method, path, body=None, headers=None, raw=None, source=None):
    """urllib: one request (a JSON body from `body`, or bytes from `raw`)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port, path), data=data, method=method, headers=h)
    opener = urllib.request.build_opener()
    if source:  # a client address of its own (another 127/8 address)
        class Handler(urllib.request.HTTPHandler):
            def http_open(self, r):
                return self.do_open(lambda host, **kw: http.client.HTTPConnection(host, source_address=(source, 0), **kw), r)
        opener = urllib.request.build_opener(Handler)
    try:
        with opener.open(req, timeout=30) as resp:
            return Reply(resp.status, list(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, list(e.headers.items()), e.read())


def curl(d, method, path, body=None, headers=(), raw=None, source=None, host=None):
    """curl: one request; the status, headers and body of the final response."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    with tempfile.TemporaryDirectory() as t:
        hp, bp = os.path.join(t, "headers"), os.path.join(t, "body")
        args = [CURL, "-sS", "--max-time", "30", "-D", hp, "-o", bp, "-w", "%{http_code}"]
        args += ["--head"] if method == "HEAD" else ["-X", method]  # (--head writes the headers to -o too)
        if data is not None:
            args += ["--data-binary", "@-"]
            if not any(h.lower().startswith("content-type:") for h in headers):
                args += ["-H", "Content-Type: application/json"]
        for h in headers:
            args += ["-H", h]
        if source:
            args += ["--interface", source]
        url = "http://%s:%d%s" % (host or "127.0.0.1", d.http_port, path)
        r = subprocess.run(args + [url], input=data or b"", capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("curl %s %s: exit %d: %s" % (method, path, r.returncode, r.stderr.decode()))
        with open(hp, "rb") as f:
            blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
        with open(bp, "rb") as f:
            out = f.read()
    final = blocks[-1].split("\r\n")  # after any 100 Continue
    hdrs = [tuple(x.strip() for x in l.split(":", 1)) for l in final[1:] if ":" in l]
    status = int(r.stdout.decode())
    assert status == int(final[0].split()[1]), (status, final[0])
    return Reply(status, hdrs, out)


def raw_exchange(port, data, source=None, timeout=10):
    """Sends bytes on a fresh connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def parse_raw_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = dict((k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:]))
    return status, hdrs, body


def metrics(d):
    """GET /metrics, parsed by prometheus_client: {(sample name, sorted labels): value}."""
    r = curl(d, "GET", "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4"), r.headers
    out = {}
    for family in text_string_to_metric_families(r.raw.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(m, name, **labels):
    return m[(name, tuple(sorted(labels.items())))]


def metric_sum(m, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))


def message(to, n=0, **kw):
    body = {"from": "news@example.com", "to": to if isinstance(to, list) else [to],
            "subject": "test %d" % n, "text": "hello %d\n" % n}
    body.update(kw)
    return body


def inject(d, to, n=0, **kw):
    r = call(d, "POST", "/v1/messages", message(to, n, **kw))
    assert r.status == 202, r
    return r.json["queue_id"]


def assert_json_error(test, r, status, contains=""):
    test.assertEqual(r.status, status, r)
    test.assertTrue(r.header("Content-Type").startswith("application/json"), r.headers)
    err = r.json["error"]
    test.assertIsInstance(err, str)
    test.assertIn(contains, err)
    return err


def delivered_events(d, prefix=""):
    return [e for e in d.events() if e["type"] == "delivered" and e["recipient"].startswith(prefix)]


# --- endpoints -------------------------------------------------------------

class Endpoints(unittest.TestCase):
    """Every route, against a daemon routing sink.test and gmail.com (a
    trusted provider: a hard bounce holds the address at once) to a sink;
    other domains fail their DNS lookup and stay deferred."""

    def setUp(self):
        self.sink = Sink()
        hop = (self.sink.host, self.sink.port)
        self.d = Daemon(extra_config=delivery_config({"sink.test": hop, "gmail.com": hop})).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def test_healthz_unknown_paths_and_wrong_methods(self):
        for client in (call, curl):
            r = client(self.d, "GET", "/healthz")
            self.assertEqual((r.status, r.json), (200, {"spool": "ok", "state": "ok", "status": "ok"}))
            self.assertEqual(r.header("Cache-Control"), "no-store")
            assert_json_error(self, client(self.d, "GET", "/nope"), 404, "/nope")
            assert_json_error(self, client(self.d, "GET", "/v1/queue/summary/extra"), 404)
            assert_json_error(self, client(self.d, "GET", "/v1/recipients/not-an-address"), 404)
        head = curl(self.d, "HEAD", "/healthz")
        self.assertEqual(head.status, 200)
        self.assertEqual(head.header("Content-Length"), str(len(call(self.d, "GET", "/healthz").raw)))
        # HEAD: the headers of the GET, no body after them.
        out = raw_exchange(self.d.http_port, b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        status, hdrs, body = parse_raw_response(out)
        self.assertEqual((status, hdrs["content-length"], body), (200, head.header("Content-Length"), b""))
        for method, path, allow in [("PUT", "/v1/queue/summary", "GET"), ("GET", "/v1/messages", "POST"),
                                    ("DELETE", "/metrics", "GET"), ("POST", "/healthz", "GET, HEAD"),
                                    ("GET", "/v1/queue/hold", "POST"), ("DELETE", "/v1/queue", "GET"),
                                    ("GET", "/v1/recipients/a@example.com/clear", "POST"),
                                    ("POST", "/v1/events", "GET"), ("PATCH", "/v1/stats", "GET")]:
            for client in (call, curl):
                r = client(self.d, method, path)
                assert_json_error(self, r, 405, "method not allowed")
                self.assertEqual(r.header("Allow"), allow, (method, path))

    def test_built_and_raw_messages_are_queued_and_delivered_as_sent(self):
        r = curl(self.d, "POST", "/v1/messages", {
            "from": "News <news@example.com>", "to": ["ok-built@sink.test"], "campaign": "spring",
            "subject": "Hello there", "text": "plain body\nsecond line\n", "html": "<p>html body</p>",
            "headers": {"X-Custom": "yes", "List-Unsubscribe": "<mailto:u@example.com>"}})
        self.assertEqual(r.status, 202, r)
        built = r.json["queue_id"]
        self.assertRegex(built, QUEUE_ID)
        self.assertEqual(r.json["recipients"], [{"address": "ok-built@sink.test", "status": "queued"}])
        raw = "From: a@example.com\nTo: ok-raw@sink.test\nSubject: raw one\nX-Campaign-ID: autumn\n\nline 1\nline 2\n"
        r = call(self.d, "POST", "/v1/messages", {"from": "a@example.com", "to": ["ok-raw@sink.test"], "content": raw})
        self.assertEqual(r.status, 202, r)
        raw_id = r.json["queue_id"]
        self.assertNotEqual(raw_id, built)

        wait_for(lambda: len(self.sink.received()) == 2, what="both messages at the sink")
        got = {rcpt: (mf, data) for mf, rcpt, data in self.sink.received()}
        mf, data = got["ok-built@sink.test"]
        self.assertRegex(mf, r"^b-%s-0-[0-9a-z]{10}@bnc\.test$" % built.lower())
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        self.assertIn("\r\n\tby ricochet.test (Ricochet) with HTTP id %s\r\n\tfor <ok-built@sink.test>" % built, head)
        # Delivery's own fields (Feedback-ID here; DKIM-Signature, List-Unsubscribe when configured) go on top.
        self.assertTrue(head.startswith("Feedback-ID: spring:example.com:ricochet\r\nReceived: from api ([127.0.0.1])"),
                        head[:200])
        for want in ("Subject: Hello there", "X-Custom: yes", "X-Campaign-ID: spring", "List-Unsubscribe: <mailto:u@example.com>",
                     "Date: ", "To: ok-built@sink.test"):
            self.assertIn(want, head)
        self.assertRegex(head, r"(?i)\r\nMessage-ID: <%s\.[0-9a-f]{12}@ricochet\.test>\r\n" % built)
        self.assertRegex(head, r"From: \"?News\"? <news@example.com>")
        self.assertIn(b"multipart/alternative", data)
        self.assertIn(b"plain body\r\nsecond line", data)
        self.assertIn(b"<p>html body</p>", data)
        mf, data = got["ok-raw@sink.test"]
        self.assertRegex(mf, r"^b-%s-0-" % raw_id.lower())
        self.assertIn(b"Subject: raw one\r\nX-Campaign-ID: autumn\r\n", data, "bare LF became CRLF")
        self.assertIn(b"\r\nDate: ", data)
        self.assertIn(b"\r\nMessage-ID: <", data)
        self.assertTrue(data.endswith(b"\r\n\r\nline 1\r\nline 2\r\n"), data[-60:])
        # A delivery's event follows its 250 (recorded with the next batch,
        # within 20 ms): waited for, not assumed.
        wait_for(lambda: len(delivered_events(self.d)) == 2, what="both delivered events")
        ev = {e["queue_id"]: e for e in delivered_events(self.d)}
        self.assertEqual((ev[built]["campaign"], ev[raw_id]["campaign"]), ("spring", "autumn"))

    def test_bad_injections_are_400_and_queue_nothing(self):
        good = {"from": "a@example.com", "to": ["ok@sink.test"], "subject": "s", "text": "t"}
        cases = [
            (b"", "JSON body is required"),
            (b"{not json", "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (dict(good, to="ok@sink.test"), "\"to\" must be a non-empty array"),
            (dict(good, to=[]), "\"to\" must be a non-empty array"),
            (dict(good, to=[7]), "\"to\" must be a non-empty array"),
            ({k: v for k, v in good.items() if k != "to"}, "\"to\" must be a non-empty array"),
            ({k: v for k, v in good.items() if k != "from"}, "missing \"from\""),
            (dict(good, subject=12), "\"subject\" must be a string"),
            (dict(good, headers=["X-A: b"]), "\"headers\" must be an object"),
            (dict(good, headers={"X-A": 1}), "\"headers\" must be an object"),
            (dict(good, bcc=["x@example.com"]), "unknown field \"bcc\""),
            (dict(good, to=["no-domain"]), "not an address in \"to\": no-domain"),
            (dict(good, to=["ok@sink.test", "a b@sink.test"]), "not an address"),
            (dict(good, **{"from": "not an address"}), "\"from\" is not an address"),
            (dict(good, content="Subject: x\r\n\r\nbody"), "\"content\" and \"subject\" exclude each other"),
            ({"from": "a@example.com", "to": ["ok@sink.test"], "content": "no header here\r\n"}, "does not start with a header"),
            ({"from": "a@example.com", "to": ["ok@sink.test"], "content": "Subject: x\r\n\r\n" + "y" * 1000}, "longer than 998"),
            (dict(good, campaign="two\nlines"), "\"campaign\" must be at most 200 characters"),
        ]
        for i, (body, want) in enumerate(cases):
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            client = curl if i % 2 else call
            assert_json_error(self, client(self.d, "POST", "/v1/messages", raw=raw), 400, want)
        self.assertEqual(call(self.d, "GET", "/v1/queue").json, [])
        self.assertEqual(metric(metrics(self.d), "ricochet_submitted_total"), 0)
        self.assertEqual([e for e in self.d.events() if e["type"] == "queued"], [])

    def test_unsubscribed_and_held_recipients_are_refused_with_a_reason(self):
        r = call(self.d, "POST", "/v1/recipients/Gone@Example.net/unsubscribe")
        self.assertEqual((r.status, r.json["address"], r.json["status"]), (200, "gone@example.net", "unsubscribed"))
        # A hard bounce from a trusted provider holds the address at once.
        inject(self.d, "reject-held@gmail.com")
        wait_for(lambda: call(self.d, "GET", "/v1/recipients/reject-held@gmail.com").json.get("status") == "held",
                 what="the address held after its hard bounce")

        r = call(self.d, "POST", "/v1/messages", message(["gone@example.net", "ok-kept@sink.test", "reject-held@gmail.com"]))
        self.assertEqual(r.status, 202, r)
        self.assertRegex(r.json["queue_id"], QUEUE_ID)
        rs = r.json["recipients"]
        self.assertEqual([(x["address"], x["status"]) for x in rs],
                         [("gone@example.net", "refused"), ("ok-kept@sink.test", "queued"), ("reject-held@gmail.com", "refused")])
        self.assertEqual(rs[0]["reason"], "recipient has unsubscribed")
        self.assertRegex(rs[2]["reason"], r"^recipient is held after 1 bounce\(s\) \(last: user-unknown\)$")
        self.assertNotIn("reason", rs[1])
        shown = call(self.d, "GET", "/v1/queue/" + r.json["queue_id"])
        if shown.status == 200:  # unless already delivered
            self.assertEqual([x["recipient"] for x in shown.json["recipients"]], ["ok-kept@sink.test"])

        # Every recipient refused: 200, nothing queued.
        r = curl(self.d, "POST", "/v1/messages", message(["gone@example.net", "reject-held@gmail.com"]))
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.json["queue_id"])
        self.assertEqual([x["status"] for x in r.json["recipients"]], ["refused", "refused"])
        wait_for(lambda: self.sink.received("ok-kept"), what="the accepted recipient delivered")
        wait_for(lambda: call(self.d, "GET", "/v1/queue").json == [], what="an empty queue")
        self.assertEqual(metric(metrics(self.d), "ricochet_submitted_total"), 2, "the refused one is not counted")
        self.assertEqual(self.sink.received("gone") + self.sink.received("reject-held"),
                         [], "nothing went to a refused address")
        self.assertEqual(self.sink.seen.get("reject-held@gmail.com"), 1)

    def test_queue_views_and_operations(self):
        a1 = inject(self.d, "u1@qa.example", campaign="camp-a")
        a2 = inject(self.d, ["u2@qa.example", "u3@qb.example"], campaign="camp-a")
        b1 = inject(self.d, "u4@qb.example", campaign="camp-b")
        ids = lambda r: sorted(m["id"] for m in r.json)
        self.assertEqual(ids(call(self.d, "GET", "/v1/queue")), sorted([a1, a2, b1]))
        self.assertEqual(ids(curl(self.d, "GET", "/v1/queue?domain=qa.example")), sorted([a1, a2]))
        self.assertEqual(ids(call(self.d, "GET", "/v1/queue?domain=qb.example")), sorted([a2, b1]))
        self.assertEqual(ids(call(self.d, "GET", "/v1/queue?campaign=camp-b")), [b1])
        self.assertEqual(ids(call(self.d, "GET", "/v1/queue?campaign=camp-a&domain=qb.example")), [a2])
        self.assertEqual(call(self.d, "GET", "/v1/queue?domain=nowhere.example").json, [])
        assert_json_error(self, call(self.d, "GET", "/v1/queue?state=bogus"), 400, "state must be")

        r = call(self.d, "POST", "/v1/queue/hold", {"domain": "qa.example"})
        self.assertEqual((r.status, r.json["matched"], sorted(r.json["changed"])), (200, 2, sorted([a1, a2])))
        self.assertEqual(ids(call(self.d, "GET", "/v1/queue?state=hold")), sorted([a1, a2]))
        self.assertNotIn(b1, ids(call(self.d, "GET", "/v1/queue?state=hold")))
        s = call(self.d, "GET", "/v1/queue/summary").json
        qa = [x for x in s["domains"] if x["domain"] == "qa.example"][0]
        self.assertEqual((qa["total"], qa["hold"]), (2, 2))
        self.assertEqual(s["total"]["messages"], 3)
        self.assertEqual(s["total"]["hold"], 2)

        shown = call(self.d, "GET", "/v1/queue/" + a2)
        self.assertEqual(shown.status, 200, shown)
        j = shown.json
        self.assertEqual((j["id"], j["state"], j["campaign"], j["sender"], j["client"], j["helo"]),
                         (a2, "hold", "camp-a", "news@example.com", "127.0.0.1", "api"))
        self.assertEqual([x["recipient"] for x in j["recipients"]], ["u2@qa.example", "u3@qb.example"])
        self.assertIn("Subject: test 0\r\n", j["headers"])
        self.assertIn("with HTTP id %s" % a2, j["headers"])

        r = curl(self.d, "POST", "/v1/queue/release", {"id": a1})
        self.assertEqual((r.status, r.json["matched"], r.json["changed"]), (200, 1, [a1]))
        self.assertNotIn(a1, ids(call(self.d, "GET", "/v1/queue?state=hold")))
        r = call(self.d, "POST", "/v1/queue/hold", {"campaign": "camp-b"})
        self.assertEqual((r.status, r.json["changed"]), (200, [b1]))
        r = call(self.d, "POST", "/v1/queue/flush", {"all": True})
        self.assertEqual(r.status, 200, r)
        r = call(self.d, "POST", "/v1/queue/release", {"all": True})
        self.assertEqual((r.status, sorted(r.json["changed"])), (200, sorted([a2, b1])))
        self.assertEqual(ids(call(self.d, "GET", "/v1/queue?state=hold")), [])

        # Selectors: exactly one, well typed.
        for op in ("hold", "release", "delete", "flush"):
            for body, want in [({}, "exactly one"), ({"id": a1, "domain": "qa.example"}, "exactly one"),
                               ({"all": True, "campaign": "camp-a"}, "exactly one"), ({"all": False}, "\"all\" must be true"),
                               ({"id": 12}, "must be a non-empty string"), ({"domain": ""}, "must be a non-empty string"),
                               ([a1], "the body must be")]:
                assert_json_error(self, call(self.d, "POST", "/v1/queue/" + op, body), 400, want)
            assert_json_error(self, call(self.d, "POST", "/v1/queue/" + op, raw=b"{oops"), 400, "not valid JSON")
        assert_json_error(self, call(self.d, "POST", "/v1/queue/bounce", {"id": a1}), 501)

        r = call(self.d, "POST", "/v1/queue/delete", {"id": a1})
        self.assertEqual((r.status, r.json["changed"]), (200, [a1]))
        for op in ("hold", "release", "delete", "flush"):
            assert_json_error(self, curl(self.d, "POST", "/v1/queue/" + op, {"id": a1}), 404, "not in the queue")
        assert_json_error(self, call(self.d, "GET", "/v1/queue/" + a1), 404, "not in the queue")
        assert_json_error(self, curl(self.d, "GET", "/v1/queue/NOTANID"), 404, "not a queue id")
        r = call(self.d, "POST", "/v1/queue/delete", {"all": True})
        self.assertEqual((r.status, sorted(r.json["changed"])), (200, sorted([a2, b1])))
        self.assertEqual(call(self.d, "GET", "/v1/queue").json, [])
        self.assertEqual(call(self.d, "GET", "/v1/queue/summary").json["total"]["messages"], 0)
        admin = [(e["action"], e["queue_id"]) for e in self.d.events() if e["type"] == "admin" and e["queue_id"]]
        self.assertIn(("hold", a1), admin)
        self.assertIn(("delete", b1), admin)

    def test_recipients_status_changes_and_paging(self):
        addrs = sorted("user%02d@paging.example" % i for i in range(25))
        for i, a in enumerate(addrs):
            r = (call if i % 2 else curl)(self.d, "POST", "/v1/recipients/%s/unsubscribe" % a)
            self.assertEqual((r.status, r.json["status"]), (200, "unsubscribed"), r)
        got, after, pages = [], "", 0
        while True:
            r = call(self.d, "GET", "/v1/recipients?status=unsubscribed&limit=10" + ("&after=" + after if after else ""))
            self.assertEqual(r.status, 200, r)
            page = [x["address"] for x in r.json["recipients"]]
            self.assertLessEqual(len(page), 10)
            self.assertTrue(all(x["status"] == "unsubscribed" for x in r.json["recipients"]))
            got += page
            pages += 1
            if r.json["next"] is None:
                break
            self.assertEqual(r.json["next"], page[-1])
            after = r.json["next"]
        self.assertEqual(got, addrs, "every address once, in address order")
        self.assertEqual(pages, 3)
        self.assertEqual(call(self.d, "GET", "/v1/recipients?status=held").json, {"recipients": [], "next": None})
        assert_json_error(self, call(self.d, "GET", "/v1/recipients?status=bogus"), 400, "status must be")
        assert_json_error(self, call(self.d, "GET", "/v1/recipients?status=active&limit=0"), 400, "limit must be")
        assert_json_error(self, call(self.d, "GET", "/v1/recipients?status=active&limit=x"), 400, "limit must be")

        one = addrs[0]
        r = curl(self.d, "GET", "/v1/recipients/" + one)
        self.assertEqual((r.status, r.json["address"], r.json["status"]), (200, one, "unsubscribed"))
        self.assertEqual(r.json["history"][0]["rule"], "unsubscribe")
        assert_json_error(self, call(self.d, "GET", "/v1/recipients/never-seen@paging.example"), 404, "no record")
        r = call(self.d, "POST", "/v1/recipients/%s/engage" % one)
        assert_json_error(self, r, 409, "unsubscribed")
        self.assertEqual(call(self.d, "GET", "/v1/recipients/" + one).json["status"], "unsubscribed")
        r = curl(self.d, "POST", "/v1/recipients/%s/clear" % one)
        self.assertEqual((r.status, r.json["status"]), (200, "active"))
        r = call(self.d, "POST", "/v1/recipients/%s/engage" % one)
        self.assertEqual((r.status, r.json["status"]), (200, "active"))
        assert_json_error(self, call(self.d, "POST", "/v1/recipients/no-at-sign/clear"), 400, "not an address")
        r = call(self.d, "GET", "/v1/recipients?status=unsubscribed&limit=100")
        self.assertEqual([x["address"] for x in r.json["recipients"]], addrs[1:])
        # Cleared, the address takes mail again.
        r = call(self.d, "POST", "/v1/messages", message(one))
        self.assertEqual((r.status, r.json["recipients"][0]["status"]), (202, "queued"))
        unsub = [e for e in self.d.events() if e["type"] == "unsubscribed"]
        self.assertEqual(sorted(e["recipient"] for e in unsub), addrs)
        self.assertEqual({e["via"] for e in unsub}, {"admin"})

    def test_stats_and_campaigns(self):
        for i in range(4):
            inject(self.d, "ok-st%d@sink.test" % i, i, campaign="stats-camp")
        inject(self.d, "reject-st@sink.test", campaign="stats-camp")
        inject(self.d, "ok-other@sink.test", campaign="other-camp")
        # The events, not only the sink's copies: a delivery's event follows its 250.
        wait_for(lambda: len(delivered_events(self.d)) == 5 and
                 [e for e in self.d.events() if e["type"] == "bounced"], what="5 delivered and 1 bounced")
        want = {"campaign": "stats-camp", "sent": 5, "delivered": 4, "hard": 1, "soft": 0, "deferred": 0}

        def row_ok():
            r = call(self.d, "GET", "/v1/stats")
            rows = [x for x in r.json["by_campaign"] if x["campaign"] == "stats-camp"]
            return rows and all(rows[0][k] == v for k, v in want.items()) and rows[0]
        row = wait_for(row_ok, what="the campaign's stats")
        self.assertAlmostEqual(row["bounce_rate"], 0.2)
        by_domain = {x["domain"]: x for x in call(self.d, "GET", "/v1/stats").json["by_domain"]}
        self.assertEqual((by_domain["sink.test"]["sent"], by_domain["sink.test"]["delivered"]), (6, 5))
        only = curl(self.d, "GET", "/v1/stats?campaign=other-camp").json["by_campaign"]
        self.assertEqual([(x["campaign"], x["delivered"]) for x in only], [("other-camp", 1)])
        self.assertEqual(call(self.d, "GET", "/v1/stats?since=1h").status, 200)
        assert_json_error(self, call(self.d, "GET", "/v1/stats?since=soon"), 400, "since must be")

        # The campaign breaker's view of it: in-session outcomes over its window.
        r = curl(self.d, "GET", "/v1/campaigns/stats-camp")
        self.assertEqual(r.status, 200, r)
        self.assertEqual({k: r.json[k] for k in ("id", "scope", "attempted", "delivered", "hard", "state")},
                         {"id": "stats-camp", "scope": "campaign", "attempted": 5, "delivered": 4, "hard": 1, "state": "ok"})
        self.assertAlmostEqual(r.json["hard_rate"], 0.2)
        self.assertIn("stats-camp", [c["id"] for c in call(self.d, "GET", "/v1/campaigns").json])
        assert_json_error(self, call(self.d, "GET", "/v1/campaigns/no-such-camp"), 404, "nothing in the breaker")
        assert_json_error(self, call(self.d, "GET", "/v1/campaigns/stats-camp/pause"), 405)

    def test_events_paging_covers_the_log_once_in_order(self):
        for i in range(30):
            inject(self.d, ["ok-ev%d@sink.test" % i] + (["u%d@deferred.example" % i] if i % 10 == 0 else []), i)
        inject(self.d, "reject-ev@sink.test")
        wait_for(lambda: len(self.sink.received("ok-ev")) == 30 and len(delivered_events(self.d, "ok-ev")) == 30 and
                 [e for e in self.d.events() if e["type"] == "bounced"], what="deliveries and the bounce")
        seen, after, pages = [], 0, 0
        while True:
            client = curl if pages % 3 == 0 else call
            r = client(self.d, "GET", "/v1/events?after=%d&limit=7" % after)
            self.assertEqual(r.status, 200, r)
            j = r.json
            self.assertLessEqual(len(j["events"]), 7)
            if j["events"]:
                self.assertEqual(j["last_seq"], j["events"][-1]["seq"])
            seen += j["events"]
            pages += 1
            self.assertGreaterEqual(j["last_seq"], after)
            if not j["more"]:
                break
            after = j["last_seq"]
        self.assertGreater(len(seen), 60)
        seqs = [e["seq"] for e in seen]
        self.assertTrue(all(a < b for a, b in zip(seqs, seqs[1:])), "seq strictly increasing")
        self.assertEqual(len({e["id"] for e in seen}), len(seen), "each event once")
        last = seqs[-1]
        # The log, up to where the pages stopped (deferred retries go on meanwhile).
        self.assertEqual(seen, [e for e in self.d.events() if 0 < e["seq"] <= last])
        r = call(self.d, "GET", "/v1/events?after=%d&limit=10000" % last)
        self.assertEqual(r.json["events"], [e for e in self.d.events() if e["seq"] > last][:len(r.json["events"])])
        self.assertGreaterEqual(r.json["last_seq"], last)

        r = call(self.d, "GET", "/v1/events?after=0&limit=10000&types=delivered,bounced")
        kinds = [(e["type"], e["recipient"]) for e in r.json["events"]]
        self.assertEqual(kinds, [(e["type"], e["recipient"]) for e in self.d.events()
                                 if e["type"] in ("delivered", "bounced")][:len(kinds)])
        self.assertEqual(len([k for k in kinds if k[0] == "delivered"]), 30)
        far = call(self.d, "GET", "/v1/events?after=100000000")
        self.assertEqual(far.json, {"events": [], "last_seq": 100000000, "more": False})
        assert_json_error(self, call(self.d, "GET", "/v1/events?types=delivered,nonsense"), 400, "not an event type: nonsense")
        assert_json_error(self, call(self.d, "GET", "/v1/events?limit=0"), 400, "limit must be")
        assert_json_error(self, curl(self.d, "GET", "/v1/events?after=-1"), 400, "after must be")

    def test_open_transactions_gauge_follows_submission_sessions(self):
        """ricochet_smtp_transactions_open: the sessions the group commit
        waits for (queue/README.md, Gathering). From an accepted MAIL until
        the message is handed over (before its 250), a RSET, or the end of
        the connection; not while the session's own message commits."""
        def gauge():
            return metric(metrics(self.d), "ricochet_smtp_transactions_open")
        self.assertEqual(gauge(), 0)
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("client.test")
            self.assertEqual(gauge(), 0)
            s.mail("news@example.com")
            self.assertEqual(gauge(), 1)
            s.rcpt("ok-g1@sink.test")
            self.assertEqual(gauge(), 1)
            s.rset()
            self.assertEqual(gauge(), 0)
            s.mail("news@example.com")
            s.rcpt("ok-g2@sink.test")
            code, _ = s.data(b"Subject: g\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
            self.assertEqual(gauge(), 0, "the mark ends when the message is handed over")
            s.mail("news@example.com")
            self.assertEqual(gauge(), 1)
        wait_for(lambda: gauge() == 0, what="QUIT ends the transaction")
        # Pipelined: the next MAIL arrives while the message before it commits;
        # once its 250 is out, the session is waiting for its own client again.
        sock = socket.create_connection(("127.0.0.1", self.d.port), timeout=30)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO client.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        sock.sendall(b"MAIL FROM:<news@example.com>\r\nRCPT TO:<ok-g3@sink.test>\r\nDATA\r\n")
        self.assertEqual([f.readline()[:3] for _ in range(3)], [b"250", b"250", b"354"])
        sock.sendall(b"Subject: g\r\n\r\nbody\r\n.\r\nMAIL FROM:<news@example.com>\r\n")
        self.assertEqual([f.readline()[:3] for _ in range(2)], [b"250", b"250"])
        self.assertEqual(gauge(), 1)
        f.close()
        sock.close()  # gone mid-transaction (the file object held the socket open)
        wait_for(lambda: gauge() == 0, what="the end of the connection ends the transaction")

    def test_metrics_count_what_was_sent(self):
        m = metrics(self.d)
        self.assertEqual(metric(m, "ricochet_submitted_total"), 0)
        self.assertEqual(metric_sum(m, "ricochet_queue_messages"), 0)
        held = [inject(self.d, ["h%d@held.example" % i, "h%d@held2.example" % i], i) for i in range(7)]
        for i in range(12):
            inject(self.d, "ok-m%d@sink.test" % i, i)
        inject(self.d, "reject-m@sink.test")
        for dom in ("held.example", "held2.example"):
            self.assertEqual(call(self.d, "POST", "/v1/queue/hold", {"domain": dom}).status, 200)
        wait_for(lambda: len(self.sink.received()) == 12 and call(self.d, "GET", "/v1/queue").json
                 and all(x["state"] == "hold" for x in call(self.d, "GET", "/v1/queue").json), what="the sink's 12, the rest held")
        queued = call(self.d, "GET", "/v1/queue").json
        self.assertEqual(sorted(x["id"] for x in queued), sorted(held))

        def settled():
            m = metrics(self.d)
            ev = self.d.events()
            deferred = len([e for e in ev if e["type"] == "deferred"])
            return (metric_sum(m, "ricochet_deliveries_total", outcome="deferred") == deferred and
                    metric(m, "ricochet_deliveries_total", outcome="delivered", kind="none") == 12 and m)
        m = wait_for(settled, what="the counters to match the event log")
        self.assertEqual(metric(m, "ricochet_submitted_total"), 7 + 12 + 1)
        self.assertEqual(metric(m, "ricochet_queue_messages", state="hold"), 7)
        self.assertEqual(metric_sum(m, "ricochet_queue_messages"), len(queued))
        self.assertEqual(metric(m, "ricochet_deliveries_total", outcome="delivered", kind="none"), len(self.sink.received()))
        self.assertEqual(metric(m, "ricochet_deliveries_total", outcome="bounced", kind="hard"), 1)
        self.assertEqual(metric(m, "ricochet_replies_total", category="user-unknown"), 1)
        self.assertEqual(metric(m, "ricochet_spool_commit_seconds_count"), metric(m, "ricochet_spool_commit_seconds_bucket", le="+Inf"))
        self.assertGreaterEqual(metric(m, "ricochet_spool_commit_seconds_count"), 1)
        self.assertGreaterEqual(metric(m, "ricochet_delivery_seconds_count"), 13)
        self.assertEqual(metric(m, "ricochet_state_pending_decisions"), 0)


# --- the listener's checks -------------------------------------------------

class ListenerChecks(unittest.TestCase):
    """Host, sizes, malformed requests, time-outs and connection limits."""

    def setUp(self):
        self.d = Daemon(http_extra='max_body = 2048\nrequest_timeout = "2s"\nmax_connections_per_ip = 2').start()

    def tearDown(self):
        self.d.cleanup()

    def test_host_header_must_name_this_server(self):
        for host in ("127.0.0.1:%d" % self.d.http_port, "localhost", "localhost:%d" % self.d.http_port,
                     "ricochet.test", "RICOCHET.test:8025", "[::1]:%d" % self.d.http_port, "10.1.2.3"):
            r = curl(self.d, "GET", "/healthz", headers=["Host: " + host])
            self.assertEqual(r.status, 200, (host, r))
        for host in ("evil.example", "evil.example:%d" % self.d.http_port, "ricochet.test.evil.example",
                     "localhost.evil.example", "127.0.0.1.nip.io"):
            for client in (curl, call):
                hdr = ["Host: " + host] if client is curl else {"Host": host}
                assert_json_error(self, client(self.d, "GET", "/v1/queue", headers=hdr), 403, "is not this server")
        # No Host at all (HTTP/1.0 allows it): refused too.
        status, _, body = parse_raw_response(raw_exchange(self.d.http_port, b"GET /healthz HTTP/1.0\r\n\r\n"))
        self.assertEqual(status, 403)
        self.assertIn("error", json.loads(body))

    def test_chunked_body_over_max_body_is_413(self):
        small = message("ok@sink.test", text=("x" * 70 + "\n") * 21)
        self.assertLess(len(json.dumps(small)), 2048)
        self.assertEqual(call(self.d, "POST", "/v1/messages", small).status, 202)
        # Chunked: no Content-Length to refuse up front; the body stops at the limit.
        data = json.dumps(message("ok@sink.test", text=("x" * 70 + "\n") * 42)).encode()
        self.assertGreater(len(data), 2048)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 500]), data[i:i + 500]) for i in range(0, len(data), 500))
        status, hdrs, body = parse_raw_response(raw_exchange(
            self.d.http_port, b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"))
        self.assertEqual(status, 413)
        self.assertEqual(hdrs["content-type"], "application/json")
        self.assertIn("over the limit of 2048", json.loads(body)["error"])
        self.assertEqual(len(call(self.d, "GET", "/v1/queue").json), 1, "only the small one")
        self.assertEqual(call(self.d, "GET", "/healthz").status, 200)

    # Regression: the body limit must not fire while the header is read (a Content-Length over max_body is a 413, not a 400).
    def test_body_with_content_length_over_max_body_is_413(self):
        big = message("ok@sink.test", text=("x" * 70 + "\n") * 42)
        self.assertGreater(len(json.dumps(big)), 2048)
        for client in (call, curl):
            assert_json_error(self, client(self.d, "POST", "/v1/messages", big), 413, "over the limit of 2048")
        status, _, body = parse_raw_response(raw_exchange(
            self.d.http_port, b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2049\r\n\r\n" + b" " * 2049))
        self.assertEqual(status, 413, body)
        self.assertEqual(call(self.d, "GET", "/v1/queue").json, [])

    # Regression: the read buffer must not cap the header section below the parser's 16 KiB limit (was 8 KiB: 400).
    def test_headers_over_16k_are_431(self):
        r = curl(self.d, "GET", "/healthz", headers=["X-Big: " + "a" * 17000])
        assert_json_error(self, r, 431)
        r = call(self.d, "GET", "/healthz", headers={"X-A": "b" * 9000, "X-B": "c" * 9000})
        assert_json_error(self, r, 431)

    # Regression: the same buffer cap as above.
    def test_headers_up_to_16k_are_accepted(self):
        self.assertEqual(call(self.d, "GET", "/healthz", headers={"X-A": "b" * 8000}).status, 200)
        for size in (9000, 12000, 15000):
            r = curl(self.d, "GET", "/healthz", headers=["X-Big: " + "a" * size])
            self.assertEqual(r.status, 200, (size, r))
        r = call(self.d, "GET", "/healthz", headers={"X-H%d" % i: "b" * 1000 for i in range(12)})
        self.assertEqual(r.status, 200, r)

    def test_malformed_requests_get_a_json_400_and_the_daemon_goes_on(self):
        for junk in (b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,
                     b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
                     b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: nope\r\n\r\n"):
            out = raw_exchange(self.d.http_port, junk)
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), (junk[:30], out[:200]))
            status, hdrs, body = parse_raw_response(out)
            self.assertEqual(hdrs["content-type"], "application/json")
            self.assertIn("malformed request", json.loads(body)["error"])
            self.assertEqual(call(self.d, "GET", "/healthz").status, 200)
        # A target that is not origin-form or climbs out of the path.
        for target in (b"http://evil.example/healthz", b"/v1/../healthz", b"/v1/queue%zz"):
            status, _, body = parse_raw_response(raw_exchange(
                self.d.http_port, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
            self.assertEqual(status, 400, target)
            self.assertIn("malformed request target", json.loads(body)["error"])
        self.assertEqual(curl(self.d, "GET", "/healthz").status, 200)

    def test_idle_and_slow_clients_are_closed_after_request_timeout(self):
        def closed_after(first_bytes):
            with socket.create_connection(("127.0.0.1", self.d.http_port), timeout=10) as s:
                t0 = time.monotonic()
                if first_bytes:
                    s.sendall(first_bytes)
                got = b""
                try:
                    while True:
                        chunk = s.recv(65536)  # bounded by the socket's 10 s time-out
                        if not chunk:
                            break
                        got += chunk
                except socket.timeout:
                    self.fail("the server did not close the connection within 10 s")
                except ConnectionResetError:
                    pass
                return time.monotonic() - t0, got
        took, got = closed_after(b"")
        self.assertEqual(got, b"")
        self.assertGreaterEqual(took, 1.5, "closed by the time-out, not at once")
        self.assertLess(took, 10)
        took, got = closed_after(b"GET /healthz HTTP/1.1\r\nHost: localh")  # never finishes its headers
        self.assertGreaterEqual(took, 1.5)
        self.assertEqual(got, b"")
        took, got = closed_after(b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
        self.assertGreaterEqual(took, 1.5)
        self.assertEqual(got, b"")
        # A kept-alive connection: one answer, then closed once idle that long.
        with socket.create_connection(("127.0.0.1", self.d.http_port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            t0 = time.monotonic()
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
            self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        self.assertEqual(call(self.d, "GET", "/healthz").status, 200)

    def test_third_connection_from_one_address_gets_503(self):
        src = "127.0.0.3"
        keep = []
        for _ in range(2):
            c = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=10, source_address=(src, 0))
            c.request("GET", "/healthz")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            keep.append(c)  # kept alive: both count
        status, hdrs, body = parse_raw_response(raw_exchange(
            self.d.http_port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", source=src))
        self.assertEqual(status, 503)
        self.assertIn("too many connections from your address", json.loads(body)["error"])
        # Another address is not affected.
        self.assertEqual(call(self.d, "GET", "/healthz", source="127.0.0.4").status, 200)
        r = curl(self.d, "GET", "/healthz", source=src)
        self.assertEqual(r.status, 503)
        # The kept ones still work; once one closes, a new one is let in.
        keep[0].request("GET", "/v1/queue/summary")
        self.assertEqual(keep[0].getresponse().status, 200)
        keep[1].close()
        wait_for(lambda: call(self.d, "GET", "/healthz", source=src).status == 200, timeout=10,
                 what="a connection let in after one closed")
        keep[0].close()
        self.assertIn("http.max_connections_per_ip", self.d.log())


class Tokens(unittest.TestCase):
    """Clients outside http.trusted_networks (here: every loopback client)
    need a bearer token from http.tokens_file."""
    GOOD = "s3cret-token-for-ci-0123456789"
    OTHER = "another-token-abcdefghijklmnop"

    def setUp(self):
        self.tdir = tempfile.mkdtemp(prefix="ricochet-tokens-")
        self.tokens = os.path.join(self.tdir, "tokens")
        with open(self.tokens, "w") as f:
            f.write("# name:token\ncampaigns:%s\n\nops:%s\n" % (self.GOOD, self.OTHER))
        self.d = Daemon(http_extra='trusted_networks = ["10.0.0.0/8"]\ntokens_file = "%s"' % self.tokens).start()

    def tearDown(self):
        self.d.cleanup()
        shutil.rmtree(self.tdir)

    def test_no_token_bad_token_good_token(self):
        for client in (call, curl):
            r = client(self.d, "GET", "/v1/queue/summary")
            assert_json_error(self, r, 401, "bearer token is required")
            self.assertEqual(r.header("WWW-Authenticate"), "Bearer")
            auth = "Bearer wrong-token-0123456789abc"
            r = client(self.d, "GET", "/v1/queue/summary",
                       headers={"Authorization": auth} if client is call else ["Authorization: " + auth])
            assert_json_error(self, r, 401, "invalid token")
            self.assertEqual(r.header("WWW-Authenticate"), 'Bearer error="invalid_token"')
            for auth in ("Bearer " + self.GOOD, "bearer " + self.OTHER):
                r = client(self.d, "GET", "/v1/queue/summary",
                           headers={"Authorization": auth} if client is call else ["Authorization: " + auth])
                self.assertEqual(r.status, 200, r)
                self.assertIn("total", r.json)
        assert_json_error(self, curl(self.d, "GET", "/healthz", headers=["Authorization: Basic dXNlcjpwYXNz"]), 401)
        assert_json_error(self, call(self.d, "GET", "/metrics", headers={"Authorization": "Bearer " + self.GOOD[:-1]}), 401)
        # An injection names the token: HTTPA in Received, the user in the envelope.
        r = call(self.d, "POST", "/v1/messages", message("x@deferred.example"), headers={"Authorization": "Bearer " + self.GOOD})
        self.assertEqual(r.status, 202, r)
        shown = call(self.d, "GET", "/v1/queue/" + r.json["queue_id"], headers={"Authorization": "Bearer " + self.OTHER}).json
        self.assertEqual(shown["auth_user"], "campaigns")
        self.assertIn("with HTTPA id " + r.json["queue_id"], shown["headers"])

    # Regression: the access log names the token's NAME (it was read after the request had been moved away).
    def test_access_log_names_the_token(self):
        r = call(self.d, "GET", "/v1/queue/summary", headers={"Authorization": "Bearer " + self.GOOD})
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: "GET /v1/queue/summary -> 200" in self.d.log(), timeout=10, what="the access log line")
        self.assertIn("GET /v1/queue/summary -> 200 (token campaigns)", self.d.log())

    def test_twenty_bad_tokens_in_a_minute_block_the_address(self):
        src = "127.0.0.5"
        good = {"Authorization": "Bearer " + self.GOOD}
        self.assertEqual(call(self.d, "GET", "/healthz", headers=good, source=src).status, 200)
        for i in range(20):
            r = call(self.d, "GET", "/healthz", headers={"Authorization": "Bearer bad-token-number-%04d" % i}, source=src)
            self.assertEqual(r.status, 401, (i, r))
        # Now even the good token is refused from there, and no token too.
        r = call(self.d, "GET", "/healthz", headers=good, source=src)
        assert_json_error(self, r, 429, "too many failed authentications")
        assert_json_error(self, curl(self.d, "GET", "/healthz", headers=["Authorization: Bearer " + self.GOOD], source=src), 429)
        assert_json_error(self, call(self.d, "GET", "/healthz", source=src), 429)
        # Other addresses are not: the block is per address.
        self.assertEqual(call(self.d, "GET", "/healthz", headers=good, source="127.0.0.6").status, 200)

    def test_a_short_token_stops_the_daemon_at_start(self):
        bad = os.path.join(self.tdir, "short")
        with open(bad, "w") as f:
            f.write("someone:tooshort\n")
        d = Daemon(http_extra='trusted_networks = ["10.0.0.0/8"]\ntokens_file = "%s"' % bad)
        try:
            with self.assertRaises(RuntimeError) as cm:
                d.start()
            self.assertIn("http.tokens_file", str(cm.exception))
        finally:
            d.cleanup()


# --- load ------------------------------------------------------------------

class InjectionLoad(unittest.TestCase):
    """10,000 messages injected over HTTP and received by Postfix's own
    smtp-sink (its -c counter is the receiver's count); each message's
    delivery is then matched to its queue id through the event log."""
    N = 10000
    WORKERS = 16

    def setUp(self):
        self.sink_port = free_port()
        self.sink_out = tempfile.NamedTemporaryFile(prefix="smtp-sink-", suffix=".out")
        self.sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", "127.0.0.1:%d" % self.sink_port, "1000"],
                                     stdout=self.sink_out, stderr=subprocess.STDOUT)
        wait_listening("127.0.0.1", self.sink_port)
        self.d = Daemon(extra_config=delivery_config({"sink.test": ("127.0.0.1", self.sink_port)},
                                                     per_conn=1000)).start()

    def tearDown(self):
        self.d.cleanup()
        self.sink.terminate()
        self.sink.wait()
        self.sink_out.close()

    def sink_count(self):
        """smtp-sink -c writes "sess=N quit=N mesg=N\r" as it goes: the last mesg."""
        with open(self.sink_out.name, "rb") as f:
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def test_10000_messages_injected_over_keep_alive_connections_all_delivered(self):
        ids, errors = {}, []
        lock = threading.Lock()

        def worker(w):
            conn = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=60)
            try:
                for i in range(w, self.N, self.WORKERS):
                    body = json.dumps(message("ok-load%05d@sink.test" % i, i, campaign="load")).encode()
                    conn.request("POST", "/v1/messages", body, {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    if r.status != 202 or r.will_close:
                        errors.append((i, r.status, r.will_close, data[:200]))
                        return
                    with lock:
                        ids[i] = json.loads(data)["queue_id"]
            except Exception as e:  # reported by the test thread
                errors.append(repr(e))
            finally:
                conn.close()

        t0 = time.monotonic()
        with ThreadPoolExecutor(self.WORKERS) as pool:
            list(pool.map(worker, range(self.WORKERS)))
        injected = time.monotonic() - t0
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), self.N)
        self.assertEqual(len(set(ids.values())), self.N, "queue ids are distinct")
        wait_for(lambda: self.sink_count() >= self.N, timeout=300, what="10,000 messages at smtp-sink")
        delivered = time.monotonic() - t0
        wait_for(lambda: call(self.d, "GET", "/v1/queue/summary").json["total"]["messages"] == 0, timeout=60,
                 what="an empty queue")
        sys.stderr.write("\n%d messages: injected in %.1f s, all at smtp-sink after %.1f s, queue empty after %.1f s\n"
                         % (self.N, injected, delivered, time.monotonic() - t0))
        self.assertEqual(self.sink_count(), self.N, "smtp-sink received each message once")
        by_rcpt = {}
        for e in delivered_events(self.d, "ok-load"):
            self.assertNotIn(e["recipient"], by_rcpt, "delivered once")
            by_rcpt[e["recipient"]] = e["queue_id"]
        self.assertEqual(by_rcpt, {"ok-load%05d@sink.test" % i: ids[i] for i in range(self.N)})
        m = metrics(self.d)
        self.assertEqual(metric(m, "ricochet_submitted_total"), self.N)
        self.assertEqual(metric(m, "ricochet_deliveries_total", outcome="delivered", kind="none"), self.N)
        self.assertEqual(metric_sum(m, "ricochet_queue_messages"), 0)


if __name__ == "__main__":
    unittest.main()
