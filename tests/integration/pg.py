"""A real PostgreSQL server for tests: initdb into a temporary directory,
pg_ctl on a free loopback port, stopped (and the directory removed) at the
end. Run as root, the server runs as the `postgres` user (PostgreSQL refuses
root); otherwise as the user running the tests. Passwords are checked
(scram-sha-256) on TCP, as on a real deployment; the test's own psql
connects over the Unix socket in the data directory."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from harness import free_port


def _bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (scripts/deps.sh installs postgresql-15)")
    return found[-1]


class Postgres:
    user, password = "ricochet", "s3cret pass"

    def __init__(self, durable=False):
        self.root = os.getuid() == 0
        self.dir = tempfile.mkdtemp(prefix="ricochet-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        if self.root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._as_owner([_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "shared_buffers = %s\nmax_connections = 50\n" % (self.port, self.dir, "128MB" if durable else "32MB"))
            # Tests: no fsync (nothing to keep). Benchmarks (durable): fsync
            # on, commits not waited for (synchronous_commit = off: a crash may
            # lose the last commits, never corrupt), as SQLite's WAL with
            # synchronous = NORMAL does for the one-node store.
            f.write("fsync = on\nsynchronous_commit = off\n" if durable else "fsync = off\n")
        self.start()
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s' CREATEDB" % (self.user, self.password))

    def enable_tls(self):
        """TLS on the TCP port (a self-signed certificate for 127.0.0.1, which is
        also the CA a client verifies it with: returned). Plain connections
        still work; libpq's default (sslmode=prefer) now gets TLS."""
        cert, key = os.path.join(self.dir, "server.crt"), os.path.join(self.dir, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        if self.root:
            pw = pwd.getpwnam("postgres")
            for f in (cert, key):
                os.chown(f, pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n" % (cert, key))
        self._as_owner([_bin("pg_ctl"), "-D", self.data, "reload"])
        self.psql("SELECT 1")  # the reload is read by the next connection
        return cert

    def _as_owner(self, cmd, check=True, **kw):
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        # -w: pg_ctl returns once the server accepts connections.
        self._as_owner([_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "-l", os.path.join(self.dir, "log"), "start"])
        return self

    def stop(self):
        self._as_owner([_bin("pg_ctl"), "-D", self.data, "-w", "-m", "fast", "stop"], check=False)

    def psql(self, sql, db="postgres"):
        """Runs SQL as the superuser over the Unix socket; returns the rows (tab-separated, unaligned)."""
        r = self._as_owner([_bin("psql"), "-X", "-q", "-At", "-F", "\t", "-h", self.dir, "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql])
        return [l.split("\t") for l in r.stdout.splitlines() if l]

    def new_database(self, name):
        self.psql('CREATE DATABASE "%s" OWNER %s' % (name, self.user))
        return self.url(name)

    def url(self, db):
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (self.user, self.password.replace(" ", "%20"), self.port, db)

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    # For scripts (bench/state.sh): "pg.py start" prints the server's URL
    # base (no database) and its directory; "pg.py stop DIR" stops it and
    # removes the directory; "pg.py createdb DIR NAME" prints a database URL.
    import sys
    if sys.argv[1:2] == ["start"]:
        p = Postgres(durable=True)
        print(p.url("postgres").rsplit("/", 1)[0], p.dir)
    elif sys.argv[1:2] in (["stop"], ["createdb"]):
        p = Postgres.__new__(Postgres)
        p.root, p.dir = os.getuid() == 0, sys.argv[2]
        p.data = os.path.join(p.dir, "data")
        with open(os.path.join(p.data, "postgresql.conf")) as f:
            p.port = int([l.split("=")[1] for l in f if l.startswith("port =")][-1])
        if sys.argv[1] == "stop":
            p.cleanup()
        else:
            print(p.new_database(sys.argv[3]))
    else:
        sys.exit("usage: pg.py start | stop DIR | createdb DIR NAME")
