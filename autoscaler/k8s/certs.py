"""Self-signed certificates: a CA and the certificates it signs (PEM files).

Why: the external metrics API must speak HTTPS. In a cluster its serving certificate comes from
a Secret (cert-manager, or the APIService's caBundle); without one, ``sloscaler run`` makes a
self-signed one as metrics-server does (the APIService then needs ``insecureSkipTLSVerify``).
Tests use the same code to make a serving CA, a front-proxy CA and client certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Issued:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Issued(cert_path, key_path)


def _builder(
    subject: str,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    not_before: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before - dt.timedelta(minutes=5))
        .not_valid_after(not_before + dt.timedelta(days=days))
    )


def make_ca(directory: Path, cn: str, not_before: dt.datetime, days: int = 365) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(cn, _name(cn), key.public_key(), not_before, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write(directory, cn, cert, key)


def issue(
    ca: Issued,
    directory: Path,
    cn: str,
    not_before: dt.datetime,
    *,
    server_names: tuple[str, ...] = (),
    client: bool = False,
    days: int = 365,
) -> Issued:
    """A leaf certificate signed by ``ca``: a server one (``server_names`` as SANs; IPs as IP
    SANs) or a client one."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(cn, ca_cert.subject, key.public_key(), not_before, days).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(directory, cn, builder.sign(ca_key, hashes.SHA256()), key)


def self_signed_serving(
    directory: Path, names: tuple[str, ...], now: float
) -> tuple[Issued, Issued]:
    """(CA, serving certificate) for ``names``, valid from ``now`` (clock seconds) for a year."""
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    ca = make_ca(directory, "sloscaler-serving-ca", start)
    return ca, issue(ca, directory, "sloscaler-serving", start, server_names=names)
