"""Durability against the real daemon: kill -9 during a load loses no
acknowledged message and leaves no unacknowledged one (beyond messages whose
final dot was sent when the daemon died, which no MTA can tell apart); a spool
that cannot be written gets 452 4.3.1, keeps what it had, and recovers."""
import os
import collections
import random
import re
import resource
import smtplib
import socket
import subprocess
import threading
import unittest

from harness import Daemon, message

QUEUED = re.compile(r"queued as ([0-9A-Z]{13})")
SEQ = re.compile(rb"^X-Test-Seq: (\d+)\r?$", re.M)


def spool_seqs(spool):
    """queue id -> X-Test-Seq for every queue file, read straight from disk.
    The daemon may move a file between state directories while we read
    (a delivery attempt defers it), so each id is looked for in all of them."""
    states = ("active", "deferred", "hold")
    names = {n for st in states for n in os.listdir(os.path.join(spool, st))}
    out = {}
    for name in names:
        for _ in range(3):
            for st in states:
                try:
                    with open(os.path.join(spool, st, name), "rb") as f:
                        out[name] = int(SEQ.search(f.read()).group(1))
                        break
                except FileNotFoundError:
                    continue
            if name in out:
                break
    return out


class Load:
    """8 smtplib clients sending `total` messages; records what got a 250."""

    def __init__(self, port, total, seq0):
        self.port, self.total, self.seq0 = port, total, seq0
        self.lock = threading.Condition()
        self.acked = {}       # seq -> queue id
        self.in_flight = set()  # seq whose DATA was under way when the connection died
        self.next = 0

    def take(self):
        with self.lock:
            if self.next >= self.total:
                return None
            self.next += 1
            return self.seq0 + self.next - 1

    def client(self):
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
                s.ehlo("load.test")
                while (seq := self.take()) is not None:
                    s.mail("sender@example.com")
                    s.rcpt("r%d@example.net" % seq)
                    try:
                        code, msg = s.data(message(seq))
                    except Exception:
                        with self.lock:
                            self.in_flight.add(seq)
                        raise
                    if code != 250:
                        raise RuntimeError("refused: %d %s" % (code, msg))
                    with self.lock:
                        self.acked[seq] = QUEUED.search(msg.decode()).group(1)
                        self.lock.notify_all()
        except (smtplib.SMTPException, OSError, RuntimeError):
            pass  # the daemon was killed under us

    def run_until(self, acked_before_kill, kill):
        threads = [threading.Thread(target=self.client) for _ in range(8)]
        for t in threads:
            t.start()
        with self.lock:
            self.lock.wait_for(lambda: len(self.acked) >= acked_before_kill, timeout=120)
        kill()
        for t in threads:
            t.join(timeout=60)


class BdatLoad(Load):
    """The same load over RFC 3030 BDAT: each client keeps WINDOW messages
    sent ahead of their replies, so the kill finds several of a connection's
    messages committing at once."""

    WINDOW = 16

    def client(self):
        sent = collections.deque()
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            f = sock.makefile("rb")

            def reply():  # a whole reply, multi-line ones as one
                text = ""
                while True:
                    line = f.readline()
                    if not line:
                        raise OSError("closed")
                    text += line.decode()
                    if line[3:4] != b"-":
                        return text

            assert reply().startswith("220")
            sock.sendall(b"EHLO load.test\r\n")
            if "CHUNKING" not in reply():
                raise RuntimeError("no CHUNKING")
            while True:
                while len(sent) < self.WINDOW and (seq := self.take()) is not None:
                    body = message(seq).encode()
                    with self.lock:
                        self.in_flight.add(seq)
                    sent.append(seq)
                    sock.sendall(b"MAIL FROM:<sender@example.com>\r\nRCPT TO:<r%d@example.net>\r\n"
                                 b"BDAT %d LAST\r\n%s" % (seq, len(body), body))
                if not sent:
                    break
                seq = sent[0]
                got = [reply() for _ in range(3)]
                if [g[:3] for g in got] != ["250"] * 3:
                    raise RuntimeError("refused: %r" % got)
                sent.popleft()
                with self.lock:
                    self.in_flight.discard(seq)
                    self.acked[seq] = QUEUED.search(got[2]).group(1)
                    self.lock.notify_all()
            sock.close()
        except (OSError, RuntimeError, AssertionError):
            pass  # the daemon was killed under us


class KillNine(unittest.TestCase):
    def setUp(self):
        self.d = Daemon().start()

    def tearDown(self):
        self.d.cleanup()

    def test_kill9_during_load_of_500_loses_nothing_acknowledged(self):
        self.kill_twice(Load)

    def test_kill9_during_bdat_load_with_commits_in_flight_loses_nothing_acknowledged(self):
        self.kill_twice(BdatLoad)

    def kill_twice(self, load_class):
        acked_all = {}
        in_flight_all = set()
        for rnd, seq0 in enumerate((0, 100000)):
            load = load_class(self.d.port, 500, seq0)
            load.run_until(random.randint(100, 350), self.d.kill9)
            self.assertGreater(len(load.acked), 0)
            self.assertLess(len(load.acked), 500, "the kill came too late to test anything")
            acked_all.update(load.acked)
            in_flight_all |= load.in_flight
            self.d.start()  # recovery

            listed = set(self.d.queue_ids())
            acked_ids = set(acked_all.values())
            self.assertEqual(acked_ids - listed, set(), "round %d: acknowledged messages lost" % rnd)
            seqs = spool_seqs(self.d.spool)
            self.assertEqual(set(seqs), listed)  # no message finishes: example.net has no route
            counts = {}
            for s in seqs.values():
                counts[s] = counts.get(s, 0) + 1
            self.assertEqual([s for s, n in counts.items() if n > 1], [], "a message is queued twice")
            for qid in listed - acked_ids:
                self.assertIn(seqs[qid], in_flight_all,
                              "round %d: %s queued although its client never finished DATA" % (rnd, qid))
            self.assertEqual(os.listdir(os.path.join(self.d.spool, "incoming")), [])
            print("%s round %d: %d acknowledged, %d in flight at the kill, %d of those kept"
                  % (load_class.__name__, rnd, len(load.acked), len(load.in_flight), len(listed - acked_ids)))


