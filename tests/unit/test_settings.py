"""Settings from defaults, a TOML file and CTI_* environment variables."""

from pathlib import Path

import pytest

from cti.errors import ConfigError
from cti.settings import load_settings

AMI = {"CTI_AMI_HOST": "10.0.0.5", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "s3cret"}


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cti.toml"
    cfg.write_text("http_port = 9000\n[ami]\nport = 5039\nping_interval = 2.5\n")
    s = load_settings(cfg, {**AMI, "CTI_HTTP_PORT": "9100"})
    assert s.http_port == 9100 and s.ami_port == 5039 and s.ami_ping_interval == 2.5
    assert s.ami_host == "10.0.0.5"
    assert "s3cret" not in repr(s) and s.masked()["ami_secret"] == "***"


def test_default_database_is_sqlite_in_data_dir() -> None:
    s = load_settings(None, {**AMI, "CTI_DATA_DIR": "/srv/cti"})
    assert s.effective_database_url == "sqlite+aiosqlite:////srv/cti/cti.sqlite3"


def test_database_password_is_masked() -> None:
    s = load_settings(None, {**AMI, "CTI_DATABASE_URL": "postgresql+asyncpg://u:pw@db/cti"})
    assert s.masked()["database_url"] == "postgresql+asyncpg://***@db/cti"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CTI_HTTP_PORT": "eighty"}, "CTI_HTTP_PORT"),
        ({"CTI_TIMEZONE": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, {**AMI, **env})


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "cti.toml"
    cfg.write_text("htp_port = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'htp_port'"):
        load_settings(cfg, AMI)


def test_no_ami_settings_fall_back_to_the_sandbox(tmp_path: Path) -> None:
    s = load_settings(None, {"CTI_SANDBOX": "nonexistent-sandbox", "CTI_CACHE_DIR": str(tmp_path)})
    assert s.ami_host == "127.0.0.1" and s.ami_user == "cti"


def test_a_sandbox_writing_cdrs_gives_the_server_their_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from dataclasses import asdict

    from cti.sandbox.instance import Instance, InstanceState

    monkeypatch.setenv("CTI_CACHE_DIR", str(tmp_path))
    inst = Instance("withcdr")
    inst.dir.mkdir(parents=True)
    st = InstanceState("withcdr", "127.0.0.1", 5038, "cti", "s3cret-ami-0123456789", "sim", "x",
                       5060, "127.0.0.1", 4573, "", "", "", "",
                       cdr_database="postgresql://postgres@127.0.0.1:5433/cdrs")  # fmt: skip
    inst.state_file.write_text(json.dumps(asdict(st)))
    s = load_settings(None, {"CTI_SANDBOX": "withcdr"})
    assert s.cdr_database_url == "postgresql+asyncpg://postgres@127.0.0.1:5433/cdrs"
    assert "cdr_database_url" not in repr(s)
    mine = load_settings(None, {"CTI_SANDBOX": "withcdr", "CTI_CDR_DATABASE_URL": "postgresql+asyncpg://u:pw@127.0.0.1/x"})  # fmt: skip
    assert mine.cdr_database_url.endswith("/x") and "pw" not in str(mine.masked())
