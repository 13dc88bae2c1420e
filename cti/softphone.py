"""The WebRTC softphones' SIP passwords: one per agent, derived from the CTI server's key.

Asterisk reads static passwords from `pjsip_webrtc.conf` and the CTI server has to hand each
logged-in agent the password of their own endpoint, without the two sharing a file and without a
password common to all agents. So each password is HMAC-SHA256(softphone key, extension): the
deploy writes them into `pjsip_webrtc.conf` with the key, the server derives the same one for the
agent who asks, and knowing one agent's password tells nothing about another's. Changing the key
(and writing the file again) changes every softphone password at once.
"""

import base64
import hashlib
import hmac
from pathlib import Path

from cti.confedit import options, replace_options
from cti.errors import ConfigError

CONF_FILE = "pjsip_webrtc.conf"
MIN_KEY = 32  # characters; secrets.token_urlsafe(32) gives 43


def check_key(key: str) -> str:
    """`key` if it is long enough to derive passwords from, else ConfigError."""
    if len(key) < MIN_KEY:
        raise ConfigError(f"the softphone key needs at least {MIN_KEY} characters")
    return key


def password(key: str, extension: str) -> str:
    """The SIP password of the softphone endpoint `extension` (24 URL-safe characters)."""
    digest = hmac.new(
        check_key(key).encode(), f"softphone:{extension}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode()[:24]


def extensions(conf_dir: Path) -> list[str]:
    """The softphone endpoints `pjsip_webrtc.conf` in `conf_dir` defines (auth sections)."""
    path = conf_dir / CONF_FILE
    if not path.exists():
        return []
    return [section for section, _ in options(path.read_text(), "password")]


def write_passwords(conf_dir: Path, key: str) -> list[str]:
    """Put every softphone's derived password into `pjsip_webrtc.conf`; the sections changed."""
    path = conf_dir / CONF_FILE
    if not path.exists():
        return []
    check_key(key)
    changed: list[str] = []

    def derived(section: str, value: str) -> str | None:
        new = password(key, section)
        if new == value:
            return None
        changed.append(section)
        return new

    path.write_text(replace_options(path.read_text(), "password", derived))
    return changed
