"""Starts and stops a real ricochetd for integration tests, on loopback only.

Each Daemon gets its own temporary directory (spool, events, control socket,
config) and a free port, so two test runs never collide. Readiness is
awaited by connecting to the port, never by sleeping.
"""
import json
import os
import signal
import sys
import socket
import subprocess
import tempfile
import time

# A real Prometheus text parser for /metrics.
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's python3-prometheus-client (scripts/deps.sh) is pure Python in
    # /usr/lib/python3/dist-packages, which an interpreter of its own (pyenv)
    # does not search: it is taken from there, after the interpreter's own.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        def text_string_to_metric_families(text):  # only the tests that read /metrics fail
            raise ImportError("prometheus_client is missing: apt-get install python3-prometheus-client (scripts/deps.sh)")

BIN = os.environ.get("RICOCHET_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SOURCE = os.environ.get("RICOCHET_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))


_handed_out = set()  # ports this process was given: never handed out twice


def sanitized():
    """True when ricochetd is built with AddressSanitizer (build-asan): its
    shadow memory and quarantine make RSS no measure of the daemon's own."""
    r = subprocess.run(["ldd", os.path.join(BIN, "ricochetd")], capture_output=True, text=True)
    return "libasan" in r.stdout


def free_port(host="127.0.0.1"):
    """A port free now, and not one this process was given before: two calls
    in a row may otherwise get the same port from the kernel (seen in CI:
    the bounce listener and the API on one port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    return port


def wait_listening(host, port, proc=None, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("daemon exited with %s" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)  # polling interval while the port comes up, not a synchronisation sleep
    raise TimeoutError("nothing listens on %s:%d" % (host, port))


# Tests never resolve through the machine's resolver: by default the daemon
# asks a loopback port where nothing listens (every lookup fails at once,
# temporarily), and DNS tests start their own server.
NO_DNS = '[delivery]\ndns_servers = ["127.0.0.1:9"]\n'


class Daemon:
    def __init__(self, extra_config="", submission_extra="", trusted=None, preexec_fn=None, bounce_extra="",
                 http_extra="", server_extra="", state=None):
        self.dir = tempfile.mkdtemp(prefix="ricochet-it-")
        self.port = free_port()
        self.bounce_port = free_port()
        self.http_port = free_port()
        self.config_path = os.path.join(self.dir, "ricochet.toml")
        self.log_path = os.path.join(self.dir, "ricochetd.log")
        self.preexec_fn = preexec_fn
        self.env = None  # the daemon's environment (None: this process's)
        trusted = trusted if trusted is not None else ["127.0.0.0/8", "::1/128"]
        # [bounce_listener] stays the last table before extra_config: the
        # top-level keys extra_config may start with (delivery_config's
        # `domain = ...`) belong to it.
        text = f"""
[server]
hostname = "ricochet.test"
spool_dir = "{self.dir}/spool"
state = "{state or 'sqlite:' + self.dir + '/state.db'}"
control_socket = "{self.dir}/ricochetd.sock"
events_log = "{self.dir}/events.jsonl"
log_level = "info"
{server_extra}

