#!/usr/bin/env python3
"""pipeline.py — one SMTP connection (or a few), as fast as the server lets
it: the acceptance rate of a campaign system that submits over a single
connection or a handful.

    python3 bench/pipeline.py HOST PORT [N=2000] [SIZE=4096] [MODE=lockstep] [WINDOW=32] [CONNS=1]

CONNS connections (one process each) share the N messages; they start
together once each has had its EHLO reply, and the rate is N over the time
from that start until the last one has its last reply.

MODE says how the client waits (smtp-source can only do the first):
  lockstep   MAIL, RCPT, DATA, the message, each reply awaited (a client
             without PIPELINING: four round trips per message)
  pipelined  RFC 2920: MAIL, RCPT and DATA in one group, then the
             content and the next message's MAIL, RCPT and DATA in the
             next: one round trip per message, but DATA still waits for
             the 250 of the message before it (RFC 2920: DATA ends a group)
  bdat       RFC 3030 CHUNKING: MAIL, RCPT, BDAT SIZE LAST and the
             octets, WINDOW messages in flight without waiting for any
             reply; the server may then commit several of one
             connection's messages in one fsync. Needs CHUNKING in EHLO
             (exit 2 when the server does not offer it).

Each message is SIZE octets to one recipient at example.com. Prints one
line: MODE, messages, seconds, messages/s, how many were refused (any
reply but 250 to the message), and when the first command was sent
(time.monotonic(), one clock for the whole machine). Exit 1 when the server refused any or the
connection broke. Loopback only: HOST must be in 127.0.0.0/8 or ::1.
"""
import ipaddress
import queue
import socket
import sys
import threading
import time


