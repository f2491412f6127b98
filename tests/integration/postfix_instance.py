"""A throwaway Postfix instance for tests, from its own config folder under
/tmp (the system Postfix is never touched; Debian's package is installed with
"No configuration"). Listens on 127.0.0.1 only; its routes are given as a
transport table, so nothing it does leaves the loopback. Needs root."""
import os
import shutil
import subprocess
import tempfile

from harness import free_port, wait_listening

MASTER_CF = """{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def available():
    return os.geteuid() == 0 and shutil.which("postfix") and shutil.which("postconf")


class Postfix:
    def __init__(self, relay_domains, transport):
        """transport: {domain: "error:5.1.1 ..." | "smtp:[127.0.0.1]:PORT"}"""
        self.dir = tempfile.mkdtemp(prefix="ricochet-pf-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # the postfix user must reach data/ and spool/
        self.etc = os.path.join(self.dir, "etc")
        self.port = free_port()
        for d in ("etc", "spool", "data", "log"):
            os.makedirs(os.path.join(self.dir, d))
        shutil.chown(os.path.join(self.dir, "data"), "postfix", "postfix")
        with open(os.path.join(self.etc, "transport"), "w") as f:
            for domain, t in transport.items():
                f.write("%s %s\n" % (domain, t))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.dir}/spool
data_directory = {self.dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.pf.test
mydomain = pf.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_bind_address = 127.0.0.1
mydestination =
local_recipient_maps =
local_transport = error:local delivery disabled
relay_domains = {" ".join(relay_domains)}
relay_recipient_maps =
transport_maps = texthash:{self.etc}/transport
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
alias_maps =
alias_database =
biff = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
maillog_file_prefixes = {self.dir}
maillog_file = {self.dir}/log/maillog
""")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        subprocess.run(["postfix", "-c", self.etc, "check"], check=True, capture_output=True)

    def start(self):
        subprocess.run(["postfix", "-c", self.etc, "start"], check=True, capture_output=True)
        wait_listening("127.0.0.1", self.port)
        return self

    def log(self):
        try:
            with open(os.path.join(self.dir, "log", "maillog")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
