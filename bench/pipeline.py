#!/usr/bin/env python3
"""pipeline.py — one SMTP connection, as fast as the server lets it: the
acceptance rate of a campaign system that submits over a single connection.

    python3 bench/pipeline.py HOST PORT [N=2000] [SIZE=4096] [MODE=lockstep] [WINDOW=32]

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
line: MODE, messages, seconds, messages/s, and how many were refused (any
reply but 250 to the message). Exit 1 when the server refused any or the
connection broke. Loopback only: HOST must be in 127.0.0.0/8 or ::1.
"""
import ipaddress
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


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
    mode = sys.argv[5] if len(sys.argv) > 5 else "lockstep"
    window = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    if not ipaddress.ip_address(host).is_loopback:
        print("pipeline.py: loopback only", file=sys.stderr)
        return 2
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
        print("pipeline.py: the server does not offer CHUNKING", file=sys.stderr)
        return 2
    if mode in ("pipelined", "bdat") and "PIPELINING" not in caps:
        print("pipeline.py: the server does not offer PIPELINING", file=sys.stderr)
        return 2
    msgs = [message(i, size) for i in range(n)]
    env = [b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<rcpt%d@example.com>\r\n" % i for i in range(n)]
    refused = 0
    start = time.monotonic()
    if mode == "lockstep":
        for i in range(n):
            for cmd in (b"MAIL FROM:<bench@example.net>\r\n", b"RCPT TO:<rcpt%d@example.com>\r\n" % i, b"DATA\r\n"):
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
    elif mode == "bdat":
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
    else:
        print("pipeline.py: MODE is lockstep, pipelined or bdat", file=sys.stderr)
        return 2
    took = time.monotonic() - start
    sock.sendall(b"QUIT\r\n")
    sock.close()
    print("%s %d %.2f %.0f %d" % (mode, n, took, n / took, refused))
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
