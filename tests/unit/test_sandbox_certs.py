"""The sandbox's TLS files: the CA survives a restart (a browser told to trust it once keeps
trusting it), each start issues a fresh server certificate for 127.0.0.1 signed by it, and the
private keys are readable by their owner only."""

import ipaddress
from pathlib import Path

from cryptography import x509

from cti.sandbox.certs import ensure_tls


def test_the_ca_is_kept_and_the_server_certificate_is_signed_by_it(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    server_before = first.server_cert.read_bytes()
    again = ensure_tls(tmp_path)
    assert again.ca_cert.read_bytes() == ca_before
    assert again.server_cert.read_bytes() != server_before
    ca = x509.load_pem_x509_certificate(ca_before)
    server = x509.load_pem_x509_certificate(again.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in (tmp_path / "ca.key", again.server_key):
        assert key.stat().st_mode & 0o077 == 0
