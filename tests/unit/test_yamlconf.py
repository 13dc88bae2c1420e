"""Reading YAML configuration files: regressions the fuzzers found (tests/fuzz/test_yaml_config.py)."""

import time
from pathlib import Path

import pytest

from cti.errors import ConfigError
from cti.ivr.config import DEFAULTS as IVR_DEFAULTS
from cti.ivr.hours import load_hours
from cti.ivr.menu import load_menu
from cti.ivr.prompts import load_prompts
from cti.routing.config import DEFAULTS as ROUTING_DEFAULTS
from cti.routing.config import load_routing


def hours_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "hours.yaml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # Found by the fuzzer: UnicodeDecodeError and yaml.reader.ReaderError escaped.
        (b"\x80", r"hours\.yaml line 1: not UTF-8 text"),
        (b"weekly: {}\n# \xe5\x00\n", r"hours\.yaml line 2: not UTF-8 text"),
        (b"\x00", r"hours\.yaml line 1: special characters are not allowed \(#x0000\)"),
        (b"weekly:\n  mon: []\n  tue: \x07\n", r"hours\.yaml line 3: special characters"),
    ],
)
def test_a_file_that_is_not_yaml_text_is_a_config_error_with_its_line(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_hours(hours_file(tmp_path, data))


def test_a_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "hours.yaml").mkdir()  # a folder where the file should be
    with pytest.raises(ConfigError, match=r"hours\.yaml: cannot be read"):
        load_hours(tmp_path / "hours.yaml")


def bomb(levels: int, width: int, where: str) -> str:
    lines = [f"x0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"{where}: *a{levels - 1}", ""])


def test_a_yaml_bomb_is_refused_at_once(tmp_path: Path) -> None:
    # Found by the fuzzer: nine lines whose aliases stand for 9**9 values, used as menu.yaml's
    # languages (or as a key), kept the loader busy for minutes (str() of the expanded list).
    path = tmp_path / "menu.yaml"
    path.write_text(bomb(9, 9, "languages"), encoding="utf-8")
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"menu\.yaml line 6: more than 100000 values"):
        load_menu(path, set())
    assert time.monotonic() - start < 5


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    # Found by the fuzzer: 'languages: [[[[...' raised RecursionError out of PyYAML's composer.
    path = hours_file(tmp_path, b"weekly: {}\nholidays: " + b"[" * 2000 + b"]" * 2000 + b"\n")
    with pytest.raises(ConfigError, match=r"hours\.yaml line 2: nested deeper than 64 levels"):
        load_hours(path)


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 2: an alias inside the node it refers to"):
        load_hours(hours_file(tmp_path, b"weekly: {}\nholidays: &h [*h]\n"))


def test_anchors_and_aliases_within_reason_still_work(tmp_path: Path) -> None:
    path = hours_file(
        tmp_path,
        b'weekly:\n  mon: &day ["08:30-12:00", "13:00-17:30"]\n  tue: *day\n  wed: *day\n',
    )
    assert load_hours(path).weekly["wed"] == load_hours(path).weekly["mon"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # Found by the fuzzer: 'languages: ~' raised TypeError ('NoneType' object is not
        # iterable) and 'languages: ' a yaml ParserError, out of load_menu.
        ("languages: [zh, en]", "languages: ~", r"menu\.yaml line 3: expected a list"),
        ("languages: [zh, en]", "languages: ", r"menu\.yaml line 3: expected a list"),
        ("languages: [zh, en]", "languages: 5", r"menu\.yaml line 3: expected a list"),
        ("languages: [zh, en]", "languages: [[zh]]", r"menu\.yaml line 3: expected a single"),
    ],
)
def test_menu_languages_must_be_a_list_of_names(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = (IVR_DEFAULTS / "menu.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "menu.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_menu(path, load_prompts(IVR_DEFAULTS / "prompts.yaml").names())


@pytest.mark.parametrize("value", ["5", "~", "[[a]]"])
def test_routing_alert_channels_must_be_a_list_of_names(tmp_path: Path, value: str) -> None:
    text = ROUTING_DEFAULTS.read_text(encoding="utf-8").replace(
        "  alerts: []", f"  alerts: {value}"
    )
    (tmp_path / "routing.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routing\.yaml line \d+: expected a"):
        load_routing(tmp_path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # Found by the fuzzer in routing.yaml's wallboard: each escaped as its own exception.
        ("!!float x", "not a plain value"),  # ValueError
        ("!!int abc", "not a plain value"),  # ValueError
        ("!!timestamp 2026-13-45", "not a plain value"),  # ValueError: month must be in 1..12
        ("!!python/object:os.system x", "not a plain value: could not determine a constructor"),
        ("", r"expected \[amber, red\]"),  # yaml.parser.ParserError
    ],
)
def test_a_value_yaml_cannot_construct_is_a_config_error(
    tmp_path: Path, value: str, message: str
) -> None:
    text = ROUTING_DEFAULTS.read_text(encoding="utf-8")
    assert "  waiting: [3, 6]" in text
    (tmp_path / "routing.yaml").write_text(text.replace("  waiting: [3, 6]", f"  waiting: {value}"))
    with pytest.raises(ConfigError, match=rf"routing\.yaml line \d+: {message}"):
        load_routing(tmp_path)
