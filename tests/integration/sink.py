"""A scripted SMTP receiver for delivery tests, on loopback only.

Its answers are chosen by the recipient's local part (KumoMTA's idea):
  ok...        250 at every step
  tempfail...  451 4.3.0 at RCPT, always
  reject...    550 5.1.1 at RCPT
  once...      451 4.7.1 at RCPT the first time this address is seen, then 250
  drop...      the first time: takes the whole message, then closes without a reply
  full...      452 4.2.2 mailbox full at RCPT (a final soft reply)
  later...     421 4.7.0 try again later, at RCPT (temporary, says nothing about the address)
  throttle...  421 4.7.0 rate limit exceeded, at RCPT (halves the destination's rate)
  throttleonce...  the same the first time this address is seen, then 250
  dmarc...     550 5.7.26 DMARC reject at end of data (block: the address stays good)
With eightbitmime=False or smtputf8=False it does not offer that extension
and refuses a MAIL FROM that uses it (555 5.5.4); the parameters of every
MAIL FROM are kept in `mail_params`.
Set `misbehave` to make every new session go wrong before any of that:
  "silent"     accepts the connection and never greets
  "garbage"    greets with binary garbage instead of a reply
  "421"        greets, then answers 421 to the first command and closes
  "slow"       greets only after `greeting_delay` seconds
A source address in `block_sources` gets 550 5.7.1 "blocked using
zen.spamhaus.org" at every RCPT (a blocklisted sending IP).
It counts connections (total and the most at once), and records each
accepted message (return path, recipient, data) in order, and in
`arrivals` the source address and time of each. STARTTLS is offered
when a certificate is given. Every loop is bounded by socket time-outs.
"""
import socket
import socketserver
import ssl
import threading
import time


