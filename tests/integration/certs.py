"""Test certificates, made fresh by each scenario (python3-cryptography): a test CA, server
certificates for chosen names signed by it, and broken ones (wrong name, expired,
self-signed). Keys are written mode 0600, as ternd requires of a private key."""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path, key):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def _write_cert(path, *certs):
    with open(path, "wb") as f:
        for c in certs:
            f.write(c.public_bytes(serialization.Encoding.PEM))


class Issued:
    """A certificate and its key on disk: .cert (the chain, leaf first) and .key."""

    def __init__(self, cert, key):
        self.cert = cert
        self.key = key


class TestCA:
    def __init__(self, directory, name="tern test CA"):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = os.path.join(directory, "ca.pem")
        _write_cert(self.ca_file, self.cert)
        self._n = 0

    def issue(self, names, expired=False, self_signed=False, tag=None):
        """A server certificate for DNS `names` (the first is the CN). Returns Issued."""
        self._n += 1
        tag = tag or f"{names[0]}-{self._n}"
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            start, end = now - datetime.timedelta(days=20), now - datetime.timedelta(days=10)
        else:
            start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        issuer, signer = (_name(names[0]), key) if self_signed else (self.cert.subject, self.key)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(names[0])).issuer_name(issuer)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(signer, hashes.SHA256()))
        cert_path = os.path.join(self.dir, f"{tag}.crt")
        key_path = os.path.join(self.dir, f"{tag}.key")
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
        return Issued(cert_path, key_path)

    def server_context(self, issued):
        """An ssl.SSLContext serving `issued` (for Python test peers)."""
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(issued.cert, issued.key)
        return ctx

    def client_context(self):
        """An ssl.SSLContext trusting this CA (for Python test clients); no name check."""
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca_file)
        ctx.check_hostname = False
        return ctx