def message(i, size):
    head = ("From: bench@example.net\r\nTo: rcpt%d@example.com\r\nSubject: pipeline %d\r\n"
            "Message-ID: <p%d@bench.invalid>\r\n\r\n" % (i, i, i)).encode()
    # Whole lines of at most 72 octets with CRLF, the last one shorter to
    # make SIZE (at least one line: "x" CRLF).
    left = max(3, size - len(head))
    lines = [b"x" * 70 + b"\r\n"] * (left // 72)
    rest = left % 72
    if 0 < rest < 3 and lines:  # too short for a line of its own: the line before gives way
        lines[-1] = b"x" * (70 - (3 - rest)) + b"\r\n"
        rest = 3
    if rest:
        lines.append(b"x" * (rest - 2) + b"\r\n")
    return head + b"".join(lines)


class Replies:
    """Reads whole replies (multi-line ones as one) from the socket."""

    def __init__(self, sock):
        self.f = sock.makefile("rb", buffering=65536)

    def next(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), b"".join(lines)


def session(host, port, first, n, size, mode, window, start_barrier=None):
    """One connection: EHLO, then messages first..first+n-1 in MODE.
    Returns (start, end, refused) in time.monotonic() (one clock for every
    process of the machine)."""
    sock = socket.create_connection((host, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r = Replies(sock)
    code, _ = r.next()
    assert code == 220, code
    sock.sendall(b"EHLO pipeline.bench.invalid\r\n")
    code, ehlo = r.next()
    assert code == 250, ehlo
    caps = {l[4:].split()[0].upper() for l in ehlo.decode().split("\r\n") if len(l) > 4}
    if mode == "bdat" and "CHUNKING" not in caps:
        raise NotOffered("the server does not offer CHUNKING")
    if mode in ("pipelined", "bdat") and "PIPELINING" not in caps:
        raise NotOffered("the server does not offer PIPELINING")
    ids = range(first, first + n)
    msgs = [message(i, size) for i in ids]
    env = [b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<rcpt%d@example.com>\r\n" % i for i in ids]
    refused = 0
    if start_barrier is not None:
        start_barrier.wait(60)
    start = time.monotonic()
    if mode == "lockstep":
        for i in range(n):
            for cmd in (b"MAIL FROM:<bench@example.net>\r\n", b"RCPT TO:<rcpt%d@example.com>\r\n" % ids[i], b"DATA\r\n"):
                sock.sendall(cmd)
                code, text = r.next()
                if code >= 400:
                    raise SystemExit("refused: %r" % text)
            sock.sendall(msgs[i].replace(b"\r\n.", b"\r\n..") + b".\r\n")
            refused += r.next()[0] != 250
    elif mode == "pipelined":
        sock.sendall(env[0] + b"DATA\r\n")
        for i in range(n):
            for want in (250, 250, 354):
                code, text = r.next()
                if code != want:
                    raise SystemExit("unexpected %r" % text)
            tail = env[i + 1] + b"DATA\r\n" if i + 1 < n else b""
            sock.sendall(msgs[i].replace(b"\r\n.", b"\r\n..") + b".\r\n" + tail)
            refused += r.next()[0] != 250
    else:  # bdat
        slots = threading.Semaphore(window)
        result = {"refused": 0, "error": None}

        def reader():
            try:
                for _ in range(n):
                    codes = [r.next()[0] for _ in range(3)]  # MAIL, RCPT, BDAT LAST
                    result["refused"] += codes != [250, 250, 250]
                    slots.release()
            except Exception as e:  # reported below
                result["error"] = e
                for _ in range(window):
                    slots.release()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for i in range(n):
            slots.acquire()
            if result["error"]:
                break
            sock.sendall(env[i] + b"BDAT %d LAST\r\n" % len(msgs[i]) + msgs[i])
        t.join()
        if result["error"]:
            raise SystemExit("connection broke: %s" % result["error"])
        refused = result["refused"]
    end = time.monotonic()
    sock.sendall(b"QUIT\r\n")
    sock.close()
    return start, end, refused


class NotOffered(Exception):
    pass


def child(args, barrier, out):
    try:
        out.put(("ok",) + session(*args, start_barrier=barrier))
    except NotOffered as e:
        barrier.abort()
        out.put(("not offered", str(e)))
    except BaseException as e:  # SystemExit too: the parent reports it
        barrier.abort()
        out.put(("error", "%s: %s" % (type(e).__name__, e)))


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
    mode = sys.argv[5] if len(sys.argv) > 5 else "lockstep"
    window = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    conns = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    if not ipaddress.ip_address(host).is_loopback:
        print("pipeline.py: loopback only", file=sys.stderr)
        return 2
    if mode not in ("lockstep", "pipelined", "bdat"):
        print("pipeline.py: MODE is lockstep, pipelined or bdat", file=sys.stderr)
        return 2
    if not 1 <= conns <= n:
        print("pipeline.py: CONNS is 1 to N", file=sys.stderr)
        return 2
    # Connection c sends messages [c*n/conns, (c+1)*n/conns): every recipient differs.
    parts = [(c * n // conns, (c + 1) * n // conns - c * n // conns) for c in range(conns)]
    try:
        if conns == 1:
            results = [session(host, port, 0, n, size, mode, window)]
        else:
            import multiprocessing
            ctx = multiprocessing.get_context("fork")
            barrier, out = ctx.Barrier(conns), ctx.Queue()
            procs = [ctx.Process(target=child, args=((host, port, first, k, size, mode, window), barrier, out))
                     for first, k in parts]
            for p in procs:
                p.start()
            got = []
            deadline = time.monotonic() + 900
            while len(got) < len(procs):  # a child killed without a word must not hang us
                try:
                    got.append(out.get(timeout=1))
                except queue.Empty:
                    if all(not p.is_alive() for p in procs) and out.empty():
                        raise SystemExit("a connection's process ended without a result")
                    if time.monotonic() > deadline:
                        raise SystemExit("no result after 900 s")
            for p in procs:
                p.join(60)
            for g in got:
                if g[0] == "not offered":
                    raise NotOffered(g[1])
            errors = [g[1] for g in got if g[0] == "error"]
            if errors:
                raise SystemExit("; ".join(e for e in errors if "BrokenBarrier" not in e) or errors[0])
            results = [g[1:] for g in got]
    except NotOffered as e:
        print("pipeline.py: %s" % e, file=sys.stderr)
        return 2
    took = max(r[1] for r in results) - min(r[0] for r in results)
    refused = sum(r[2] for r in results)
    print("%s %d %.2f %.0f %d %.6f" % (mode, n, took, n / took, refused, min(r[0] for r in results)))
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
