#!/usr/bin/env python3
"""phases.py - how long each step of an SMTP transaction takes, as a client
sees it: a new connection per message, each command waiting for its reply
(as smtp-source does). For bench/phases.sh, which runs it while other
clients load the server.

    bench/phases.py PORT [N=1000] [SIZE=4096]

Prints one line per step: "STEP MEDIAN_US P90_US", steps in order
(connect+greeting, ehlo, mail, rcpt, data, body: the final dot to its
250, quit). Exits non-zero when a reply is not the expected code.
"""
import socket
import statistics
import sys
import time

STEPS = ["connect+greeting", "ehlo", "mail", "rcpt", "data", "body", "quit"]


def reply(sock, want):
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("phases.py: connection closed while waiting for %s" % want)
        buf += chunk
        lines = buf.split(b"\r\n")
        # The reply ends with a line "NNN " (no continuation dash).
        if len(lines) >= 2 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            if not lines[-2].startswith(want.encode()):
                raise SystemExit("phases.py: expected %s, got %r" % (want, lines[-2][:200]))
            return


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    line = b"x" * 70 + b"\r\n"
    body = b"Subject: phases\r\n\r\n" + line * max(1, size // len(line)) + b".\r\n"
    times = {s: [] for s in STEPS}
    for _ in range(n):
        t = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reply(s, "220")
        times["connect+greeting"].append(time.perf_counter() - t)
        for step, cmd, want in [("ehlo", b"EHLO phases.invalid\r\n", "250"),
                                ("mail", b"MAIL FROM:<bench@example.net>\r\n", "250"),
                                ("rcpt", b"RCPT TO:<rcpt@example.com>\r\n", "250"),
                                ("data", b"DATA\r\n", "354"),
                                ("body", body, "250"),
                                ("quit", b"QUIT\r\n", "221")]:
            t = time.perf_counter()
            s.sendall(cmd)
            reply(s, want)
            times[step].append(time.perf_counter() - t)
        s.close()
    for step in STEPS:
        v = sorted(times[step])
        print("%s %.0f %.0f" % (step, statistics.median(v) * 1e6, v[int(len(v) * 0.9)] * 1e6))


if __name__ == "__main__":
    main()
