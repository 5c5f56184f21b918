"""``orchestrion certs dev``: a local certificate authority for trying mutual TLS.

It makes, in one directory:

- ``ca.pem`` / ``ca-key.pem``: a CA (EC P-256) that signs nothing but the certificate
  below; only ``ca.pem`` is needed to run (``ORCHESTRION_TLS__CA_FILE``), the key stays
  so more certificates can be signed by hand;
- ``cert.pem`` / ``key.pem``: one certificate for the given hosts (IP addresses and DNS
  names), usable both to serve (``serverAuth``) and to call (``clientAuth``), which every
  process of a local cluster shares (``ORCHESTRION_TLS__CERT_FILE``, ``__KEY_FILE``).

Keys are written readable by their owner only (0600). Existing files are never
replaced unless asked (``--force``): a CA replaced under running services would lock
them out of each other.

For production, use certificates from the organisation's own CA (or a mesh's), one per
service; the settings are the same.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
FILES = (CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


class CertificatesExist(FileExistsError):
    """Some of the files to write are there already (and ``force`` was not given)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(", ".join(str(p) for p in paths))
        self.paths = paths


@dataclass(frozen=True)
class DevCertificates:
    """Where ``certs dev`` wrote its files."""

    ca_file: Path
    ca_key_file: Path
    cert_file: Path
    key_file: Path

    def environment(self) -> dict[str, str]:
        """The settings that use these files."""
        return {
            "ORCHESTRION_TLS__CA_FILE": str(self.ca_file),
            "ORCHESTRION_TLS__CERT_FILE": str(self.cert_file),
            "ORCHESTRION_TLS__KEY_FILE": str(self.key_file),
        }


def make_dev_certificates(
    directory: Path, *, hosts: list[str], days: int = 365, force: bool = False
) -> DevCertificates:
    """A new CA and a server+client certificate for ``hosts`` in ``directory``;
    :class:`CertificatesExist` when one of the files exists and not ``force``."""
    directory = directory.resolve()
    paths = [directory / name for name in FILES]
    existing = [path for path in paths if path.exists()]
    if existing and not force:
        raise CertificatesExist(existing)
    if not hosts:
        raise ValueError("at least one host is needed")
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    # A few minutes back: clocks of the machines that check it may lag.
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Orchestrion development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Orchestrion development CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_file, ca_key_file, cert_file, key_file = paths
    _write(ca_file, ca.public_bytes(serialization.Encoding.PEM), private=False)
    _write(ca_key_file, _private(ca_key), private=True)
    _write(cert_file, leaf.public_bytes(serialization.Encoding.PEM), private=False)
    _write(key_file, _private(key), private=True)
    return DevCertificates(ca_file, ca_key_file, cert_file, key_file)


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.unlink(missing_ok=True)  # a fresh file gets the mode below, whatever the old one had
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
