"""Reading YAML configuration files: regressions the fuzzers found (tests/fuzz/test_yaml_config.py)."""

from pathlib import Path

import pytest

from cti.errors import ConfigError
from cti.ivr.hours import load_hours


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
