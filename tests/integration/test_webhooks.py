"""Webhooks against a real receiver: Python's ThreadingHTTPServer on loopback,
which checks every Ricochet-Signature (t=UNIXTIME,v1=HMAC-SHA256(secret,
"UNIXTIME." + body)) and records the events it accepts by id. What it gets
is compared with the daemon's events.jsonl: every event once and in order
when all is well; after 500s and a time-out still every event; only the
types asked for; after kill -9 and a restart, every event at least once;
a hanging receiver holds up neither submission nor delivery; and events
older than max_age are dropped and counted."""
import collections
import hashlib
import hmac
import http.server
import json
import os
import smtplib
import sys
import threading
import time
import unittest
import urllib.request

from harness import Daemon, delivery_config, message, wait_for
from sink import Sink

from harness import text_string_to_metric_families

SECRET = "webhook-secret-0123456789abcdef"


class Receiver:
    """The webhook endpoint. Each request is answered by the next mode in
    `plan`, then by `mode`: "ok" (200, events recorded), "fail" (500) or
    "hang" (no answer for `hang_for` seconds, or until close())."""

    def __init__(self, secret=SECRET):
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.plan, self.mode, self.hang_for = [], "ok", 30.0
        self.requests = []                 # (monotonic time, mode, [event ids])
        self.batches = []                  # accepted batches: lists of events
        self.by_id = {}                    # id -> event (accepted)
        self.times = collections.Counter()  # id -> times accepted
        self.problems = []                 # anything a well-behaved sender would not do
        self.hanging = 0
        self.stop = threading.Event()
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the sender asks

            def log_message(self, *args):
                pass

            def answer(self, code):
                body = b'{"ok":true}' if code == 200 else b'{"error":"try later"}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                events = rx.check(self.path, self.headers, body)
                with rx.lock:
                    mode = rx.plan.pop(0) if rx.plan else rx.mode
                    rx.requests.append((time.monotonic(), mode, [e.get("id") for e in events]))
                try:
                    if mode == "hang":
                        with rx.lock:
                            rx.hanging += 1
                        try:
                            rx.stop.wait(rx.hang_for)
                        finally:
                            with rx.lock:
                                rx.hanging -= 1
                        self.answer(503)  # never an acceptance: the sender gave up long ago
                        self.close_connection = True
                    elif mode == "fail":
                        self.answer(500)
                    else:
                        with rx.lock:
                            rx.batches.append(events)
                            for e in events:
                                rx.by_id[e["id"]] = e
                                rx.times[e["id"]] += 1
                        self.answer(200)
                except OSError:
                    self.close_connection = True

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.make_server = lambda port: Server(("127.0.0.1", port), Handler)
        self.server = None
        self.up(0)

    def up(self, port=None):
        """Listens (again, on the same port)."""
        self.server = self.make_server(self.port if port is None else port)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        """Stops listening: connections are refused."""
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def check(self, path, headers, body):
        """The signature, the headers and the body: problems are kept, the events returned."""
        def problem(what):
            with self.lock:
                self.problems.append(what)
        if path != "/hook":
            problem("path %r" % path)
        if headers.get("Content-Type") != "application/json":
            problem("Content-Type %r" % headers.get("Content-Type"))
        if headers.get("User-Agent") != "Ricochet-Webhook/1":
            problem("User-Agent %r" % headers.get("User-Agent"))
        sig = headers.get("Ricochet-Signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        if set(parts) != {"t", "v1"} or not parts["t"].isdigit():
            problem("malformed signature %r" % sig)
        else:
            want = hmac.new(self.secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, parts["v1"]):
                problem("bad signature %r" % sig)
            if abs(time.time() - int(parts["t"])) > 60:
                problem("signature time %s is not now" % parts["t"])
        try:
            events = json.loads(body)
        except ValueError:
            problem("body is not JSON: %r" % body[:100])
            return []
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) and "id" in e for e in events):
            problem("body is not a non-empty array of events: %r" % body[:100])
            return []
        seqs = [e["seq"] for e in events]
        if any(a >= b for a, b in zip(seqs, seqs[1:])):
            problem("batch not in seq order: %r" % seqs)
        return events

    def accepted_ids(self):
        with self.lock:
            return set(self.by_id)

    def close(self):
        self.stop.set()
        if self.server:
            self.down()


def webhook_config(port, events='["*"]', batch=50, timeout="2s", extra=""):
    return ('[[webhook]]\nurl = "http://127.0.0.1:%d/hook"\nsecret = "%s"\nevents = %s\nbatch = %d\ntimeout = "%s"\n%s'
            % (port, SECRET, events, batch, timeout, extra))


