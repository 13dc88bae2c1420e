"""The IVR's data files: defaults load, and mistakes are reported with their line."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cti.errors import ConfigError, IvrError
from cti.ivr.agi import parse_response, quote
from cti.ivr.config import load_ivr_config
from cti.ivr.hours import load_hours
from cti.ivr.menu import Action, load_menu
from cti.ivr.prompts import load_prompts

DEFAULTS = Path(__file__).resolve().parents[2] / "cti" / "ivr" / "defaults"


def test_defaults_load_and_cover_every_prompt() -> None:
    cfg = load_ivr_config(None)
    assert cfg.menu.menus["main"].options["1"].action == Action.REPORT
    assert cfg.menu.prompts_used() <= cfg.prompts.names()
    assert cfg.prompts.file("to_english", "zh") == "en/cti/to_english"
    assert cfg.prompts.file("welcome", "en") == "cti/welcome"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


MENU = """languages: [zh]
default_language: zh
queues: {zh: helpdesk}
start: main
menus:
  main:
    prompt: main_menu
    options:
      "1": {action: report, type: fault, category: 故障}
      "2": {action: status}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MENU.replace("action: status", "action: reprot"), "line 10: unknown action 'reprot'"),
        (
            MENU.replace('"2": {action: status}', '"2": {action: menu, menu: nowhere}'),
            "line 10: no menu named 'nowhere'",
        ),
        (
            MENU.replace('"2": {action: status}', '"x": {action: status}'),
            "line 10: key 'x' is not a phone key",
        ),
        (MENU.replace("prompt: main_menu", "prompt: nope"), "line 7: no prompt named 'nope'"),
        (MENU.replace("type: fault", "type: fire"), "line 9: type 'fire'"),
        (MENU.replace("start: main", "start: other"), "line 4: no menu named 'other'"),
        (
            MENU.replace("queues: {zh: helpdesk}", "queues: {en: x}"),
            "line 3: no queue for language 'zh'",
        ),
        (MENU + "  main:\n    prompt: x\n", "duplicate key 'main'"),
        ("menus: [", "line 1"),
    ],
)
def test_menu_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    prompts = load_prompts(DEFAULTS / "prompts.yaml")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_menu(write(tmp_path, "menu.yaml", text), prompts.names())


def test_prompt_catalogue_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2: language 'fr'"):
        load_prompts(write(tmp_path, "p.yaml", "hello:\n  fr: bonjour\n"))
    with pytest.raises(ConfigError, match="empty"):
        load_prompts(write(tmp_path, "p.yaml", "hello:\n  zh: ''\n"))


def test_config_dir_missing_a_code_prompt(tmp_path: Path) -> None:
    text = (DEFAULTS / "prompts.yaml").read_text(encoding="utf-8").replace("goodbye:", "farewell:")
    write(tmp_path, "prompts.yaml", text)
    with pytest.raises(ConfigError, match="'goodbye'"):
        load_ivr_config(tmp_path)


def test_hours_holidays_and_make_up_days() -> None:
    h = load_hours(DEFAULTS / "hours.yaml")
    at = lambda s: datetime.fromisoformat(s).astimezone(UTC)  # noqa: E731
    assert h.is_open(at("2026-11-25T10:00:00+08:00"))  # a Wednesday morning
    assert not h.is_open(at("2026-11-25T12:30:00+08:00"))  # lunch
    assert not h.is_open(at("2026-11-25T18:00:00+08:00"))
    assert not h.is_open(at("2026-11-28T10:00:00+08:00"))  # Saturday
    assert not h.is_open(at("2026-10-05T10:00:00+08:00"))  # National Day, a Monday
    assert h.holiday(at("2026-10-05T10:00:00+08:00")).name == "国庆节"  # type: ignore[union-attr]
    assert h.is_open(at("2026-10-10T10:00:00+08:00"))  # a Saturday worked (调休)
    assert h.is_open(at("2026-11-25T01:00:00+00:00"))  # 09:00 in Shanghai


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weekly: {mon: ['9-17']}", "line 1: '9-17' is not a time range"),
        ("weekly: {mon: ['17:00-09:00']}", "ends before it starts"),
        ("weekly: {funday: []}", "'funday' is not one of"),
        ("weekly: {}\nholidays:\n  - {from: 2026-13-01}", "line 3: '2026-13-01' is not a date"),
        ("weekly: {}\ntimezone: Mars/Base", "unknown time zone"),
    ],
)
def test_hours_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_hours(write(tmp_path, "hours.yaml", text))


def test_agi_responses_and_quoting() -> None:
    r = parse_response("200 result=49 endpos=12345")
    assert (r.code, r.digit, r.endpos) == (200, "1", 12345)
    assert parse_response("200 result= (timeout)").data == "timeout"
    assert parse_response("200 result=1234 (timeout)").result == "1234"
    assert parse_response("200 result=1 (helpdesk)").data == "helpdesk"
    assert (
        parse_response("511 Command Not Permitted on a dead channel or intercept routine").code
        == 511
    )
    assert parse_response("200 result=0").digit is None
    assert quote('say "hi"') == '"say \\"hi\\""'
    with pytest.raises(IvrError):
        quote("two\nlines")
