"""``orchestrion certs dev``: a CA and a certificate that verify, never written over an
existing one unless asked; and settings that go together."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

from orchestrion.settings import TlsSettings
from tests.fixtures.processes import run_command


def test_certs_dev_makes_a_ca_and_refuses_to_overwrite(tmp_path: Path) -> None:
    made = run_command(
        tmp_path, "certs", "dev", "--dir", "tls", "--hosts", "127.0.0.1,svc.internal"
    )
    assert made.returncode == 0, made.stderr
    directory = tmp_path / "tls"
    assert made.stdout.splitlines() == [
        f"export ORCHESTRION_TLS__CA_FILE={directory / 'ca.pem'}",
        f"export ORCHESTRION_TLS__CERT_FILE={directory / 'cert.pem'}",
        f"export ORCHESTRION_TLS__KEY_FILE={directory / 'key.pem'}",
    ]
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["svc.internal"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    for key in ("ca-key.pem", "key.pem"):
        assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600

    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    again = run_command(tmp_path, "certs", "dev", "--dir", "tls")
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    assert again.stdout == ""
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before

    forced = run_command(tmp_path, "certs", "dev", "--dir", "tls", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (directory / "ca.pem").read_bytes() != before["ca.pem"]


def test_tls_settings_go_together(tmp_path: Path) -> None:
    assert not TlsSettings().enabled
    assert TlsSettings().server_options() == {}
    with pytest.raises(ValidationError, match="go together"):
        TlsSettings(ca_file=tmp_path / "ca.pem", cert_file=tmp_path / "cert.pem")
    run_command(tmp_path, "certs", "dev", "--dir", ".")
    missing = run_command(
        tmp_path, "serve", "auth",
        ORCHESTRION_TLS__CA_FILE=str(tmp_path / "ca.pem"),
        ORCHESTRION_TLS__CERT_FILE=str(tmp_path / "cert.pem"),
        ORCHESTRION_TLS__KEY_FILE=str(tmp_path / "nowhere.pem"),
    )  # fmt: skip
    assert missing.returncode == 2
    assert "ORCHESTRION_TLS__" in missing.stderr
