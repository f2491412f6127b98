#!/usr/bin/env python3
"""api.py — the HTTP API's three figures, measured on this machine in one run.

  1. injection: N messages of SIZE bytes over HTTP (POST /v1/messages) and the
     same N over SMTP submission, into the same ricochetd (relaying to
     smtp-sink), each by CONC client processes on kept connections; prints
     accepted msgs/s for both and the ratio. Both clients are Python (http.client
     and smtplib) in separate processes, so neither side is favoured by a
     faster load generator; the figures are a floor set partly by the clients.
  2. webhooks: EVENTS synthetic events written into the event log before the
     daemon starts, with a [[webhook]] whose cursor is 0; the time until a local
     receiver (ThreadingHTTPServer, signatures checked) has them all: events/s.
  3. suppressions: an import of ENTRIES addresses (JSON lines, then CSV) with
     PUT /v1/suppressions through curl, timed; the export is counted back.

  bench/api.py [N=5000] [SIZE=4096] [CONC=8] [EVENTS=200000] [ENTRIES=1000000]
Env: RICOCHET_BIN=dir (default build/bin).  Needs smtp-sink (Debian's postfix), curl.
Only 127.0.0.1 is used; every wait is bounded; everything started is stopped.
"""
import hashlib
import hmac
import http.client
import http.server
import json
import multiprocessing
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("RICOCHET_BIN", os.path.join(ROOT, "build", "bin"))
SECRET = "bench-secret-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing on port %d" % port)


