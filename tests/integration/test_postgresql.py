"""Several nodes on one PostgreSQL database (server.state = "postgresql://..."),
against a real server this test starts (tests/integration/pg.py) and stops:
  - a hard bounce from a trusted domain seen by node A makes node B refuse
    the address at RCPT within 1 s (LISTEN/NOTIFY), and an unsubscribe or a
    suppression import on B is refused by A;
  - a DSN for A's message arriving at B is read by B (the nodes share the
    VERP secret; one with another is named at start), counted once when
    it comes to both;
  - a campaign paused (or resumed) on one node is paused on the other;
  - GET /v1/events on either node shows both nodes' events, paged by one
    shared cursor;
  - stats asked of either node add up to what the sink received from both;
  - the database stopped for 30 s while both nodes take and deliver mail:
    /healthz says so, every decision waits in the nodes' journals, and once
    it is back both catch up: none lost, none counted twice;
  - a COMMIT that went through but whose answer a proxy cut is replayed
    from the journal and left out (its batch token), not counted twice;
  - a network path to the server that goes silent (a proxy that stops
    forwarding, holding its connections open) stalls nothing for longer
    than server.state_timeout: delivery goes on, /healthz says so, the
    decisions wait in the journal, and the node (and its listener) connect
    again once the path is back;
  - two nodes starting at once against an empty database migrate it once;
  - a second process with a running node's name (so its number) refuses
    to start, and starts once the first was killed;
  - `ricochetctl state migrate` moves a SQLite node's state in (once);
  - sslmode=verify-full connects over TLS with the right CA and refuses
    another;
  - the storage conformance tests (unit_state) run against this server too."""
import json
import os
import smtplib
import socket
import struct
import subprocess
import threading
import time
import unittest
import urllib.request

from harness import BIN, Daemon, delivery_config, message, wait_for
from pg import Postgres
from sink import Sink
from test_dsn import DSN
from test_http_suppressions import rcpt_code


def submit(d, rcpts, campaign="c1"):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("client.test")
        refused = s.sendmail("news@shop.example", rcpts, message(1, campaign=campaign))
        assert not refused, refused


def healthz(d):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % d.http_port, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class CommitAnswerLost:
    """A TCP proxy between a node and PostgreSQL that, once armed, forwards
    the next COMMIT to the server, lets the server commit it, and then cuts
    the connection instead of passing the answer on: the node cannot know
    its batch went in. (Plain protocol: the proxied URL says sslmode=disable.)"""

    def __init__(self, port):
        self.upstream = port
        self.armed = threading.Event()
        self.dropped = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
            cut = threading.Event()
            threading.Thread(target=self._client_to_server, args=(c, s, cut), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(c, s, cut), daemon=True).start()

    @staticmethod
    def _read(sock, n):
        buf = b""
        while len(buf) < n:
            part = sock.recv(n - len(buf))
            if not part:
                raise ConnectionError
            buf += part
        return buf

    def _client_to_server(self, c, s, cut):
        try:
            head = self._read(c, 4)  # the startup message: a length, no type
            s.sendall(head + self._read(c, struct.unpack("!I", head)[0] - 4))
            while True:
                head = self._read(c, 5)
                body = self._read(c, struct.unpack("!I", head[1:])[0] - 4)
                if head[:1] == b"Q" and body.rstrip(b"\0").upper() == b"COMMIT" and self.armed.is_set():
                    self.armed.clear()
                    cut.set()  # before the server can answer
                s.sendall(head + body)
        except (OSError, ConnectionError):
            pass

    def _server_to_client(self, c, s, cut):
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                if cut.is_set():  # the server's answer to COMMIT: it committed; the node never hears
                    self.dropped += 1
                    break
                c.sendall(data)
        except OSError:
            pass
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.closed = True
        self.srv.close()


