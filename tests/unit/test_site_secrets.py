"""Per-site secrets at deploy: the container's entrypoint (run here with sh on a copy of
asterisk-conf/) and `cti asterisk-secrets` leave no placeholder anyone could know, keep what a
site set, and refuse to go on with a placeholder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cti import softphone
from cti.confedit import options
from cti.sitesecrets import is_placeholder, placeholders, write_site_secrets

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "asterisk-entrypoint.sh"


def deployed(tmp_path: Path, name: str = "etc") -> Path:
    """asterisk-conf/ as the image holds it (without the sandbox's simulation)."""
    etc = tmp_path / name
    shutil.copytree(ROOT / "asterisk-conf", etc, ignore=shutil.ignore_patterns("sim"))
    return etc


def passwords(etc: Path) -> dict[str, str]:
    return dict(options((etc / "pjsip.conf").read_text(), "password"))


def test_the_shipped_configuration_has_only_placeholders() -> None:
    left = placeholders(ROOT / "asterisk-conf")
    assert (
        "manager.conf [cti] secret" in left and "extensions.conf [globals] CTI_AGI_SECRET" in left
    )
    assert {"pjsip.conf [1001] password", "pjsip.conf [carrier] password"} <= set(left)


SOFT_KEY = "the-softphone-key-of-this-site-0123456789"


def entrypoint(
    etc: Path, state: Path, marker: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "ASTERISK_ETC": str(etc), "CTI_SECRETS_DIR": str(state),
            **env}  # fmt: skip
    return subprocess.run(["sh", str(ENTRYPOINT), "touch", str(marker)], env=full, text=True,
                          capture_output=True, timeout=30, check=False)  # fmt: skip


def test_entrypoint_writes_site_secrets_and_keeps_the_phones_across_containers(
    tmp_path: Path,
) -> None:
    state, started = tmp_path / "state", tmp_path / "started"
    secrets = {"CTI_AMI_SECRET": "ami-Se3cret", "CTI_AGI_SECRET": "agi-Se3cret"}
    first = deployed(tmp_path, "first")
    run = entrypoint(first, state, started, **secrets, CTI_TRUNK_PASSWORD='p@ss;/w&rd\\"',
                     CTI_SOFTPHONE_KEY=SOFT_KEY)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert started.exists(), "Asterisk was not started"
    assert placeholders(first) == []
    assert dict(options((first / "manager.conf").read_text(), "secret"))["cti"] == "ami-Se3cret"
    agi = dict(options((first / "extensions.conf").read_text(), "CTI_AGI_SECRET"))
    assert agi["globals"] == "agi-Se3cret"
    phones = passwords(first)
    assert phones["1001"] != phones["1002"] and len(phones["1001"]) >= 24
    # Verbatim, with the ; escaped (a bare one starts a comment in Asterisk's files).
    assert (first / "pjsip.conf").read_text().count('password = p@ss\\;/w&rd\\"\n') == 1
    assert "ami-Se3cret" not in run.stderr and phones["1001"] not in run.stderr
    # The softphones get the password the CTI server derives from the same key.
    webrtc = (first / "pjsip_webrtc.conf").read_text()
    assert f"password = {softphone.password(SOFT_KEY, '1004')}\n" in webrtc
    # A re-created container starts from the image's files again: the phones keep theirs.
    second = deployed(tmp_path, "second")
    assert entrypoint(second, state, started, **secrets).returncode == 0
    again = passwords(second)
    assert (again["1001"], again["1002"]) == (phones["1001"], phones["1002"])
    assert not is_placeholder(again["carrier"])
    assert (state / "sip-passwords").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "env",
    [
        {"CTI_AGI_SECRET": "agi-Se3cret"},
        {"CTI_AMI_SECRET": "change-me-on-every-site", "CTI_AGI_SECRET": "agi-Se3cret"},
        {"CTI_AMI_SECRET": "ami-Se3cret", "CTI_AGI_SECRET": ""},
        {"CTI_AMI_SECRET": "ami Se3cret/x", "CTI_AGI_SECRET": "agi-Se3cret"},
    ],
)
def test_entrypoint_refuses_placeholders_and_does_not_start(
    tmp_path: Path, env: dict[str, str]
) -> None:
    started = tmp_path / "started"
    run = entrypoint(deployed(tmp_path), tmp_path / "state", started, **env)
    assert run.returncode != 0 and not started.exists()
    assert "CTI_AMI_SECRET" in run.stderr or "CTI_AGI_SECRET" in run.stderr


def test_entrypoint_will_not_start_with_a_placeholder_it_cannot_replace(tmp_path: Path) -> None:
    etc = deployed(tmp_path)
    text = (etc / "manager.conf").read_text()
    (etc / "manager.conf").write_text(text + "\n[monitor]\nsecret = change-me\nread = system\n")
    started = tmp_path / "started"
    run = entrypoint(etc, tmp_path / "state", started, CTI_AMI_SECRET="a1", CTI_AGI_SECRET="b2")
    assert run.returncode != 0 and not started.exists()
    assert "placeholder" in run.stderr and "manager.conf" in run.stderr
    assert "[monitor]" not in run.stderr  # where, not what


def test_cti_asterisk_secrets_command(tmp_path: Path) -> None:
    etc = deployed(tmp_path)
    env_file = tmp_path / "cti.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    run = subprocess.run(
        [sys.executable, "-m", "cti", "asterisk-secrets", str(etc), "--env-file", str(env_file)],
        env=env, text=True, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert placeholders(etc) == []
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert (
        written["CTI_AMI_SECRET"]
        == dict(options((etc / "manager.conf").read_text(), "secret"))["cti"]
    )
    assert env_file.stat().st_mode & 0o077 == 0
    # The softphones' passwords come from the key the CTI server is given (cti/softphone.py).
    key = written["CTI_SOFTPHONE_KEY"]
    webrtc = (etc / "pjsip_webrtc.conf").read_text()
    assert f"password = {softphone.password(key, '1003')}" in webrtc
    # Again: what the site has now is kept.
    before = passwords(etc)
    assert write_site_secrets(etc).changed == [] and passwords(etc) == before
