"""Declaring several Asterisk servers: CTI_ASTERISKS / [asterisks.NAME], with the CTI_AMI_*
Asterisk as the default one ("main"); bad declarations are refused with a message naming them."""

import json
from pathlib import Path

import pytest

from cti.asterisks import sites_of
from cti.errors import ConfigError
from cti.settings import load_settings

BASE = {"CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "s" * 20}


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(None, {**BASE, **env})


def test_one_asterisk_stays_the_default_main() -> None:
    s = settings(CTI_QUEUE_LOG_PATH="/var/log/asterisk/queue_log")
    [main] = s.asterisk_servers
    assert (main.name, main.site, main.ami_host, main.queue_log_path) == (
        "main",
        "main",
        "127.0.0.1",
        "/var/log/asterisk/queue_log",
    )
    assert main.ami_secret == "s" * 20 and "s" * 20 not in repr(main)


def test_json_declares_more_with_their_sites() -> None:
    declared = {"east": {"site": "上海", "ami_host": "10.0.0.2", "ami_port": 5039,
                         "ami_user": "cti", "ami_secret": "e" * 20,
                         "queue_log_path": "/mnt/east/queue_log", "agi_port": 4574}}  # fmt: skip
    s = settings(CTI_SITE="北京", CTI_ASTERISKS=json.dumps(declared))
    main, east = s.asterisk_servers
    assert (main.name, main.site) == ("main", "北京")
    assert (east.name, east.site, east.ami_port, east.agi_port) == ("east", "上海", 5039, 4574)
    assert sites_of(s.asterisk_servers) == {"北京": ("main",), "上海": ("east",)}
    shown = s.masked()["asterisks"]
    assert shown == [{"name": "east", "site": "上海", "ami": "10.0.0.2:5039", "ami_user": "cti",
                      "queue_log": "/mnt/east/queue_log"}]  # fmt: skip
    assert "e" * 20 not in json.dumps(s.masked(), ensure_ascii=False)


def test_toml_tables_declare_them_too(tmp_path: Path) -> None:
    cfg = tmp_path / "cti.toml"
    cfg.write_text(
        'site = "北京"\n[asterisks.west]\nsite = "成都"\nami_host = "10.0.0.3"\n'
        'ami_secret = "w-secret-w-secret"\n',
        encoding="utf-8",
    )
    s = load_settings(cfg, BASE)
    assert [(a.name, a.site, a.ami_port) for a in s.asterisk_servers] == [
        ("main", "北京", 5038),
        ("west", "成都", 5038),
    ]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "an object"),
        ('{"East Side": {"ami_host": "h"}}', "lower-case"),
        ('{"east": "10.0.0.2"}', "a table"),
        ('{"east": {"ami_host": "h", "ami_pasword": "x"}}', "unknown key(s) ami_pasword"),
        ('{"east": {"site": "x"}}', "ami_host is needed"),
        ('{"east": {"ami_host": "h", "ami_port": "http"}}', "ami_port must be a number"),
        ('{"east": {"ami_host": "h", "ami_port": 70000}}', "out of range"),
        ('{"east": {"ami_host": ["h"]}}', "must be text"),
        ('{"main": {"ami_host": "h"}}', "'main' is the Asterisk of the CTI_AMI_* settings"),
        ('{"east": {"ami_host": "h", "agi_port": 4573}}', "agi_port of its own"),
        ('{"east": {"ami_host": "h", "sandbox": "no-such-sandbox-here"}}', "is not set up"),
    ],
)
def test_bad_declarations_are_refused_by_name(raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(CTI_ASTERISKS=raw)
    assert "asterisks" in str(err.value) and words in str(err.value)


def test_an_empty_declaration_is_one_asterisk() -> None:
    assert [a.name for a in settings(CTI_ASTERISKS=" ").asterisk_servers] == ["main"]


def test_each_asterisk_has_its_own_cdr_table() -> None:
    """The CTI_CDR_* table is the default Asterisk's; another declares its own (or none)."""
    declared = {"east": {"ami_host": "10.0.0.2", "ami_secret": "e" * 20,
                         "cdr_database_url": "postgresql+asyncpg://ro:cdr-pw@10.0.0.2/asterisk",
                         "cdr_table": "cdr_east"},
                "west": {"ami_host": "10.0.0.3", "ami_secret": "w" * 20}}  # fmt: skip
    s = settings(
        CTI_CDR_DATABASE_URL="postgresql+asyncpg://ro:main-pw@db/asterisk",
        CTI_ASTERISKS=json.dumps(declared),
    )
    main, east, west = s.asterisk_servers
    assert (main.cdr_database_url, main.cdr_table) == (s.cdr_database_url, "cdr")
    assert (east.cdr_database_url, east.cdr_table) == (declared["east"]["cdr_database_url"],
                                                       "cdr_east")  # fmt: skip
    assert (west.cdr_database_url, west.cdr_table) == ("", "cdr")
    shown = json.dumps(s.masked(), ensure_ascii=False)
    assert "cdr-pw" not in shown and "main-pw" not in shown and "cdr-pw" not in repr(east)
    assert [a.get("cdr") for a in s.masked()["asterisks"]] == ["cdr_east", None]