class SilentPath:
    """A TCP proxy to PostgreSQL that, while frozen, forwards nothing in
    either direction and answers nothing, holding every connection open: a
    partition where packets vanish. Connections frozen stay dead after the
    thaw (their bytes are gone); new ones are forwarded again."""

    def __init__(self, port):
        self.upstream = port
        self.frozen = threading.Event()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.socks.append(c)
            if self.frozen.is_set():
                continue  # accepted by the kernel, then nothing
            s = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
            self.socks.append(s)
            dead = threading.Event()
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b, dead), daemon=True).start()

    def _pipe(self, a, b, dead):
        a.settimeout(0.1)
        while True:
            if self.frozen.is_set():
                dead.set()
            if dead.is_set():
                time.sleep(0.1)  # read nothing, send nothing, close nothing
                continue
            try:
                data = a.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                b.shutdown(socket.SHUT_WR)
                return
            if self.frozen.is_set():
                dead.set()  # dropped on the way
                continue
            b.sendall(data)

    def close(self):
        self.srv.close()
        for x in self.socks:
            x.close()


class SeveralNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()
        cls.ca = cls.pg.enable_tls()  # every test's nodes connect over TLS (libpq's sslmode=prefer)

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()

    def setUp(self):
        self.db = "t_" + self.id().split(".")[-1][:40].lower()
        self.url = self.pg.new_database(self.db)
        self.sink = Sink()
        self.nodes = []

    def tearDown(self):
        for d in self.nodes:
            d.cleanup()
        self.sink.close()

    # Every node signs return paths with the same secret: a DSN may come back
    # to any of them.
    secret = "5f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f"

    def node(self, start=True, secret=None):
        hop = (self.sink.host, self.sink.port)
        d = Daemon(state=self.url, extra_config=delivery_config({"sink.test": hop, "gmail.com": hop}),
                   bounce_extra='secret = "%s"\n' % (secret or self.secret))
        self.nodes.append(d)
        return d.start() if start else d

    def sql(self, q):
        return self.pg.psql(q, db=self.db)

    def test_a_bounce_on_one_node_is_refused_at_rcpt_on_the_other_within_a_second(self):
        a, b = self.node(), self.node()
        self.assertEqual(rcpt_code(b, "reject-x@gmail.com")[0], 250)
        submit(a, ["reject-x@gmail.com"])
        # The moment the decision is in the shared database...
        wait_for(lambda: self.sql("SELECT status FROM recipients WHERE address = 'reject-x@gmail.com'") == [["held"]],
                 what="held in the database")
        t0 = time.monotonic()
        # ... node B, which never saw that message, refuses the address within 1 s.
        wait_for(lambda: rcpt_code(b, "reject-x@gmail.com")[0] == 550, timeout=1.0, what="B refuses at RCPT")
        self.assertLess(time.monotonic() - t0, 1.0)
        code, msg = rcpt_code(b, "reject-x@gmail.com")
        self.assertIn("recipient is held after 1 bounce(s) (last: user-unknown)", msg)
        self.assertEqual(b.ctl_json("recipient", "show", "reject-x@gmail.com")["status"], "held",
                         "any node answers for all")

        # An unsubscribe on B (the operator, through B's control socket) is refused by A.
        b.ctl("recipient", "unsubscribe", "leaver@sink.test")
        wait_for(lambda: rcpt_code(a, "leaver@sink.test")[0] == 550, timeout=1.0, what="A refuses the unsubscribed")
        # An imported suppression on B (the API), and its removal.
        req = urllib.request.Request("http://127.0.0.1:%d/v1/suppressions" % b.http_port, method="PUT",
                                     data=b'{"entry":"@blocked.example"}\n',
                                     headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(json.loads(r.read())["imported"], 1)
        wait_for(lambda: rcpt_code(a, "anyone@blocked.example")[0] == 550, timeout=1.0, what="A honours B's import")
        self.assertIn("on the suppression list (@blocked.example)", rcpt_code(a, "anyone@blocked.example")[1])
        req = urllib.request.Request("http://127.0.0.1:%d/v1/suppressions/@blocked.example" % b.http_port,
                                     method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()
        wait_for(lambda: rcpt_code(a, "anyone@blocked.example")[0] == 250, timeout=1.0, what="A lets it through again")
        # The operator clears the held address on A: B accepts it again.
        a.ctl("recipient", "clear", "reject-x@gmail.com")
        wait_for(lambda: rcpt_code(b, "reject-x@gmail.com")[0] == 250, timeout=1.0, what="B accepts the cleared")
        # Each node has its own number, and its queue ids carry it.
        nodes = self.sql("SELECT id, name FROM nodes ORDER BY id")
        self.assertEqual([n[0] for n in nodes], ["1", "2"])

    def test_a_dsn_for_one_nodes_message_may_arrive_at_the_other(self):
        a, b = self.node(), self.node()
        submit(a, ["ok-dsn@sink.test"], campaign="fall")
        wait_for(lambda: self.sink.received("ok-dsn@sink.test"), what="delivery")
        verp = self.sink.received("ok-dsn@sink.test")[0][0]
        for d in (b, a):  # the same report twice, to each node: counted once
            with smtplib.SMTP("127.0.0.1", d.bounce_port, timeout=30) as s:
                s.ehlo("mx.sink.test")
                s.mail("")
                self.assertEqual(s.rcpt(verp)[0], 250)
                self.assertEqual(s.data(DSN.format(verp=verp, rcpt="ok-dsn@sink.test").encode())[0], 250)
        ev = wait_for(lambda: [e for e in b.events() if e["type"] == "bounced"], what="B reads A's bounce")[0]
        self.assertEqual((ev["recipient"], ev["campaign"], ev["sync"], ev["category"]),
                         ("ok-dsn@sink.test", "fall", False, "user-unknown"))
        wait_for(lambda: [e for e in a.events() if e["type"] == "bounced"], what="A reads the second copy")
        st = a.ctl_json("recipient", "show", "ok-dsn@sink.test")
        self.assertEqual((st["status"], st["bounce_count"]), ("bounced", 1))
        self.assertEqual(self.sql("SELECT count(*) FROM final_failures"), [["1"]])

    def test_a_node_with_another_verp_secret_is_named_at_start(self):
        self.node()
        b = self.node(secret="00000000000000000000000000000000")
        self.assertRegex(b.log(), r"bounce_listener\.secret differs from node 1 \([^:)]+:/tmp/")

    def test_a_campaign_paused_on_one_node_is_paused_on_the_other(self):
        a, b = self.node(), self.node()

        def data_reply(d, seq):
            with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                s.ehlo("campaign.test")
                s.mail("news@shop.example")
                s.rcpt("ok-%d@sink.test" % seq)
                code, msg = s.data(message(seq, campaign="spring"))
                return code, msg.decode()
        self.assertEqual(data_reply(b, 1)[0], 250)
        req = urllib.request.Request("http://127.0.0.1:%d/v1/campaigns/spring/pause" % a.http_port, method="POST")
        urllib.request.urlopen(req, timeout=30).close()
        # B never saw the pause: it hears of it, and refuses the campaign's mail.
        wait_for(lambda: data_reply(b, 2)[0] == 451, timeout=1.0, what="B pauses the campaign")
        self.assertEqual(data_reply(b, 3), (451, "4.7.1 campaign spring paused: paused by an operator"))
        self.assertEqual(b.ctl_json("campaign", "show", "spring")["state"], "paused")
        req = urllib.request.Request("http://127.0.0.1:%d/v1/campaigns/spring/resume" % a.http_port, method="POST")
        urllib.request.urlopen(req, timeout=30).close()
        wait_for(lambda: data_reply(b, 4)[0] == 250, timeout=1.0, what="B resumes the campaign")
        wait_for(lambda: len(self.sink.messages) == 2, what="the two accepted messages delivered")

    def test_either_node_shows_every_nodes_events_from_one_cursor(self):
        a, b = self.node(), self.node()
        submit(a, ["ok-ea@sink.test"])
        submit(b, ["ok-eb@sink.test"])
        wait_for(lambda: len(self.sink.messages) == 2, what="both delivered")

        def read(d, after=0, types=None, limit=100):
            q = "after=%d&limit=%d" % (after, limit) + ("&types=" + types if types else "")
            with urllib.request.urlopen("http://127.0.0.1:%d/v1/events?%s" % (d.http_port, q), timeout=30) as r:
                return json.loads(r.read())
        for d in (a, b):
            got = wait_for(lambda: (lambda p: len([e for e in p["events"] if e["type"] == "delivered"]) == 2 and p)(
                read(d, types="queued,delivered")), what="both nodes' deliveries on one node")
            self.assertEqual(sorted(e["recipient"] for e in got["events"] if e["type"] == "delivered"),
                             ["ok-ea@sink.test", "ok-eb@sink.test"])
            self.assertEqual({e["type"] for e in got["events"]}, {"queued", "delivered"})
        # Paging by the shared cursor: every event once, in order, from either node.
        everything = read(a, limit=10000)["events"]
        seen, cursor = [], 0
        while True:
            page = read(b, after=cursor, limit=3)
            seen += page["events"]
            self.assertGreaterEqual(page["last_seq"], cursor)
            cursor = page["last_seq"]
            if not page["more"]:
                break
        self.assertEqual([e["id"] for e in seen], [e["id"] for e in everything])
        self.assertEqual(len({e["id"] for e in seen}), len(seen))
        # Each node's own log has only its own events.
        with open(a.events_path) as f:
            self.assertNotIn("ok-eb@sink.test", f.read())

    def test_stats_over_both_nodes_add_up_to_what_the_sink_received(self):
        a, b = self.node(), self.node()
        for i in range(15):
            submit(a, ["ok-a%d@sink.test" % i], campaign="spring")
        for i in range(10):
            submit(b, ["ok-b%d@sink.test" % i, "reject-b%d@sink.test" % i], campaign="spring")
        wait_for(lambda: len(self.sink.messages) == 25, what="25 deliveries")

        def counts(d):
            rows = d.ctl_json("stats", "--campaign", "spring")["by_campaign"]
            return rows and (rows[0]["sent"], rows[0]["delivered"], rows[0]["hard"])
        for d in (a, b):
            wait_for(lambda: counts(d) == (35, 25, 10), what="stats on every node")
        self.assertEqual(len(self.sink.messages), 25)
        self.assertEqual(self.sql("SELECT count(*), count(DISTINCT queue_id) FROM messages"), [["25", "25"]],
                         "no queue id made twice across the nodes")

    def test_the_database_stopped_for_30s_loses_no_decision_and_counts_none_twice(self):
        a, b = self.node(), self.node()
        rcpts = {a: [], b: []}

        def send(tag):
            for d, name in ((a, "a"), (b, "b")):
                for i in range(5):
                    batch = ["ok-%s%s%d@sink.test" % (name, tag, i), "reject-%s%s%d@gmail.com" % (name, tag, i)]
                    submit(d, batch)
                    rcpts[d] += batch
        send("before")
        wait_for(lambda: len(self.sink.messages) == 10, what="the first deliveries")
        stopped = time.monotonic()
        self.pg.stop()
        # While it is down: both nodes take mail (250: the decisions wait in
        # their journals) and deliver it, and /healthz says what is wrong.
        send("during")
        wait_for(lambda: len(self.sink.messages) == 20, what="deliveries while the database is down")
        for d in (a, b):
            status, body = wait_for(lambda: (lambda h: h[0] == 503 and h)(healthz(d)), what="healthz failing")
            self.assertIn("PostgreSQL unreachable", body["state"])
            self.assertTrue(os.path.getsize(os.path.join(d.spool, "decisions.pending")) > 0)
        self.assertEqual(rcpt_code(a, "reject-abefore0@gmail.com")[0], 550, "the RCPT check holds while it is down")
        # The scenario's 30 seconds of outage (not a synchronisation wait).
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        self.pg.start()
        for d in (a, b):
            wait_for(lambda: healthz(d)[0] == 200, timeout=60, what="healthz ok again")
            wait_for(lambda: os.path.getsize(os.path.join(d.spool, "decisions.pending")) == 0, what="journal replayed")
        total = len(rcpts[a]) + len(rcpts[b])
        rejects = [r for d in (a, b) for r in rcpts[d] if r.startswith("reject")]
        # Every decision once: one queued per recipient, one delivered per
        # message the sink has, one bounce per rejected recipient.
        self.assertEqual(self.sql("SELECT type, count(*) FROM decisions GROUP BY type ORDER BY type"),
                         [["bounced", str(len(rejects))], ["delivered", "20"], ["queued", str(total)]])
        self.assertEqual(self.sql("SELECT count(*) FROM final_failures"), [[str(len(rejects))]])
        self.assertEqual(self.sql("SELECT count(*), min(bounce_count), max(bounce_count) FROM recipients"
                                  " WHERE status = 'held'"), [[str(len(rejects)), "1", "1"]])
        stats = a.ctl_json("stats")["by_campaign"][0]
        self.assertEqual((stats["sent"], stats["delivered"], stats["hard"]), (total, 20, len(rejects)))
        # Held during the outage on A: B refuses it now (A's replay changed
        # its status; B heard it, or reloaded its list when it reconnected).
        wait_for(lambda: rcpt_code(b, "reject-aduring0@gmail.com")[0] == 550, what="B refuses what A held meanwhile")
        # A's events of the outage reach the shared event view (copied from its log once the server is back).
        def delivered_seen_on_b():
            with urllib.request.urlopen("http://127.0.0.1:%d/v1/events?types=delivered&limit=10000" % b.http_port,
                                        timeout=30) as r:
                return sorted(e["recipient"] for e in json.loads(r.read())["events"])
        wait_for(lambda: len(delivered_seen_on_b()) == 20, what="every delivery in the shared event view")
        self.assertEqual(delivered_seen_on_b(), sorted(r for d in (a, b) for r in rcpts[d] if r.startswith("ok")))

    def test_a_batch_committed_whose_answer_was_lost_is_not_recorded_twice(self):
        proxy = CommitAnswerLost(self.pg.port)
        self.addCleanup(proxy.close)
        self.url = self.url.replace(":%d/" % self.pg.port, ":%d/" % proxy.port) + "?sslmode=disable"
        a = self.node()
        proxy.armed.set()
        submit(a, ["ok-lost@sink.test", "reject-lost@gmail.com"])
        wait_for(lambda: proxy.dropped == 1, what="a COMMIT answer cut")
        wait_for(lambda: len(self.sink.messages) == 1, what="the delivery")
        # The node journaled the batch it could not confirm, reconnected and
        # replayed it; the database had it already: left out, not doubled.
        wait_for(lambda: "cannot record" in a.log(), what="the node journals the batch")
        wait_for(lambda: healthz(a)[0] == 200 and
                 os.path.getsize(os.path.join(a.spool, "decisions.pending")) == 0, what="journal replayed")
        wait_for(lambda: self.sql("SELECT count(*) FROM decisions WHERE type <> 'queued'") == [["2"]],
                 what="the delivery and the bounce recorded")
        self.assertEqual(self.sql("SELECT type, count(*) FROM decisions GROUP BY type ORDER BY type"),
                         [["bounced", "1"], ["delivered", "1"], ["queued", "2"]])
        self.assertEqual(a.ctl_json("recipient", "show", "reject-lost@gmail.com")["bounce_count"], 1)
        # The address's change to held is published once, by the replay
        # (the attempt that made it heard of no success).
        wait_for(lambda: [e["to"] for e in a.events() if e["type"] == "status_changed"] == ["held"],
                 what="one status_changed for the held address")
        held = [e for e in a.events() if e["type"] == "status_changed"][0]
        self.assertEqual((held["recipient"], held["from"], held["bounce_count"]), ("reject-lost@gmail.com", "active", 1))
        self.assertIn("already recorded", a.log())

    def test_a_path_to_the_server_that_goes_silent_stalls_nothing_longer_than_the_timeout(self):
        proxy = SilentPath(self.pg.port)
        self.addCleanup(proxy.close)
        self.url = self.url.replace(":%d/" % self.pg.port, ":%d/" % proxy.port) + "?sslmode=disable"
        hop = (self.sink.host, self.sink.port)
        a = Daemon(state=self.url, server_extra='state_timeout = "2s"\n',
                   extra_config=delivery_config({"sink.test": hop, "gmail.com": hop}),
                   bounce_extra='secret = "%s"\n' % self.secret)
        self.nodes.append(a)
        a.start()
        submit(a, ["ok-before@sink.test"])
        wait_for(lambda: self.sql("SELECT count(*) FROM decisions WHERE type = 'delivered'") == [["1"]],
                 what="the first delivery recorded")
        proxy.frozen.set()
        t0 = time.monotonic()
        submit(a, ["ok-during@sink.test", "reject-during@gmail.com"])
        wait_for(lambda: len(self.sink.messages) == 2, what="delivery goes on")
        # The statement that got no answer is given up after 2 s (+5): the
        # node says so and keeps its decisions in the journal.
        wait_for(lambda: healthz(a)[0] == 503, timeout=30, what="/healthz says the store is unreachable")
        self.assertIn("PostgreSQL", healthz(a)[1]["state"])
        journal = os.path.join(a.spool, "decisions.pending")
        wait_for(lambda: os.path.getsize(journal) > 0, timeout=30, what="decisions wait in the journal")
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn("no answer from PostgreSQL within 7 s", a.log())
        proxy.frozen.clear()
        wait_for(lambda: healthz(a)[0] == 200 and os.path.getsize(journal) == 0, timeout=60, what="caught up")
        self.assertEqual(self.sql("SELECT type, count(*) FROM decisions GROUP BY type ORDER BY type"),
                         [["bounced", "1"], ["delivered", "2"], ["queued", "3"]])
        # The listener found its connection dead too (it asks when quiet),
        # and hears changes again.
        self.assertEqual(rcpt_code(a, "later@sink.test")[0], 250)
        self.sql("INSERT INTO recipients(address, status, updated_ms) VALUES ('later@sink.test', 'unsubscribed', 1)")
        wait_for(lambda: rcpt_code(a, "later@sink.test")[0] == 550, timeout=20, what="the listener hears again")
        a.stop()
        self.assertEqual(a.proc.returncode, 0, "a clean stop, not a kill")

    def test_sslmode_verify_full_checks_the_servers_certificate(self):
        base = self.url
        self.url = base + "?sslmode=verify-full&sslrootcert=" + self.ca
        a = self.node()
        rows = self.sql("SELECT a.application_name, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                        " WHERE a.datname = '%s' ORDER BY 1" % self.db)
        self.assertIn(["ricochetd", "t"], rows)
        self.assertIn(["ricochetd listener", "t"], [[n[:18], ssl] for n, ssl in rows])
        self.assertEqual(healthz(a)[0], 200)
        # Another CA: the node refuses to start, and says why (without the password).
        other = os.path.join(a.dir, "other-ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other",
                        "-keyout", os.path.join(a.dir, "other.key"), "-out", other], check=True, capture_output=True)
        self.url = base + "?sslmode=verify-full&sslrootcert=" + other
        b = self.node(start=False)
        with self.assertRaises(RuntimeError):
            b.start()
        self.assertIn("certificate verify failed", b.log())
        self.assertNotIn(self.pg.password, b.log())
        self.assertIn("ricochet:***@", b.log())

    def test_a_second_process_with_a_running_nodes_name_refuses_to_start(self):
        hop = (self.sink.host, self.sink.port)
        def twin():
            d = Daemon(state=self.url, server_extra='node_name = "twin"\nstate_timeout = "2s"\n',
                       extra_config=delivery_config({"sink.test": hop}), bounce_extra='secret = "%s"\n' % self.secret)
            self.nodes.append(d)
            return d
        a, b = twin(), twin()
        a.start()
        with self.assertRaises(RuntimeError):
            b.start()
        self.assertIn("node 1 is in use by another running ricochetd with the same node name", b.log())
        self.assertEqual(self.sql("SELECT id, name FROM nodes"), [["1", "twin"]])
        # Killed, not stopped: the server lets the number go with the session.
        a.proc.kill()
        a.proc.wait()
        c = twin()
        c.start()
        self.assertIn("state: node 1 (twin)", c.log())
        submit(c, ["ok-twin@sink.test"])
        wait_for(lambda: len(self.sink.messages) == 1, what="the twin delivers")

    def test_two_nodes_starting_at_once_on_an_empty_database_migrate_it_once(self):
        a, b = self.node(start=False), self.node(start=False)
        ts = [threading.Thread(target=d.start) for d in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for d in (a, b):
            self.assertIsNone(d.proc.poll(), d.log()[-2000:])
        versions = self.sql("SELECT version FROM ricochet_schema ORDER BY version")
        self.assertEqual(versions, [["1"], ["2"]], "each version applied once")
        self.assertEqual(len(self.sql("SELECT DISTINCT id FROM nodes")), 2)
        self.assertEqual(healthz(a)[0], 200)

    def test_the_shared_event_view_survives_retention_and_a_wiped_spool(self):
        a = self.node()
        def shared(types="delivered"):
            with urllib.request.urlopen("http://127.0.0.1:%d/v1/events?types=%s&limit=10000" % (a.http_port, types),
                                        timeout=30) as r:
                return json.loads(r.read())["events"]
        submit(a, ["ok-1@sink.test"])
        wait_for(lambda: [e["recipient"] for e in shared()] == ["ok-1@sink.test"], what="the first delivery shared")
        # Retention deleted every row of this node; the node restarts: its
        # copy goes on from where it stopped (kept in nodes), not from its
        # log's start, so old events do not come back as new ones.
        a.stop()
        self.sql("DELETE FROM events")
        a.start()
        submit(a, ["ok-2@sink.test"])
        wait_for(lambda: [e["recipient"] for e in shared()] == ["ok-2@sink.test"], what="only the new delivery")
        before = max(e["seq"] for e in shared("queued,delivered"))
        # The spool wiped (events.seq with it) and the log gone: numbering
        # continues above the node's rows, so its new events are not taken
        # for ones the table has.
        a.stop()
        os.unlink(os.path.join(a.spool, "events.seq"))
        os.unlink(a.events_path)
        a.start()
        submit(a, ["ok-3@sink.test"])
        wait_for(lambda: [e["recipient"] for e in shared()] == ["ok-2@sink.test", "ok-3@sink.test"],
                 what="the delivery after the wipe shared")
        self.assertGreater(min(e["seq"] for e in shared() if e["recipient"] == "ok-3@sink.test"), before)

    def test_a_sqlite_node_moves_its_state_into_the_shared_database_once(self):
        single = Daemon(extra_config=delivery_config({"sink.test": (self.sink.host, self.sink.port),
                                                       "gmail.com": (self.sink.host, self.sink.port)}))
        self.nodes.append(single)
        single.start()
        submit(single, ["ok-s@sink.test", "reject-s@gmail.com"], campaign="old")
        wait_for(lambda: (lambda r: (r["delivered"], r["hard"]) == (1, 1))(
            single.ctl_json("stats", "--campaign", "old")["by_campaign"][0]), what="delivery and bounce recorded")
        single.ctl("recipient", "unsubscribe", "gone@sink.test")
        before = single.ctl_json("stats")
        single.stop()
        r = single.ctl("state", "migrate", "--to", self.url, "--json")
        moved = json.loads(r.stdout)
        self.assertEqual(moved["rows"]["recipients"], 2)
        self.assertGreaterEqual(moved["rows"]["decisions"], 4)
        self.assertNotIn(self.pg.password, r.stdout + r.stderr)
        again = single.ctl("state", "migrate", "--to", self.url, check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("moved into this database already", again.stderr)
        # A node on the shared database knows what the single node knew.
        n = self.node()
        self.assertEqual(n.ctl_json("stats"), before)
        self.assertIn("held after 1 bounce", rcpt_code(n, "reject-s@gmail.com")[1])
        self.assertIn("has unsubscribed", rcpt_code(n, "gone@sink.test")[1])

    def test_the_storage_conformance_tests_pass_on_this_server(self):
        # The same tests every backend passes (recipient rules, stats,
        # series, suppressions, retention), on a database of their own each.
        env = dict(os.environ, RICOCHET_TEST_PG=self.pg.url("postgres").rsplit("/", 1)[0])
        unit = os.path.join(BIN, "unit_state")
        r = subprocess.run([unit, "--gtest_filter=*postgresql*:*Postgres*"], env=env, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-2000:])
        self.assertNotIn("[  SKIPPED ]", r.stdout)
        self.assertIn("PASSED", r.stdout)


if __name__ == "__main__":
    unittest.main()
