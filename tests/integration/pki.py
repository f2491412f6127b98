"""A test certificate authority made with the openssl command: a CA, and
leaf certificates it signs for given DNS names (the receivers' STARTTLS
certificates, the MTA-STS policy server's)."""
import hashlib
import os
import subprocess


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class TestCa:
    def __init__(self, d, name="Ricochet test CA"):
        self.dir = d
        self.key, self.pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=" + name,
                "-keyout", self.key, "-out", self.pem)

    def leaf(self, name, sans):
        """(cert.pem, key.pem) for the DNS names sans, signed by this CA."""
        key, csr, pem, ext = (os.path.join(self.dir, name + s) for s in (".key", ".csr", ".pem", ".ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + sans[0], "-keyout", key, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", self.pem, "-CAkey", self.key, "-CAcreateserial", "-days", "2",
                "-extfile", ext, "-out", pem)
        return pem, key


def spki_sha256(cert_pem):
    """The SHA-256 of a certificate's SubjectPublicKeyInfo, hex (TLSA 3 1 1 / 2 1 1)."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_pem, "-noout", "-pubkey"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()
