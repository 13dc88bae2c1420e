"""Softphone passwords: derived per extension from the key, written into pjsip_webrtc.conf, and
settings that cannot work refused at start."""

import shutil
from pathlib import Path

import pytest

from cti import softphone
from cti.errors import ConfigError
from cti.settings import load_settings
from cti.sitesecrets import placeholders

CONF = Path(__file__).resolve().parents[2] / "asterisk-conf"
KEY = "a-softphone-key-of-forty-characters-0123"


def test_each_extension_has_its_own_password_and_the_key_decides() -> None:
    p3 = softphone.password(KEY, "1003")
    assert p3 == softphone.password(KEY, "1003")
    assert p3 != softphone.password(KEY, "1004")
    assert p3 != softphone.password(KEY[:-1] + "4", "1003")
    assert len(p3) == 24 and p3.replace("-", "").replace("_", "").isalnum()
    with pytest.raises(ConfigError):
        softphone.password("short", "1003")


def test_write_passwords_replaces_the_placeholders_and_is_idempotent(tmp_path: Path) -> None:
    shutil.copy(CONF / softphone.CONF_FILE, tmp_path)
    assert any("pjsip_webrtc.conf" in p for p in placeholders(tmp_path))
    assert softphone.extensions(tmp_path) == ["1003", "1004"]
    assert softphone.write_passwords(tmp_path, KEY) == ["1003", "1004"]
    text = (tmp_path / softphone.CONF_FILE).read_text()
    assert f"password = {softphone.password(KEY, '1003')}" in text
    assert "= change-me" not in text and not placeholders(tmp_path)
    assert softphone.write_passwords(tmp_path, KEY) == []


def test_settings_refuse_softphones_without_a_wss_url_or_a_key() -> None:
    base = {"CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
            "CTI_SOFTPHONE_EXTENSIONS": "1003"}  # fmt: skip
    with pytest.raises(ConfigError, match="softphone_url"):
        load_settings(None, {**base, "CTI_SOFTPHONE_KEY": KEY})
    with pytest.raises(ConfigError, match="softphone_url"):
        load_settings(None, {**base, "CTI_SOFTPHONE_URL": "ws://pbx:8088/ws",
                             "CTI_SOFTPHONE_KEY": KEY})  # fmt: skip
    with pytest.raises(ConfigError, match="softphone_key"):
        load_settings(None, {**base, "CTI_SOFTPHONE_URL": "wss://pbx:8089/ws",
                             "CTI_SOFTPHONE_KEY": "short"})  # fmt: skip
    s = load_settings(None, {**base, "CTI_SOFTPHONE_URL": "wss://pbx:8089/ws",
                             "CTI_SOFTPHONE_KEY": KEY})  # fmt: skip
    assert s.softphone_for("1003") and not s.softphone_for("1001") and not s.softphone_for(None)
    # The softphone agent's calls ring its WebRTC endpoint; the others' their desk phones.
    s = load_settings(None, {**base, "CTI_SOFTPHONE_URL": "wss://pbx:8089/ws",
                             "CTI_SOFTPHONE_KEY": KEY, "CTI_AGENT_INTERFACE": "SIP/{ext}"})  # fmt: skip
    assert s.agent_device("1003") == "PJSIP/1003" and s.agent_device("1001") == "SIP/1001"
    assert KEY not in repr(s)
