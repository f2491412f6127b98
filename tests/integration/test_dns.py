"""Delivery through real DNS: dnsmasq serves test zones on 127.0.0.1, receivers
listen on 127.0.0.x addresses at one port (delivery.port). Covers two MX with
the first down, no MX (A fallback), null MX, NXDOMAIN, an MX without address,
an IDN domain, a server that answers SERVFAIL and one that never answers."""
import os
import smtplib
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

from harness import Daemon, delivery_config, free_port, message, wait_for
from sink import Sink


def common_port(hosts):
    """A TCP port free on every one of hosts."""
    for _ in range(50):
        port = free_port()
        try:
            socks = []
            for h in hosts:
                s = socket.socket()
                s.bind((h, port))
                socks.append(s)
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no common free port")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StubDns:
    """A UDP DNS server that either answers SERVFAIL to everything or never answers."""

    def __init__(self, mode):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.mode, self.queries, self.running = mode, 0, True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                q, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            if self.mode == "servfail" and len(q) >= 12:
                flags = struct.unpack(">H", q[2:4])[0]
                resp = q[:2] + struct.pack(">H", 0x8000 | (flags & 0x0100) | 0x0080 | 2) + q[4:6] + b"\0\0\0\0\0\0" + q[12:]
                self.sock.sendto(resp, addr)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def dnsmasq_answers(proc, port, name):
    """Whether the dnsmasq process proc answers an A query for name on port
    (raises when it has exited, with what it said)."""
    if proc.poll() is not None:
        raise RuntimeError("dnsmasq exited: %s" % proc.stderr.read().decode())
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00"
    q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(q, ("127.0.0.1", port))
        try:
            return len(s.recv(512)) > 12
        except socket.timeout:
            return False


def submit(d, rcpt, utf8=False):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.ehlo("t")
        s.mail("news@example.com", ["SMTPUTF8"] if utf8 else [])
        s.rcpt(rcpt)
        code, msg = s.data(message(1).encode())
        assert code == 250, (code, msg)


def events(d, kind, rcpt):
    return [e for e in d.events() if e["type"] == kind and e.get("recipient") == rcpt]


