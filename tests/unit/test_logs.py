"""CTI_LOG_FORMAT=json: one JSON object per line, with the call's linkedid as a field."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from cti.errors import ConfigError
from cti.settings import load_settings
from desk.web.logs import use_format


@pytest.fixture
def captured() -> Iterator[logging.Logger]:
    """A root handler writing into a buffer, restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:]
    buffer = io.StringIO()
    root.handlers = [logging.StreamHandler(buffer)]
    root.buffer = buffer  # type: ignore[attr-defined]
    yield root
    root.handlers = saved


def test_json_lines_carry_the_linkedid_and_the_traceback(captured: logging.Logger) -> None:
    use_format("json")
    log = logging.getLogger("cti.test")
    log.warning("screen pop failed linkedid=%s caller %s", "1764000000.12", "张三")
    try:
        raise ValueError("bad\nline")
    except ValueError:
        log.exception("IVR crashed linkedid=%s", "1764000000.13")
    lines = captured.buffer.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 2, lines  # a traceback's newlines stay inside its JSON string
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "cti.test"
    assert first["linkedid"] == "1764000000.12" and "张三" in first["message"]
    assert first["time"].endswith("+00:00")
    assert second["linkedid"] == "1764000000.13"
    assert "ValueError: bad" in second["exception"]


def test_text_stays_the_default(captured: logging.Logger) -> None:
    use_format("text")
    logging.getLogger("cti.test").warning("hello linkedid=%s", "x")
    line = captured.buffer.getvalue().strip()  # type: ignore[attr-defined]
    assert line.endswith("WARNING cti.test: hello linkedid=x")
    assert load_settings(None, {"CTI_AMI_HOST": "h"}).log_format == "text"


@pytest.mark.parametrize("bad", ["xml", "JSON ", ""])
def test_an_unknown_log_format_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(None, {"CTI_AMI_HOST": "h", "CTI_LOG_FORMAT": bad})


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ConfigError, match="retention_calls_days"):
        load_settings(None, {"CTI_AMI_HOST": "h", "CTI_RETENTION_CALLS_DAYS": "-1"})
