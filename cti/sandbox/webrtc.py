"""The sandbox's side of the WebRTC softphones: the WSS listener, its certificate, passwords.

Kept apart from instance.py so the softphone's configuration reads in one place: http.conf gets
loopback ports and the certificate `certs.ensure_tls` made, pjsip_webrtc.conf the passwords derived
from the sandbox's softphone key, and the softphones' RTP stays on loopback (ICE then offers
127.0.0.1 only: no media packet leaves 127.0.0.0/8).
"""

from pathlib import Path

from cti import softphone
from cti.confedit import set_option
from cti.sandbox.certs import ensure_tls


def render_webrtc(
    etc: Path, tls_dir: Path, inner_tls_dir: str, http_port: int, wss_port: int, key: str
) -> Path:
    """Configure the rendered `etc` for softphones; returns the CA certificate browsers trust."""
    files = ensure_tls(tls_dir)
    http = etc / "http.conf"
    text = http.read_text()
    for option, value in (
        ("bindaddr", "127.0.0.1"),
        ("bindport", str(http_port)),
        ("tlsbindaddr", f"127.0.0.1:{wss_port}"),
        ("tlscertfile", f"{inner_tls_dir}/{files.server_cert.name}"),
        ("tlsprivatekey", f"{inner_tls_dir}/{files.server_key.name}"),
    ):
        text = set_option(text, "general", option, value)
    http.write_text(text)
    conf = etc / softphone.CONF_FILE
    text = conf.read_text()
    for option, value in (("media_address", "127.0.0.1"), ("bind_rtp_to_media_address", "yes")):
        text = set_option(text, "webrtc-endpoint", option, value)
    conf.write_text(text)
    softphone.write_passwords(etc, key)
    return files.ca_cert
