"""The sandbox's side of the WebRTC softphones: the WSS listener, its certificate, passwords.

Kept apart from instance.py so the softphone's configuration reads in one place: http.conf gets
loopback ports and the certificate `certs.ensure_tls` made, pjsip_webrtc.conf the passwords derived
from the sandbox's softphone key, and the softphones' RTP binds to 127.0.0.1 with 127.0.0.1 the only
ICE candidate Asterisk offers (no media packet leaves the host).
"""

import fcntl
import socket
import struct
from pathlib import Path

from cti import softphone
from cti.confedit import set_option
from cti.sandbox.certs import ensure_tls

SIOCGIFADDR = 0x8915


def interface_addresses() -> list[str]:
    """The IPv4 addresses of this host's interfaces (the ones Asterisk's ICE enumerates)."""
    found = []
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(
                    s.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode())
                )
            except OSError:  # an interface with no IPv4 address
                continue
        found.append(socket.inet_ntoa(packed[20:24]))
    return found


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
    # Asterisk's ICE host candidates are this host's interface addresses (never loopback), even
    # with RTP bound to 127.0.0.1; rtp.conf maps each to 127.0.0.1. An interface that comes up
    # after this (podman's bridge, when the compose test starts beside the others) would be
    # offered as it is, so the ICE access list denies every address but loopback and the ones
    # mapped here (Asterisk's ACL: the last matching rule wins).
    rtp = etc / "rtp.conf"
    text = rtp.read_text() if rtp.exists() else "[general]\n"
    mapped = [a for a in interface_addresses() if not a.startswith("127.")]
    for address in mapped:
        text = set_option(text, "ice_host_candidates", address, "127.0.0.1")
    rules = ["ice_deny = 0.0.0.0/0", "ice_permit = 127.0.0.0/8"]
    rules += [f"ice_permit = {address}/32" for address in mapped]
    text = text.replace("[general]\n", "[general]\n" + "\n".join(rules) + "\n", 1)
    rtp.write_text(text)
    softphone.write_passwords(etc, key)
    return files.ca_cert