[submission]
listen = ["127.0.0.1:{self.port}"]
trusted_networks = {json.dumps(trusted)}
{submission_extra}
{"" if "[delivery]" in extra_config else NO_DNS}
[http]
listen = ["127.0.0.1:{self.http_port}"]
{http_extra}
[bounce_listener]
listen = ["127.0.0.1:{self.bounce_port}"]
{bounce_extra}
{extra_config}
"""
        # The shipped rules, wherever the test runs from.
        rules = 'rules = "%s"\n' % os.path.join(os.path.abspath(SOURCE), "etc", "bounce-rules.toml")
        text = text.replace("[bounce]\n", "[bounce]\n" + rules) if "[bounce]\n" in text else text + "[bounce]\n" + rules
        with open(self.config_path, "w") as f:
            f.write(text)
        self.proc = None

    @property
    def spool(self):
        return os.path.join(self.dir, "spool")

    @property
    def events_path(self):
        return os.path.join(self.dir, "events.jsonl")

    def start(self):
        for attempt in range(3):
            start_of_log = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            with open(self.log_path, "a") as log:
                self.proc = subprocess.Popen([os.path.join(BIN, "ricochetd"), "--config", self.config_path],
                                             stdout=log, stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn,
                                             env=self.env)
            try:
                wait_listening("127.0.0.1", self.port, self.proc)
                wait_listening("127.0.0.1", self.bounce_port, self.proc)
                wait_listening("127.0.0.1", self.http_port, self.proc)
                return self
            except RuntimeError:
                said = self.log()[start_of_log:]
                # free_port() cannot hold the port it found: another process
                # (any outgoing connection takes ports from the same range)
                # may bind it first. Then the ports are chosen again.
                if attempt < 2 and "Address already in use" in said:
                    self._new_ports()
                    continue
                raise RuntimeError("daemon exited with %s:\n%s" % (self.proc.returncode, said[-3000:]))
        return self

    def _new_ports(self):
        with open(self.config_path) as f:
            text = f.read()
        port, bounce_port, http_port = free_port(), free_port(), free_port()
        # Through placeholders: a new port may equal an old one of another listener.
        for i, old in enumerate((self.port, self.bounce_port, self.http_port)):
            text = text.replace("127.0.0.1:%d\"" % old, "127.0.0.1:@PORT%d@\"" % i)
        for i, new in enumerate((port, bounce_port, http_port)):
            text = text.replace("127.0.0.1:@PORT%d@\"" % i, "127.0.0.1:%d\"" % new)
        self.port, self.bounce_port, self.http_port = port, bounce_port, http_port
        with open(self.config_path, "w") as f:
            f.write(text)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.check_sanitizers()

    def check_sanitizers(self):
        """Under ASan/UBSan (build-asan), a report in the daemon's log fails the test."""
        if not os.path.exists(self.log_path):
            return
        text = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                at = text.index(marker)
                raise AssertionError("sanitizer report in %s:\n%s" % (self.log_path, text[max(0, at - 200):at + 3000]))

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def events(self):
        if not os.path.exists(self.events_path):
            return []
        # Only whole lines: the daemon may be writing the last one (a line
        # is one write, but a read can still see part of it).
        with open(self.events_path) as f:
            return [json.loads(l) for l in f if l.endswith("\n") and l.strip()]

    def ctl(self, *args, check=True):
        r = subprocess.run([os.path.join(BIN, "ricochetctl"), "--config", self.config_path, *args],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("ricochetctl %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, "--json").stdout)

    def queue_ids(self, state=None):
        args = ["queue", "list"] + (["--state", state] if state else [])
        return [m["id"] for m in self.ctl_json(*args)]

    def cleanup(self):
        try:
            self.stop()
        finally:
            subprocess.run(["rm", "-rf", self.dir])


class RawClient:
    """A line-level SMTP client for exact protocol checks."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self):
        """Reads one complete (possibly multi-line) reply; returns its text."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed; got so far: %r" % (lines,))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()

    def __del__(self):
        self.sock.close()


def message(seq=0, campaign=None, size=0, extra_headers=""):
    body = ("x" * 70 + "\r\n") * (size // 72 + 1) if size else "hello\r\n"
    head = "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: test %d\r\nX-Test-Seq: %d\r\n" % (seq, seq)
    if campaign:
        head += "X-Campaign-ID: %s\r\n" % campaign
    return head + extra_headers + "\r\n" + body


def wait_for(cond, timeout=30.0, what="condition"):
    """Polls cond() until it is true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)  # polling interval of the wait, bounded by timeout
    raise AssertionError("timed out waiting for " + what)


def delivery_config(routes, interval="1s", max_age="1h", tls="opportunistic", per_domain=20, per_conn=100, extra="",
                    retry_extra="", dns="127.0.0.1:9", port=25, command_timeout="10s"):
    """Config text routing each domain to a sink: routes = {domain: (host, port)}."""
    text = 'domain = "bnc.test"\n'
    text += "[delivery]\ntls = %r\nmax_connections_per_domain = %d\nmax_messages_per_connection = %d\n" % (
        tls, per_domain, per_conn)
    text += 'dns_servers = ["%s"]\ndns_timeout = "1s"\nport = %d\n' % (dns, port)
    text += 'connect_timeout = "5s"\ncommand_timeout = "%s"\ndata_timeout = "10s"\n' % command_timeout + extra
    for domain, (host, port) in routes.items():
        text += '[[delivery.route]]\ndomain = "%s"\nhost = "%s:%d"\n' % (domain, host, port)
    text += '[retry]\ninterval = "%s"\nmax_age = "%s"\n' % (interval, max_age) + retry_extra
    return text.replace("'", '"')