def body_of(size):
    line = "x" * 76 + "\r\n"
    return (line * (size // len(line) + 1))[:size]


def http_worker(args):
    port, n, size = args
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    msg = json.dumps({"from": "bench@sender.example", "to": ["r@example.com"],
                      "content": "Subject: bench\r\nFrom: bench@sender.example\r\n\r\n" + body_of(size)})
    for _ in range(n):
        c.request("POST", "/v1/messages", body=msg, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 202:
            raise RuntimeError("injection answered %d" % r.status)
    c.close()
    return n


def smtp_worker(args):
    port, n, size = args
    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
    msg = "Subject: bench\r\nFrom: bench@sender.example\r\n\r\n" + body_of(size)
    for _ in range(n):
        s.sendmail("bench@sender.example", ["r@example.com"], msg)
    s.quit()
    return n


def run_clients(worker, port, n, size, conc):
    per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]
    with multiprocessing.Pool(conc) as pool:
        t0 = time.time()
        done = sum(pool.map(worker, [(port, k, size) for k in per]))
        return done, time.time() - t0


class Receiver(http.server.BaseHTTPRequestHandler):
    got = set()
    bad = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        t, v1 = [p.split("=", 1)[1] for p in self.headers["Ricochet-Signature"].split(",")]
        ok = hmac.compare_digest(v1, hmac.new(SECRET.encode(), (t + ".").encode() + body, hashlib.sha256).hexdigest())
        ids = [e["id"] for e in json.loads(body)]
        with Receiver.lock:
            if not ok:
                Receiver.bad += 1
            Receiver.got.update(ids)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def main():
    a = [int(x) for x in sys.argv[1:]]
    N, SIZE, CONC, EVENTS, ENTRIES = (a + [5000, 4096, 8, 200000, 1000000][len(a):])[:5]
    for tool in ("smtp-sink", "curl"):
        if not shutil.which(tool):
            print("bench/api.py: missing %s (apt-get install -y postfix curl)" % tool, file=sys.stderr)
            return 77
    w = tempfile.mkdtemp(prefix="ricochet-apibench-")
    procs = []
    try:
        sub, bnc, api, sink, hook = (free_port() for _ in range(5))
        procs.append(subprocess.Popen(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % sink, "1000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        hook_url = "http://127.0.0.1:%d/hook" % hook
        # The webhook's backlog, written before the daemon starts: EVENTS lines, cursor 0.
        with open(os.path.join(w, "events.jsonl"), "w") as f:
            for s in range(1, EVENTS + 1):
                f.write(json.dumps({"seq": s, "id": "bench-%d" % s, "time": "2026-11-30T10:00:00.000Z",
                                    "type": "delivered", "queue_id": "6C5Y0KTV2XG00", "campaign": "bench",
                                    "recipient": "r%d@example.com" % s, "kind": None, "category": None,
                                    "rule": None, "code": 250, "enhanced": "2.0.0", "reply": "250 2.0.0 Ok",
                                    "mx": "127.0.0.1", "stage": "data", "attempt": 1, "sync": True},
                                   separators=(",", ":")) + "\n")
        os.makedirs(os.path.join(w, "spool", "webhooks"))
        with open(os.path.join(w, "spool", "webhooks", hashlib.sha256(hook_url.encode()).hexdigest()[:16] + ".cursor"), "w") as f:
            f.write("0\n")
        cfg = f"""
[server]
hostname = "ricochet.bench.invalid"
spool_dir = "{w}/spool"
state = "sqlite:{w}/state.db"
control_socket = "{w}/sock"
events_log = "{w}/events.jsonl"
log_level = "warn"
[submission]
listen = ["127.0.0.1:{sub}"]
[delivery]
tls = "off"
dns_servers = ["127.0.0.1:9"]
[[delivery.route]]
domain = "example.com"
host = "127.0.0.1:{sink}"
[bounce_listener]
listen = ["127.0.0.1:{bnc}"]
[bounce]
rules = "{ROOT}/etc/bounce-rules.toml"
[http]
listen = ["127.0.0.1:{api}"]
max_import_body = 4294967296
[[webhook]]
url = "{hook_url}"
secret = "{SECRET}"
events = ["*"]
batch = 500
"""
        with open(os.path.join(w, "r.toml"), "w") as f:
            f.write(cfg)
        # The events.seq file must be ahead of the synthetic log: seq 1.. are taken.
        with open(os.path.join(w, "spool", "events.seq"), "w") as f:
            f.write("%-16.16s %020d\n" % ("benchinstance000", EVENTS + 1000))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", hook), Receiver)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        log = open(os.path.join(w, "ricochetd.log"), "w")
        t_start = time.time()
        d = subprocess.Popen([os.path.join(BIN, "ricochetd"), "--config", os.path.join(w, "r.toml")],
                             stdout=log, stderr=subprocess.STDOUT)
        procs.append(d)
        wait_port(api)
        wait_port(sub)

        # 2. webhooks (started with the daemon: the backlog is sent at once)
        end = time.time() + 600
        while len(Receiver.got) < EVENTS and time.time() < end and d.poll() is None:
            time.sleep(0.05)
        t_hook = time.time() - t_start
        print("webhook: %d of %d events in %.2f s: %.0f events/s (batch 500, signatures bad: %d)"
              % (len(Receiver.got), EVENTS, t_hook, len(Receiver.got) / t_hook, Receiver.bad))

        # 1. injection, HTTP then SMTP, same daemon
        done, secs = run_clients(http_worker, api, N, SIZE, CONC)
        http_rate = done / secs
        print("inject HTTP: %d msgs of %d B over %d connections in %.2f s: %.0f msgs/s" % (done, SIZE, CONC, secs, http_rate))
        done, secs = run_clients(smtp_worker, sub, N, SIZE, CONC)
        smtp_rate = done / secs
        print("inject SMTP: %d msgs of %d B over %d connections in %.2f s: %.0f msgs/s" % (done, SIZE, CONC, secs, smtp_rate))
        print("inject HTTP/SMTP: %.2f" % (http_rate / smtp_rate))

        # 3. suppressions: 1M entries, JSON lines then CSV (the same entries: replaced)
        jl = os.path.join(w, "supp.jsonl")
        with open(jl, "w") as f:
            for i in range(ENTRIES):
                f.write('{"entry":"user%d@list.example","reason":"bench"}\n' % i)
        cs = os.path.join(w, "supp.csv")
        with open(cs, "w") as f:
            f.write("email,reason\n")
            for i in range(ENTRIES):
                f.write("user%d@list.example,bench\n" % i)
        for name, path, ctype in (("JSON lines", jl, "application/x-ndjson"), ("CSV", cs, "text/csv")):
            t0 = time.time()
            out = subprocess.run(["curl", "-sS", "-X", "PUT", "--data-binary", "@" + path, "-H", "Content-Type: " + ctype,
                                  "-H", "Expect:", "--max-time", "600", "http://127.0.0.1:%d/v1/suppressions" % api],
                                 capture_output=True, text=True)
            secs = time.time() - t0
            res = json.loads(out.stdout or "{}")
            print("suppressions import (%s): %s entries in %.2f s: %.0f entries/s (%s)"
                  % (name, res.get("imported"), secs, (res.get("imported") or 0) / secs,
                     "under a minute" if secs < 60 else "OVER A MINUTE"))
        t0 = time.time()
        out = subprocess.run(["curl", "-sS", "--max-time", "600", "http://127.0.0.1:%d/v1/suppressions" % api],
                             capture_output=True)
        print("suppressions export: %d lines in %.2f s" % (out.stdout.count(b"\n"), time.time() - t0))
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