class Sink:
    def __init__(self, host="127.0.0.1", port=0, certfile=None, keyfile=None, pipelining=True, greeting_delay=None,
                 eightbitmime=True, smtputf8=True):
        self.lock = threading.Lock()
        self.messages = []        # (mail_from, rcpt, data)
        self.arrivals = []        # (source ip, rcpt, monotonic time) of each accepted message
        self.block_sources = set()  # source IPs refused at RCPT as blocklisted (550 5.7.1 ... Spamhaus)
        self.connections = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.seen = {}
        self.tls_sessions = 0
        self.ctx = None
        if certfile:
            self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ctx.load_cert_chain(certfile, keyfile)
        self.pipelining = pipelining
        self.eightbitmime, self.smtputf8 = eightbitmime, smtputf8  # offered in EHLO (else a MAIL with them is refused)
        self.mail_params = []     # the parameters of each MAIL FROM, in order
        self.sessions = []        # per connection, the verbs it sent, in order
        self.misbehave = None
        self.close_after_message = False  # hang up after each accepted message (a stale reused connection)
        self.idle_421_after_message = False  # ... saying 421 first, as a server closing an idle connection does
        self.greeting_delay = greeting_delay or 0
        self.stop = threading.Event()  # set by close(): ends silent and slow sessions
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30

            def handle(self):
                with sink.lock:
                    sink.connections += 1
                    sink.concurrent += 1
                    sink.max_concurrent = max(sink.max_concurrent, sink.concurrent)
                try:
                    sink.session(self)
                except (OSError, ssl.SSLError):
                    pass
                finally:
                    with sink.lock:
                        sink.concurrent -= 1

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((host, port), Handler)
        self.host, self.port = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def received(self, rcpt_prefix=""):
        with self.lock:
            return [m for m in self.messages if m[1].startswith(rcpt_prefix)]

    def session(self, h):
        rfile, wfile, sock = h.rfile, h.wfile, h.request

        def send(line):
            wfile.write((line + "\r\n").encode())
            wfile.flush()

        mode = self.misbehave
        if mode == "silent":
            while rfile.readline(2000):  # until the client gives up and closes
                pass
            return
        if mode == "garbage":
            wfile.write(b"\x00\xff\xfe\x01garbage\r\nnot smtp at all\r\n")
            wfile.flush()
            while rfile.readline(2000):
                pass
            return
        if mode == "slow" and self.stop.wait(self.greeting_delay):
            return
        send("220 sink.test ESMTP")
        if mode == "421":
            if rfile.readline(2000):
                send("421 4.3.2 sink.test shutting down")
            return
        mail_from, rcpts, tls = None, [], False
        source = h.client_address[0]
        verbs = []
        with self.lock:
            self.sessions.append(verbs)
        while True:
            line = rfile.readline(2000)
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd[:4].upper()
            verbs.append(verb)
            if verb in ("EHLO", "HELO"):
                ext = ["SIZE 100000000"] + (["8BITMIME"] if self.eightbitmime else []) + \
                      (["SMTPUTF8"] if self.smtputf8 else [])
                if self.pipelining:
                    ext.append("PIPELINING")
                if self.ctx and not tls:
                    ext.append("STARTTLS")
                lines = ["sink.test"] + ext
                for l in lines[:-1]:
                    wfile.write(("250-%s\r\n" % l).encode())
                send("250 " + lines[-1])
            elif cmd.upper() == "STARTTLS" and self.ctx and not tls:
                send("220 2.0.0 go ahead")
                sock = self.ctx.wrap_socket(sock, server_side=True)
                rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
                tls = True
                with self.lock:
                    self.tls_sessions += 1
            elif verb == "MAIL" and mail_from is not None:
                # As Postfix's smtpd: a transaction still open (its MAIL
                # taken, no final reply to its data yet) needs RSET first.
                send("503 5.5.1 Error: nested MAIL command")
            elif verb == "MAIL":
                params = cmd.split(">", 1)[1].split() if ">" in cmd else []
                with self.lock:
                    self.mail_params.append(params)
                upper = [p.upper() for p in params]
                if ("BODY=8BITMIME" in upper and not self.eightbitmime) or ("SMTPUTF8" in upper and not self.smtputf8):
                    send("555 5.5.4 unsupported MAIL parameter")  # RFC 5321 4.1.1.11: not offered
                    continue
                mail_from, rcpts = cmd[10:].strip().lstrip("<").split(">")[0], []
                send("250 2.1.0 ok")
            elif verb == "RCPT":
                rcpt = cmd[8:].strip().lstrip("<").split(">")[0]
                local = rcpt.split("@")[0]
                with self.lock:
                    n = self.seen.get(rcpt, 0)
                    self.seen[rcpt] = n + 1
                if source in self.block_sources:
                    send("550 5.7.1 Service unavailable; Client host [%s] blocked using zen.spamhaus.org" % source)
                elif local.startswith("tempfail"):
                    send("451 4.3.0 temporary failure, try again later")
                elif local.startswith("reject"):
                    send("550-5.1.1 The email account that you tried to reach does not exist.")
                    send("550 5.1.1 Please check the address.")
                elif local.startswith("later"):
                    send("421 4.7.0 sink.test Service temporarily unavailable, try again later")
                elif local.startswith("throttleonce") and n == 0:
                    send("421 4.7.0 Messages from 192.0.2.1 temporarily rate limited; rate limit exceeded, slow down")
                elif local.startswith("throttle") and not local.startswith("throttleonce"):
                    send("421 4.7.0 Messages from 192.0.2.1 temporarily rate limited; rate limit exceeded, slow down")
                elif local.startswith("full"):
                    send("452 4.2.2 The email account that you tried to reach is over quota.")
                elif local.startswith("once") and n == 0:
                    send("451 4.7.1 greylisted, come back later")
                else:
                    rcpts.append(rcpt)
                    send("250 2.1.5 ok")
            elif verb == "DATA":
                if not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                send("354 go ahead")
                data = []
                while True:
                    l = rfile.readline(100000)
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    data.append(l[1:] if l.startswith(b"..") else l)
                body = b"".join(data)
                if any(r.split("@")[0].startswith("dmarc") for r in rcpts):
                    send("550-5.7.26 Unauthenticated email from example.com is not accepted due to domain's")
                    send("550 5.7.26 DMARC policy.")
                    mail_from, rcpts = None, []  # the data's reply ends the transaction (RFC 5321 4.1.1.4)
                    continue
                if any(r.split("@")[0].startswith("drop") for r in rcpts):
                    with self.lock:
                        first = self.seen.get(("drop", tuple(rcpts)), 0) == 0
                        self.seen[("drop", tuple(rcpts))] = 1
                    if first:
                        sock.close()
                        return
                with self.lock:
                    for r in rcpts:
                        self.messages.append((mail_from, r, body))
                        self.arrivals.append((source, r, time.monotonic()))
                send("250 2.0.0 queued")
                mail_from, rcpts = None, []
                if self.idle_421_after_message:
                    send("421 4.4.2 sink.test Error: timeout exceeded")
                    return
                if self.close_after_message:
                    return
            elif verb == "RSET":
                mail_from, rcpts = None, []
                send("250 2.0.0 ok")
            elif verb == "QUIT":
                send("221 2.0.0 bye")
                return
            elif verb == "NOOP":
                send("250 2.0.0 ok")
            else:
                send("502 5.5.2 unknown")