def submit(d, rcpts, seq=0):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.sendmail("news@example.com", rcpts, message(seq, campaign="hooks"))


def api(d, method, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.http_port, path), method=method,
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def metrics(d):
    _, text = api(d, "GET", "/metrics")
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def hook_metric(d, rx, name):
    return metrics(d).get((name, (("webhook", "127.0.0.1:%d/hook" % rx.port),)))


def logged(d):
    """The daemon's events.jsonl: {id: event}, and the ids in seq order."""
    evs = d.events()
    return {e["id"]: e for e in evs}, [e["id"] for e in evs]


class Base(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        self.rx = Receiver()
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.cleanup()
        self.rx.close()
        self.sink.close()

    def start(self, **webhook):
        routes = {"sink.test": (self.sink.host, self.sink.port)}
        self.d = Daemon(extra_config=delivery_config(routes) + webhook_config(self.rx.port, **webhook)).start()
        return self.d

    def traffic(self, n, seq0=0):
        """n messages over SMTP to the sink (every fifth one rejected), then waits for their outcomes."""
        rcpts = {"%s-%d@sink.test" % ("reject" if i % 5 == 4 else "ok", seq0 + i) for i in range(n)}
        for i, r in enumerate(sorted(rcpts)):
            submit(self.d, [r], seq0 + i)
        wait_for(lambda: rcpts <= {e["recipient"] for e in self.d.events() if e["type"] in ("delivered", "bounced")},
                 what="%d outcomes" % n)

    def assert_no_problems(self):
        self.assertEqual(self.rx.problems, [])


class Delivery(Base):
    def test_every_event_after_the_webhook_was_added_arrives_once_in_order_and_signed(self):
        # First without the webhook: what happens then is not sent.
        routes = {"sink.test": (self.sink.host, self.sink.port)}
        self.d = Daemon(extra_config=delivery_config(routes)).start()
        self.traffic(5, seq0=0)
        self.d.stop()
        before = {e["id"] for e in self.d.events()}
        self.assertGreater(len(before), 0)
        with open(self.d.config_path, "a") as f:
            f.write("\n" + webhook_config(self.rx.port))
        self.d.start()
        self.traffic(40, seq0=100)
        for i in range(3):
            self.assertEqual(api(self.d, "POST", "/v1/recipients/gone%d@example.com/unsubscribe" % i)[0], 200)
        by_id, order = logged(self.d)
        after = [i for i in order if i not in before]
        self.assertGreater(len(after), 80)
        wait_for(lambda: self.rx.accepted_ids() >= set(after), what="every new event at the receiver")
        by_id, order = logged(self.d)
        after = [i for i in order if i not in before]
        self.assertEqual(self.rx.accepted_ids(), set(after), "nothing from before the webhook was added")
        self.assertEqual([i for i, n in self.rx.times.items() if n != 1], [], "each event once")
        for i in after:
            self.assertEqual(self.rx.by_id[i], by_id[i], "the event as logged")
        self.assert_no_problems()  # every signature good, every batch in seq order
        flat = [e["seq"] for b in self.rx.batches for e in b]
        self.assertEqual(flat, sorted(flat), "batches in seq order too")
        self.assertTrue(all(len(b) <= 50 for b in self.rx.batches))
        self.assertLessEqual({"queued", "delivered", "bounced", "unsubscribed"}, {e["type"] for e in self.rx.by_id.values()})
        wait_for(lambda: hook_metric(self.d, self.rx, "ricochet_webhook_backlog") == 0, what="no backlog")
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_delivered_total"), len(after))
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_failures_total"), 0)
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_dropped_total"), 0)
        cursors = os.listdir(os.path.join(self.d.spool, "webhooks"))
        self.assertEqual(len([c for c in cursors if c.endswith(".cursor")]), 1, cursors)

    def test_500s_and_a_time_out_are_retried_until_everything_arrives(self):
        # 500, 500, then one request left hanging past the 2 s time-out; then
        # 200s. Backoff 5 s, 10 s, (20 s): the batch is accepted 17-37 s in
        # (see the next test for when the try after a time-out comes).
        self.rx.plan = ["fail", "fail", "hang"]
        self.rx.hang_for = 6
        self.start()
        t0 = time.monotonic()
        self.traffic(10, seq0=0)
        wait_for(lambda: len(self.rx.requests) >= 1, what="the first POST")
        self.traffic(10, seq0=100)  # more while the endpoint fails
        wait_for(lambda: self.rx.batches, timeout=70, what="a batch accepted after the failures")
        took = time.monotonic() - t0
        self.traffic(5, seq0=200)
        by_id, order = logged(self.d)
        wait_for(lambda: self.rx.accepted_ids() >= set(order), what="every event")
        by_id, order = logged(self.d)
        self.assertEqual(self.rx.accepted_ids(), set(order))
        self.assertEqual([i for i, n in self.rx.times.items() if n != 1], [], "each accepted once")
        modes = [m for _, m, _ in self.rx.requests]
        self.assertEqual(modes[:4], ["fail", "fail", "hang", "ok"])
        first = self.rx.requests[0][2]
        self.assertEqual([ids for _, _, ids in self.rx.requests[:4]], [first] * 4, "the same batch, sent again")
        gaps = [b[0] - a[0] for a, b in zip(self.rx.requests, self.rx.requests[1:4])]
        self.assertGreater(gaps[0], 4, "backoff 5 s")
        self.assertGreater(gaps[1], 9, "backoff 10 s")
        self.assertGreater(gaps[2], 1.9, "the 2 s time-out")
        self.assertLess(took, 60)
        self.assert_no_problems()
        self.assertGreaterEqual(hook_metric(self.d, self.rx, "ricochet_webhook_failures_total"), 2)
        wait_for(lambda: hook_metric(self.d, self.rx, "ricochet_webhook_delivered_total") == len(order), what="delivered_total")
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_dropped_total"), 0)
        self.assertIn("not accepted (status 500); again in 5s", self.d.log())

    # Regression: a receiver that times out on a kept connection waits for the backoff (it got the batch twice at once).
    def test_a_time_out_on_a_kept_connection_waits_for_the_backoff(self):
        self.rx.plan = ["ok", "hang"]  # the first POST opens the kept connection
        self.rx.hang_for = 4
        self.start()
        submit(self.d, ["ok-1@sink.test"], 1)
        wait_for(lambda: self.rx.batches, what="the first batch accepted")
        wait_for(lambda: hook_metric(self.d, self.rx, "ricochet_webhook_backlog") == 0, what="no backlog")
        submit(self.d, ["ok-2@sink.test"], 2)
        wait_for(lambda: len(self.rx.requests) >= 3, timeout=30, what="the try after the time-out")
        hung, after = self.rx.requests[1], self.rx.requests[2]
        self.assertEqual(hung[1], "hang")
        self.assertEqual(after[2], hung[2], "the same batch")
        self.assertGreater(after[0] - hung[0], 2 + 4.5, "sent again at once, not after the 5 s backoff")
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_failures_total"), 1, "the time-out counted")

    def test_an_events_filter_sends_only_those_types(self):
        self.start(events='["bounced"]', batch=3)
        self.traffic(20, seq0=0)
        self.assertEqual(api(self.d, "POST", "/v1/recipients/gone@example.com/unsubscribe")[0], 200)
        by_id, order = logged(self.d)
        bounced = [i for i in order if by_id[i]["type"] == "bounced"]
        self.assertEqual(len(bounced), 4)
        wait_for(lambda: self.rx.accepted_ids() >= set(bounced), what="the bounces")
        # The cursor moves past what the filter leaves out: no backlog stays.
        wait_for(lambda: hook_metric(self.d, self.rx, "ricochet_webhook_backlog") == 0, what="no backlog")
        self.assertEqual(self.rx.accepted_ids(), set(bounced))
        self.assertEqual({e["type"] for e in self.rx.by_id.values()}, {"bounced"})
        self.assertTrue(all(len(b) <= 3 for b in self.rx.batches))
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_delivered_total"), 4)
        self.assert_no_problems()


class Durability(Base):
    def test_kill_9_with_events_pending_loses_none(self):
        self.rx.plan, self.rx.mode = ["ok"], "fail"  # one batch accepted, then 500s
        self.start()
        self.traffic(10, seq0=0)
        wait_for(lambda: len(self.rx.requests) >= 2, what="a failed POST")
        self.d.kill9()  # in the backoff after a 500
        self.rx.mode = "hang"
        self.rx.hang_for = 60
        self.d.start()
        self.traffic(10, seq0=100)
        wait_for(lambda: self.rx.hanging, what="a POST in flight")
        self.d.kill9()  # with a POST in flight
        self.rx.down()
        self.d.start()
        self.traffic(10, seq0=200)
        wait_for(lambda: "not accepted (cannot connect to 127.0.0.1:%d/hook" % self.rx.port in self.d.log(),
                 what="a refused connection")
        self.d.kill9()  # with the receiver down
        self.assertEqual(self.rx.accepted_ids(), set(self.rx.requests[0][2]), "only the first batch")
        self.rx.mode = "ok"
        self.rx.up()
        self.d.start()
        self.traffic(5, seq0=300)
        by_id, order = logged(self.d)
        wait_for(lambda: self.rx.accepted_ids() >= set(order), what="every event after the restarts")
        by_id, order = logged(self.d)
        missing = set(order) - self.rx.accepted_ids()
        self.assertEqual(missing, set(), "events lost")
        self.assertEqual(self.rx.accepted_ids() - set(order), set(), "events that are not in the log")
        for i in order:
            self.assertEqual(self.rx.by_id[i], by_id[i])
        self.assertGreater(len(order), 40)
        self.assert_no_problems()
        self.assertEqual([m for _, m, _ in self.rx.requests][:3], ["ok", "fail", "hang"])
        sys.stderr.write("\n%d events, each at least once; %d sent twice or more\n"
                         % (len(order), len([i for i, n in self.rx.times.items() if n > 1])))
        # The cursor file: one per endpoint, at most the newest seq.
        wdir = os.path.join(self.d.spool, "webhooks")
        cursors = [c for c in os.listdir(wdir) if c.endswith(".cursor")]
        self.assertEqual(len(cursors), 1, os.listdir(wdir))
        with open(os.path.join(wdir, cursors[0])) as f:
            self.assertLessEqual(int(f.read()), max(e["seq"] for e in by_id.values()))


class Isolation(Base):
    def test_a_hanging_endpoint_holds_up_neither_submission_nor_delivery(self):
        self.rx.mode = "hang"
        self.rx.hang_for = 60
        self.start(timeout="30s")  # a POST waits up to 30 s
        submit(self.d, ["ok-first@sink.test"])
        wait_for(lambda: self.rx.hanging, what="a POST hanging")
        t0 = time.monotonic()
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            for i in range(100):
                s.sendmail("news@example.com", ["ok-%d@sink.test" % i], message(i))
        submitted = time.monotonic() - t0
        wait_for(lambda: len(self.sink.received("ok-")) == 101, timeout=30, what="every message delivered")
        delivered = time.monotonic() - t0
        status, _ = api(self.d, "GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(self.rx.hanging, 1, "the webhook POST was hanging all along")
        self.assertEqual(len(self.rx.requests), 1)
        sys.stderr.write("\n100 messages with the webhook hanging: submitted in %.2f s, delivered in %.2f s\n"
                         % (submitted, delivered))
        self.assertLess(submitted, 10)
        self.assertLess(delivered, 15)
        # Every message's queued and delivered events wait behind the hanging
        # POST (a delivery's event follows its 250 within 20 ms: waited for).
        wait_for(lambda: (hook_metric(self.d, self.rx, "ricochet_webhook_backlog") or 0) >= 2 * 101 - 1,
                 what="the backlog of every event")
        self.assertEqual(self.rx.accepted_ids(), set())


class MaxAge(Base):
    def test_events_older_than_max_age_are_dropped_and_counted(self):
        self.rx.mode = "fail"
        self.start(extra='max_age = "1s"\n')
        self.traffic(3, seq0=0)
        wait_for(lambda: (hook_metric(self.d, self.rx, "ricochet_webhook_dropped_total") or 0) > 0, timeout=30,
                 what="events dropped after max_age")
        # Every event of the traffic goes the same way: all dropped, none left.
        n = len(self.d.events())
        wait_for(lambda: hook_metric(self.d, self.rx, "ricochet_webhook_dropped_total") == n and
                 hook_metric(self.d, self.rx, "ricochet_webhook_backlog") == 0, timeout=30, what="all %d dropped" % n)
        self.assertIn("older than max_age 1s", self.d.log())
        self.assertGreaterEqual(hook_metric(self.d, self.rx, "ricochet_webhook_failures_total"), 2)
        self.assertEqual(hook_metric(self.d, self.rx, "ricochet_webhook_delivered_total"), 0)
        self.assertEqual(self.rx.accepted_ids(), set())
        first = {i for _, _, ids in self.rx.requests for i in ids}
        self.assertEqual(first, {e["id"] for e in self.d.events()}, "each was tried before it was dropped")
        # The receiver comes back: what was dropped is not sent again; what comes next is.
        self.rx.mode = "ok"
        done = {e["id"] for e in self.d.events()}
        submit(self.d, ["ok-later@sink.test"], 99)
        wait_for(lambda: [e for e in self.d.events() if e["type"] == "delivered" and e["recipient"] == "ok-later@sink.test"],
                 what="the later delivery")
        later = {e["id"] for e in self.d.events()} - done
        wait_for(lambda: self.rx.accepted_ids() >= later, timeout=40, what="the later events")
        self.assertEqual(self.rx.accepted_ids() & first, set(), "dropped events are not sent again")
        self.assert_no_problems()


if __name__ == "__main__":
    unittest.main()
