"""One-click unsubscribe (RFC 8058) against the real daemon: each recipient's
copy, as the scripted sink receives it, carries its own List-Unsubscribe
(https-style URL on the unsubscribe listener + mailto on the bounce domain)
and List-Unsubscribe-Post. curl does the RFC 8058 POST; GET shows a confirm
page and changes nothing; a forged or altered token gets 404 and changes
nothing; mail to the mailto address through the real bounce listener
unsubscribes too; the recipient is then refused at RCPT and at injection.
The listener's limits: body size, per-IP connections, time-outs, junk."""
import http.client
import re
import smtplib
import socket
import time
import unittest

from harness import Daemon, delivery_config, free_port, wait_for, wait_listening
from sink import Sink
from test_http_api import call, curl, parse_raw_response, raw_exchange

FORM = ["Content-Type: application/x-www-form-urlencoded"]
ONE_CLICK = b"List-Unsubscribe=One-Click"


class At:
    """curl() of test_http_api against another port."""
    def __init__(self, port):
        self.http_port = port


def list_unsubscribe(data):
    """(url, mailto address, post header) from a delivered message."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    lu = re.findall(r"(?im)^List-Unsubscribe: ([^\r\n]*)", unfolded)
    post = re.findall(r"(?im)^List-Unsubscribe-Post: ([^\r\n]*)", unfolded)
    assert len(lu) == 1, lu
    url = re.search(r"<(http[^>]*)>", lu[0]).group(1)
    mailto = re.search(r"<mailto:([^>]*)>", lu[0]).group(1)
    return url, mailto, post


class Unsubscribe(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        self.uport = free_port()
        extra = delivery_config({"sink.test": (self.sink.host, self.sink.port)})
        extra += ('[unsubscribe]\nenabled = true\nlisten = ["127.0.0.1:%d"]\nurl_base = "http://127.0.0.1:%d/u/"\n'
                  'campaigns = ["spring", "summer"]\nrequest_timeout = "2s"\nmax_connections_per_ip = 2\n'
                  % (self.uport, self.uport))
        self.d = Daemon(extra_config=extra).start()
        wait_listening("127.0.0.1", self.uport)
        self.at = At(self.uport)

    def tearDown(self):
        self.d.cleanup()
        self.sink.close()

    def deliver(self, rcpt, campaign="spring", extra_headers=""):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            msg = ("From: news@shop.example\r\nTo: %s\r\nSubject: hi\r\n%s%s\r\nhello\r\n"
                   % (rcpt, "X-Campaign-ID: %s\r\n" % campaign if campaign else "", extra_headers))
            s.sendmail("news@shop.example", [rcpt], msg)
        got = wait_for(lambda: self.sink.received(rcpt), what="delivery to " + rcpt)
        return got[0][2]

    def status(self, addr):
        r = call(self.d, "GET", "/v1/recipients/" + addr)
        return r.json["status"] if r.status == 200 else None

    def unsubscribed_events(self):
        return [e for e in self.d.events() if e["type"] == "unsubscribed"]

    def test_one_click_post_unsubscribes_get_does_not_forgeries_get_404(self):
        data = self.deliver("alice@sink.test")
        url, mailto, post = list_unsubscribe(data)
        self.assertEqual(post, ["List-Unsubscribe=One-Click"])
        self.assertTrue(url.startswith("http://127.0.0.1:%d/u/" % self.uport), url)
        self.assertTrue(mailto.startswith("u-") and mailto.endswith("@bnc.test"), mailto)
        self.assertEqual(url.rsplit("/", 1)[1], mailto[2:].split("@")[0], "one token in both")
        path = url[len("http://127.0.0.1:%d" % self.uport):]
        # Each recipient gets a token of its own.
        other_url, _, _ = list_unsubscribe(self.deliver("bob@sink.test"))
        self.assertNotEqual(other_url, url)
        self.assertIn("Feedback-ID: spring:shop.example:ricochet", data.decode())

        # GET: a confirm page whose form posts the one-click body; nothing changes (link scanners).
        for _ in range(2):
            r = curl(self.at, "GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.header("Content-Type").startswith("text/html"))
            page = r.raw.decode()
            self.assertIn("alice@sink.test", page)
            self.assertRegex(page, r'<form method="post">.*name="List-Unsubscribe" value="One-Click"')
            self.assertIn("frame-ancestors 'none'", r.header("Content-Security-Policy"))
        self.assertEqual(curl(self.at, "HEAD", path).status, 200)
        self.assertIn(self.status("alice@sink.test"), (None, "active"))
        self.assertEqual(self.unsubscribed_events(), [])

        # Forged and altered tokens: 404, nothing changes.
        token = path.rsplit("/", 1)[1]
        flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
        payload_changed = ("0" if token[0] != "0" else "1") + token[1:]
        for bad in (flipped, payload_changed, token[:-3], token + "x", "nothing-here", token.replace("-", "")):
            r = curl(self.at, "POST", "/u/" + bad, raw=ONE_CLICK, headers=FORM)
            self.assertEqual(r.status, 404, (bad, r))
        for bad_path in ("/", "/u/", "/v1/queue", "/u/%s/extra" % token, "/x/" + token):
            self.assertEqual(curl(self.at, "GET", bad_path).status, 404, bad_path)
        # A POST without RFC 8058's body: 400. Another method: 405.
        self.assertEqual(curl(self.at, "POST", path, raw=b"List-Unsubscribe=Yes", headers=FORM).status, 400)
        self.assertEqual(curl(self.at, "POST", path, raw=b"", headers=FORM).status, 400)
        self.assertEqual(curl(self.at, "DELETE", path).status, 405)
        self.assertIn(self.status("alice@sink.test"), (None, "active"))
        self.assertEqual(self.unsubscribed_events(), [])
        self.assertNotIn("<", curl(self.at, "GET", "/u/%3Cscript%3E-aaaaaaaaaaaaaaaa").raw.decode().split("<body>")[1]
                         .replace("<h1>", "").replace("</h1>", "").replace("<p>", "").replace("</p>", "")
                         .replace("</body>", "").replace("</html>", ""))

        # The RFC 8058 POST, as a mailbox provider sends it.
        r = curl(self.at, "POST", path, raw=ONE_CLICK, headers=FORM)
        self.assertEqual(r.status, 200, r)
        self.assertIn("alice@sink.test", r.raw.decode())
        self.assertEqual(self.status("alice@sink.test"), "unsubscribed")
        evs = self.unsubscribed_events()
        self.assertEqual([(e["recipient"], e["via"], e["campaign"]) for e in evs], [("alice@sink.test", "one-click", "spring")])
        changed = [e for e in self.d.events() if e["type"] == "status_changed" and e["recipient"] == "alice@sink.test"]
        self.assertEqual([(e["from"], e["to"]) for e in changed][-1], ("active", "unsubscribed"))
        # Again (a second click, a retry): the same answer, nothing new.
        self.assertEqual(curl(self.at, "POST", path, raw=ONE_CLICK, headers=FORM).status, 200)
        self.assertEqual(len(self.unsubscribed_events()), 1)
        # multipart/form-data, RFC 8058's other encoding, for bob.
        bob_path = other_url[len("http://127.0.0.1:%d" % self.uport):]
        body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n")
        r = curl(self.at, "POST", bob_path, raw=body, headers=["Content-Type: multipart/form-data; boundary=XyZ"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.status("bob@sink.test"), "unsubscribed")

        # Refused from now on: at RCPT and at injection.
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("news@shop.example")
            code, msg = s.rcpt("alice@sink.test")
            self.assertEqual(code, 550, msg)
            self.assertIn(b"unsubscribed", msg)
        r = call(self.d, "POST", "/v1/messages", {"from": "news@shop.example", "to": ["alice@sink.test"], "text": "x"})
        self.assertEqual(r.status, 200, r)  # nothing queued
        self.assertIsNone(r.json["queue_id"])
        self.assertEqual((r.json["recipients"][0]["status"], r.json["recipients"][0]["reason"]),
                         ("refused", "recipient has unsubscribed"))

    def test_mail_to_the_mailto_address_unsubscribes(self):
        _, mailto, _ = list_unsubscribe(self.deliver("carol@sink.test", campaign="summer"))
        # A forged one is refused at RCPT; the real one accepted.
        with smtplib.SMTP("127.0.0.1", self.d.bounce_port, timeout=30) as s:
            s.ehlo("mx.sink.test")
            self.assertEqual(s.mail("carol@sink.test")[0], 250)
            local = mailto.split("@")[0]
            forged = local[:-1] + ("a" if local[-1] != "a" else "b") + "@bnc.test"
            code, msg = s.rcpt(forged)
            self.assertEqual(code, 550, msg)
            code, msg = s.rcpt(mailto.upper())  # some MTAs fold the case of local parts
            self.assertEqual(code, 250, msg)
            code, msg = s.data(b"From: carol@sink.test\r\nSubject: whatever\r\n\r\nplease stop\r\n")
            self.assertEqual(code, 250, msg)
        self.assertEqual(self.status("carol@sink.test"), "unsubscribed")
        evs = self.unsubscribed_events()
        self.assertEqual([(e["recipient"], e["via"], e["campaign"]) for e in evs], [("carol@sink.test", "mailto", "summer")])
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("news@shop.example")
            self.assertEqual(s.rcpt("carol@sink.test")[0], 550)

    def test_a_queued_message_to_someone_who_unsubscribes_is_not_sent(self):
        # Deferred (451 at every try, retried each second), then the recipient unsubscribes.
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            s.sendmail("news@shop.example", ["tempfail-late@sink.test"],
                       "From: news@shop.example\r\nX-Campaign-ID: spring\r\nSubject: x\r\n\r\nhello\r\n")
        wait_for(lambda: [e for e in self.d.events() if e["type"] == "deferred"], what="a first deferral")
        r = call(self.d, "POST", "/v1/recipients/tempfail-late@sink.test/unsubscribe")
        self.assertEqual(r.status, 200, r)
        ev = wait_for(lambda: [e for e in self.d.events() if e["type"] == "suppressed"], what="the recipient dropped")[0]
        self.assertEqual(ev["recipient"], "tempfail-late@sink.test")
        self.assertIn("has unsubscribed", ev["reply"])
        wait_for(lambda: self.d.queue_ids() == [], what="the message gone from the queue")
        tries = self.sink.seen["tempfail-late@sink.test"]
        deferred = len([e for e in self.d.events() if e["type"] == "deferred"])
        self.assertEqual(tries, deferred, "no attempt after the unsubscribe")
        self.assertEqual([e for e in self.d.events() if e["type"] in ("bounced", "expired")], [])

    def test_own_list_unsubscribe_is_kept_and_other_campaigns_get_none(self):
        own = "List-Unsubscribe: <https://shop.example/stop?u=1>\r\n"
        data = self.deliver("dave@sink.test", extra_headers=own).decode()
        self.assertEqual(re.findall(r"(?im)^List-Unsubscribe:[^\r\n]*", data), ["List-Unsubscribe: <https://shop.example/stop?u=1>"])
        self.assertNotIn("List-Unsubscribe-Post", data)
        # A campaign not in unsubscribe.campaigns, and mail without a campaign: none added.
        for rcpt, campaign in (("erin@sink.test", "autumn"), ("frank@sink.test", None)):
            data = self.deliver(rcpt, campaign=campaign).decode()
            self.assertNotIn("List-Unsubscribe", data)
            self.assertEqual("Feedback-ID" in data, campaign is not None)

    def test_listener_limits(self):
        data = self.deliver("gina@sink.test")
        url, _, _ = list_unsubscribe(data)
        path = url[len("http://127.0.0.1:%d" % self.uport):].encode()
        # A body over 8 KiB: 413, nothing read, nothing changed.
        status, _, _ = parse_raw_response(raw_exchange(
            self.uport, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 9000\r\n\r\n" + b"a" * 9000))
        self.assertEqual(status, 413)
        # Junk: 400, and the listener goes on.
        for junk in (b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,
                     b"GET " + path + b" HTTP/1.1\r\nBad Header\r\n\r\n"):
            out = raw_exchange(self.uport, junk)
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), (junk[:20], out[:100]))
        self.assertIn(self.status("gina@sink.test"), (None, "active"))
        # A client that never finishes its request is closed after request_timeout (2 s).
        with socket.create_connection(("127.0.0.1", self.uport), timeout=10) as s:
            t0 = time.monotonic()
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: ex")
            got = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except socket.timeout:
                self.fail("not closed within 10 s")
            except ConnectionResetError:
                pass
            self.assertGreaterEqual(time.monotonic() - t0, 1.5)
            self.assertEqual(got, b"")
        # A third connection from one address: 503; another address is served.
        keep = []
        for _ in range(2):
            c = http.client.HTTPConnection("127.0.0.1", self.uport, timeout=10, source_address=("127.0.0.5", 0))
            c.request("GET", path.decode())
            resp = c.getresponse()
            self.assertEqual(resp.status, 200)
            resp.read()
            keep.append(c)
        status, _, _ = parse_raw_response(raw_exchange(self.uport, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                                                       source="127.0.0.5"))
        self.assertEqual(status, 503)
        self.assertEqual(curl(self.at, "GET", path.decode(), source="127.0.0.6").status, 200)
        for c in keep:
            c.close()
        self.assertIn("unsubscribe.max_connections_per_ip", self.d.log())
        # The public listener needs no token and ignores Host (it is public); the API's checks stay on the API.
        self.assertEqual(curl(self.at, "GET", path.decode(), headers=["Host: unsubscribe.shop.example"]).status, 200)
        self.assertEqual(curl(self.d, "GET", "/healthz", headers=["Host: unsubscribe.shop.example"]).status, 403)


if __name__ == "__main__":
    unittest.main()
