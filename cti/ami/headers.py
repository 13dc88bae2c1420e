"""One AMI frame's headers as the event and row parsers read them.

panoramisk turns a header that a frame repeats into a list of its values. None of the headers the
parsers read is ever repeated by Asterisk (only ChanVariable is, when manager.conf asks for
several), so a repeated one is a malformed frame: reading it raises ValueError, which the parsers
report as ProtocolError, instead of putting a list where a string belongs.
"""

from collections.abc import Iterator, Mapping
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1


class Headers(Mapping[str, str]):
    """A read-only view of a frame whose values are single strings."""

    def __init__(self, message: Mapping[str, Any]) -> None:
        self.raw = message

    def __getitem__(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str):
            raise ValueError(f"header {key} is repeated")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def integer(m: Mapping[str, str], key: str, default: int | None = None) -> int:
    """A whole-number header; missing or empty gives `default` (KeyError without one)."""
    raw = m.get(key)
    if raw is None or raw == "":
        if default is None:
            raise KeyError(key)
        return default
    value = int(raw)
    # Counts, positions, seconds and cause codes: a value past a database INTEGER is garbage,
    # and stored as it is it would fail the journal's write.
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"header {key} is out of range: {raw[:40]}")
    return value