class KillNineWhileDelivering(unittest.TestCase):
    """20 rounds of kill -9 at a random moment while messages are both
    arriving and being delivered: every acknowledged message reaches the
    receiver (at least once: a delivery cut off before its status was
    recorded is repeated, as in any MTA); the duplicates are counted."""

    ROUNDS = 20

    def test_every_acknowledged_message_is_delivered_across_20_kills(self):
        from harness import delivery_config, wait_for
        from sink import Sink
        sink = Sink()
        self.addCleanup(sink.close)
        d = Daemon(extra_config=delivery_config({"example.net": (sink.host, sink.port)}, interval="1s"))
        self.addCleanup(d.cleanup)
        d.start()
        acked, in_flight = {}, set()
        rng = random.Random(20)
        for rnd in range(self.ROUNDS):
            load = Load(d.port, 80, rnd * 1000)
            load.run_until(rng.randint(5, 60), d.kill9)
            acked.update(load.acked)
            in_flight |= load.in_flight
            d.start()
        wait_for(lambda: d.queue_ids() == [], timeout=180, what="every message delivered")
        with sink.lock:
            got = [int(SEQ.search(m[2]).group(1)) for m in sink.messages]
        counts = {}
        for seq in got:
            counts[seq] = counts.get(seq, 0) + 1
        missing = sorted(set(acked) - set(counts))
        self.assertEqual(missing, [], "acknowledged but never delivered")
        unexpected = sorted(set(counts) - set(acked) - in_flight)
        self.assertEqual(unexpected, [], "delivered although never submitted whole")
        dups = sum(n - 1 for n in counts.values() if n > 1)
        print("%d rounds: %d acknowledged, %d delivered, %d duplicate deliveries (%.2f%%), %d in flight at a kill"
              % (self.ROUNDS, len(acked), len(got), dups, 100.0 * dups / max(1, len(acked)), len(in_flight)))


def submit(port, seq, size=0):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("t")
        s.mail("sender@example.com")
        s.rcpt("r@example.net")
        code, msg = s.data(message(seq, size=size))
        return code, msg.decode()


class DamagedQueueFile(unittest.TestCase):
    def test_a_deferred_file_that_does_not_decode_is_quarantined_when_due(self):
        from harness import wait_for
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        d.stop()
        bad = os.path.join(d.spool, "deferred", "0CCCCCCCCCCCC")
        with open(bad, "w") as f:
            f.write("not a queue file")
        os.utime(bad, (0, 0))  # due long ago
        d.start()
        corrupt = os.path.join(d.spool, "corrupt", "0CCCCCCCCCCCC")
        wait_for(lambda: os.path.exists(corrupt), what="the file in corrupt/")
        self.assertFalse(os.path.exists(bad))
        wait_for(lambda: "does not decode; moved to corrupt/" in d.log(), what="the log line")
        self.assertEqual(d.queue_ids(), [], "not retried every minute")


class UnwritableSpool(unittest.TestCase):
    def test_file_size_limit_gives_452_and_keeps_serving(self):
        limit = 128 * 1024

        def small_files():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

        d = Daemon(preexec_fn=small_files).start()
        try:
            # Over the limit while it arrives (past submission.data_memory it goes to a spill file) ...
            code, msg = submit(d.port, 1, size=300 * 1024)
            self.assertEqual((code, msg[:5]), (452, "4.3.1"), msg)
            self.assertIn("cannot write DATA to the spool: File too large", d.log())
            # ... or only when the queue file is written (held in memory until the dot).
            code, msg = submit(d.port, 3, size=200 * 1024)
            self.assertEqual((code, msg[:5]), (452, "4.3.1"), msg)
            self.assertIn("cannot write queue file", d.log())
            code, msg = submit(d.port, 2, size=1024)
            self.assertEqual(code, 250, msg)
            self.assertEqual(list(spool_seqs(d.spool).values()), [2])
            self.assertEqual(os.listdir(os.path.join(d.spool, "incoming")), [], "nothing half-written remains")
        finally:
            d.cleanup()

    def test_full_disk_gives_452_and_resumes_when_space_returns(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        d = Daemon()
        os.makedirs(d.spool)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", d.spool]).returncode != 0:
            d.cleanup()
            self.skipTest("cannot mount tmpfs here")
        try:
            d.start()
            acked = []
            for seq in range(40):  # 40 x 100 KiB > 1 MiB
                code, msg = submit(d.port, seq, size=100 * 1024)
                if code != 250:
                    self.assertEqual((code, msg[:5]), (452, "4.3.1"), msg)
                    break
                acked.append(QUEUED.search(msg).group(1))
            else:
                self.fail("the disk never filled up")
            self.assertGreater(len(acked), 0)
            self.assertEqual(sorted(d.queue_ids()), sorted(acked), "everything acknowledged is still queued")
            self.assertEqual(os.listdir(os.path.join(d.spool, "incoming")), [])
            # space returns: the operator deletes a few messages
            for qid in acked[:3]:
                d.ctl("queue", "delete", qid)
            code, msg = submit(d.port, 999, size=100 * 1024)
            self.assertEqual(code, 250, msg)
        finally:
            d.stop()
            subprocess.run(["umount", "-l", d.spool])
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