class Dns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = common_port(["127.0.0.3", "127.0.0.4", "127.0.0.5"])
        cls.sinks = {ip: Sink(host=ip, port=cls.port) for ip in ("127.0.0.3", "127.0.0.4", "127.0.0.5")}
        cls.tmp = tempfile.mkdtemp(prefix="ricochet-dns-")
        # dnsmasq binds UDP and TCP on its port: a port free for UDP may be
        # taken for TCP by a test running beside this one (or in between).
        # Then it exits at once, and another port is tried.
        for attempt in range(5):
            cls.dns_port = free_udp_port()
            cls.dnsmasq = subprocess.Popen([
                "dnsmasq", "--keep-in-foreground", "--port=%d" % cls.dns_port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=" + os.path.join(cls.tmp, "pid"), "--user=root", "--local=/test/", "--local-ttl=60",
                "--mx-host=two-mx.test,mx1.two-mx.test,10", "--mx-host=two-mx.test,mx2.two-mx.test,20",
                "--host-record=mx1.two-mx.test,127.0.0.2", "--host-record=mx2.two-mx.test,127.0.0.3",
                "--host-record=nomx.test,127.0.0.4",
                "--mx-host=nullmx.test,.,0",
                "--host-record=xn--bcher-kva.test,127.0.0.5",
                "--mx-host=dangling.test,nowhere.dangling.test,10",
                # Two domains one provider hosts: their [[shaping]] rule is the MX's.
                "--mx-host=shared-a.test,mx1.hoster.test,10", "--mx-host=shared-b.test,mx2.hoster.test,10",
                "--host-record=mx1.hoster.test,127.0.0.4", "--host-record=mx2.hoster.test,127.0.0.4",
            ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: cls.query_ok(), what="dnsmasq")
                break
            except RuntimeError as e:
                if attempt == 4 or "Address already in use" not in str(e):
                    raise
        shaping = '[[shaping]]\nmatch = "mx:*.hoster.test"\nmax_connections = 1\n'
        cls.d = Daemon(extra_config=delivery_config({}, dns="127.0.0.1:%d" % cls.dns_port, port=cls.port) + shaping).start()

    @classmethod
    def query_ok(cls):
        return dnsmasq_answers(cls.dnsmasq, cls.dns_port, "nomx.test")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.dnsmasq.terminate()
        cls.dnsmasq.wait()
        for s in cls.sinks.values():
            s.close()
        subprocess.run(["rm", "-rf", cls.tmp])

    def test_two_mx_first_down_delivers_to_the_second(self):
        submit(self.d, "ok-mx@two-mx.test")
        ev = wait_for(lambda: events(self.d, "delivered", "ok-mx@two-mx.test"), what="delivered")[0]
        self.assertEqual(ev["mx"], "mx2.two-mx.test[127.0.0.3]")
        self.assertEqual([m[1] for m in self.sinks["127.0.0.3"].received("ok-mx")], ["ok-mx@two-mx.test"])
        self.assertIn("mx1.two-mx.test [127.0.0.2]", self.d.log(), "the first MX was tried first")

    def test_domains_sharing_an_mx_share_its_limit(self):
        sink = self.sinks["127.0.0.4"]
        # (Another test's idle connection to this receiver closes within seconds.)
        wait_for(lambda: sink.concurrent == 0, timeout=30, what="no connection left from earlier tests")
        sink.max_concurrent = 0
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=30) as s:
            for i in range(20):
                dom = "shared-a.test" if i % 2 else "shared-b.test"
                s.sendmail("news@example.com", ["ok-sh%d@%s" % (i, dom)], message(i))
        wait_for(lambda: len(sink.received("ok-sh")) == 20, what="twenty deliveries")
        self.assertEqual(sink.max_concurrent, 1, "one connection at a time for both domains together")
        for dom in ("shared-a.test", "shared-b.test"):
            shown = self.d.ctl_json("shaping", "show", dom)["domain"]
            self.assertEqual((shown["rule"], shown["key"], shown["max_connections"]), ("mx:*.hoster.test",) * 2 + (1,))
            self.assertIn("MX", shown["how"])
        self.assertEqual(self.d.ctl_json("shaping", "show", "nomx.test")["domain"]["rule"], "")

    def test_no_mx_falls_back_to_the_domains_address(self):
        submit(self.d, "ok-a@nomx.test")
        ev = wait_for(lambda: events(self.d, "delivered", "ok-a@nomx.test"), what="delivered")[0]
        self.assertEqual(ev["mx"], "nomx.test[127.0.0.4]")

    def test_null_mx_fails_permanently(self):
        submit(self.d, "ok@nullmx.test")
        ev = wait_for(lambda: events(self.d, "bounced", "ok@nullmx.test"), what="bounced")[0]
        self.assertEqual((ev["code"], ev["enhanced"], ev["stage"]), (556, "5.1.10", "dns"))

    def test_nxdomain_fails_permanently(self):
        submit(self.d, "ok@missing.test")
        ev = wait_for(lambda: events(self.d, "bounced", "ok@missing.test"), what="bounced")[0]
        self.assertEqual((ev["code"], ev["enhanced"], ev["stage"]), (550, "5.1.2", "dns"))

    def test_mx_without_address_is_temporary(self):
        submit(self.d, "ok@dangling.test")
        ev = wait_for(lambda: events(self.d, "deferred", "ok@dangling.test"), what="deferred")[0]
        self.assertEqual((ev["code"], ev["stage"]), (0, "dns"))
        self.assertIn("nowhere.dangling.test", ev["reply"])

    def test_idn_domain_is_looked_up_as_a_label(self):
        submit(self.d, "ok-idn@bücher.test", utf8=True)
        wait_for(lambda: events(self.d, "delivered", "ok-idn@bücher.test"), what="delivered")
        self.assertEqual([m[1] for m in self.sinks["127.0.0.5"].received("ok-idn")], ["ok-idn@bücher.test"])


class BrokenDns(unittest.TestCase):
    def run_with(self, mode):
        stub = StubDns(mode)
        self.addCleanup(stub.close)
        d = Daemon(extra_config=delivery_config({}, dns="127.0.0.1:%d" % stub.port)).start()
        self.addCleanup(d.cleanup)
        submit(d, "ok@anywhere.test")
        ev = wait_for(lambda: events(d, "deferred", "ok@anywhere.test"), timeout=30, what="deferred")[0]
        self.assertEqual((ev["code"], ev["stage"]), (0, "dns"))
        self.assertGreater(stub.queries, 0)
        # Kept for a retry, not failed (the move to deferred/ runs on
        # delivery's sync threads, and may follow the event).
        wait_for(lambda: d.queue_ids() and d.queue_ids() == d.queue_ids("deferred"), what="the message in deferred/")
        return ev

    def test_servfail_defers(self):
        ev = self.run_with("servfail")
        # c-ares 1.18 reports a server that only says SERVFAIL as unreachable
        self.assertRegex(ev["reply"], r"MX lookup for anywhere\.test: (Server failure|Could not contact DNS servers)")

    def test_silent_server_times_out_and_defers(self):
        ev = self.run_with("silent")
        self.assertIn("Timeout", ev["reply"])


if __name__ == "__main__":
    unittest.main()
