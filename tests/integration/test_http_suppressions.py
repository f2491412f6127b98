"""Suppressions over the HTTP API against the real daemon, and the API over
TLS: an import (JSON lines and CSV, with bad lines) is honoured at once by
the SMTP submission port (RCPT refused, smtplib as the client) and by
injection, `@domain` entries included, survives a restart, exports in both
formats, and a DELETE lets the address through again (a held recipient is
cleared too). Then the API with http.tls_cert/tls_key: curl verifies the
certificate, and plain HTTP to the TLS port gets no answer."""
import json
import os
import smtplib
import subprocess
import unittest

from harness import Daemon
from test_http_api import call, curl


def rcpt_code(d, address):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("sender@shop.example")
        code, msg = s.rcpt(address)
        s.rset()
        return code, msg.decode()


class Suppressions(unittest.TestCase):
    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.stop()
        self.d.cleanup()

    def put(self, body, ctype):
        return curl(self.d, "PUT", "/v1/suppressions", raw=body.encode(), headers=["Content-Type: " + ctype])

    def test_import_is_honoured_at_rcpt_and_injection_and_survives_a_restart(self):
        r = self.put('{"entry":"Blocked@Shop.example","reason":"asked by phone"}\n'
                     '{"email":"@spam.example"}\nnot json\n{"entry":"no-at-sign"}\n', "application/x-ndjson")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["imported"], 2)
        self.assertEqual(r.json["invalid"], 2)
        self.assertEqual([e["line"] for e in r.json["errors"]], [3, 4])
        r = self.put("email,reason\r\nlate@list.example,old list\r\nbad address,x\r\n", "text/csv")
        self.assertEqual((r.status, r.json["imported"], r.json["invalid"]), (200, 1, 1), r)

        for addr, entry in (("blocked@shop.example", "blocked@shop.example"), ("anyone@spam.example", "@spam.example"),
                            ("late@list.example", "late@list.example")):
            code, msg = rcpt_code(self.d, addr)
            self.assertEqual(code, 550, msg)
            self.assertIn("is on the suppression list (%s)" % entry, msg)
        self.assertEqual(rcpt_code(self.d, "someone@sub.spam.example")[0], 250, "a domain entry is that domain only")
        self.assertEqual(rcpt_code(self.d, "friend@shop.example")[0], 250)

        r = call(self.d, "POST", "/v1/messages", {"from": "s@shop.example", "to": ["x@spam.example", "ok@shop.example"],
                                                  "text": "hello"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual([x["status"] for x in r.json["recipients"]], ["refused", "queued"])
        self.assertEqual(r.json["recipients"][0]["reason"], "recipient is on the suppression list (@spam.example)")

        # Kept in the state store: a restart loads them again.
        self.d.stop()
        self.d.start()
        self.assertEqual(rcpt_code(self.d, "anyone@spam.example")[0], 550)

        jl = curl(self.d, "GET", "/v1/suppressions")
        self.assertEqual(jl.status, 200)
        self.assertEqual(jl.header("Content-Type"), "application/x-ndjson")
        rows = [json.loads(l) for l in jl.raw.decode().splitlines()]
        self.assertEqual(sorted(r["entry"] for r in rows), ["@spam.example", "blocked@shop.example", "late@list.example"])
        self.assertEqual([r["reason"] for r in rows if r["entry"] == "blocked@shop.example"], ["asked by phone"])
        self.assertTrue(all(r["source"] == "import" for r in rows))
        csv = call(self.d, "GET", "/v1/suppressions?format=csv")
        self.assertTrue(csv.raw.startswith(b"entry,source,reason,since\r\n"), csv)
        self.assertEqual(csv.raw.count(b"\r\n"), 4)
        self.assertEqual(call(self.d, "GET", "/v1/suppressions?format=xml").status, 400)

        r = curl(self.d, "DELETE", "/v1/suppressions/@spam.example")
        self.assertEqual((r.status, r.json["removed"]), (200, True), r)
        self.assertEqual(rcpt_code(self.d, "anyone@spam.example")[0], 250)
        self.assertEqual(curl(self.d, "DELETE", "/v1/suppressions/@spam.example").status, 404)
        self.assertEqual(curl(self.d, "DELETE", "/v1/suppressions/not-an-entry").status, 400)
        self.assertEqual(curl(self.d, "POST", "/v1/suppressions").status, 405)

    def test_deleting_an_unsubscribed_address_clears_it(self):
        self.assertEqual(call(self.d, "POST", "/v1/recipients/gone@shop.example/unsubscribe").status, 200)
        self.assertEqual(rcpt_code(self.d, "gone@shop.example")[0], 550)
        rows = [json.loads(l) for l in curl(self.d, "GET", "/v1/suppressions").raw.decode().splitlines()]
        self.assertEqual([(r["entry"], r["source"]) for r in rows], [("gone@shop.example", "unsubscribed")])
        r = curl(self.d, "DELETE", "/v1/suppressions/gone@shop.example")
        self.assertEqual((r.status, r.json["removed"], r.json["recipient_cleared"]), (200, False, True), r)
        self.assertEqual(rcpt_code(self.d, "gone@shop.example")[0], 250)
        self.assertEqual(call(self.d, "GET", "/v1/recipients/gone@shop.example").json["status"], "active")


class Tls(unittest.TestCase):
    def test_the_api_over_tls(self):
        d = Daemon()
        try:
            cert, key = os.path.join(d.dir, "cert.pem"), os.path.join(d.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=ricochet.test", "-addext", "subjectAltName=DNS:ricochet.test,IP:127.0.0.1",
                            "-keyout", key, "-out", cert], check=True, capture_output=True)
            with open(d.config_path) as f:
                text = f.read()
            with open(d.config_path, "w") as f:
                f.write(text.replace("[http]\n", '[http]\ntls_cert = "%s"\ntls_key = "%s"\n' % (cert, key)))
            d.start()
            url = "https://127.0.0.1:%d/healthz" % d.http_port
            ok = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", cert, url], capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertEqual(json.loads(ok.stdout)["status"], "ok")
            # Without the CA the certificate is not trusted: curl refuses it (the server does not downgrade).
            self.assertNotEqual(subprocess.run(["curl", "-sS", "--max-time", "20", url], capture_output=True).returncode, 0)
            plain = subprocess.run(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:%d/healthz" % d.http_port],
                                   capture_output=True, text=True)
            self.assertNotEqual(plain.returncode, 0, "plain HTTP on the TLS port gets no HTTP answer")
            again = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", cert, url], capture_output=True, text=True)
            self.assertEqual(again.returncode, 0, "the daemon serves on after a plain-text client: " + again.stderr)
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
