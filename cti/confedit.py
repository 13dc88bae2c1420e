"""Set options in Asterisk's ini-style configuration text, keeping the comments around them."""

import re
from collections.abc import Callable

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_OPTION = re.compile(r"^(\s*)([A-Za-z0-9_.-]+)(\s*=>?\s*)([^;]*?)(\s*(;.*)?)$")


def _with_value(m: re.Match[str], value: str) -> str:
    """The option line `m` with `value` (`key =` with no value gets its space before it)."""
    sep = m.group(3)
    if value and sep.endswith(("=", ">")):
        sep += " "
    return f"{m.group(1)}{m.group(2)}{sep}{value}{m.group(5)}"


def set_option(text: str, section: str, key: str, value: str) -> str:
    """Return `text` with `key` in the first `[section]` set to `value` (added if absent)."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m and m.group(1).strip() == section:
            start = i
            break
    if start is None:
        lines += ["", f"[{section}]", f"{key} = {value}"]
        return "\n".join(lines) + "\n"
    end = len(lines)
    for j in range(start + 1, len(lines)):
        if _SECTION.match(lines[j]):
            end = j
            break
    for j in range(start + 1, end):
        m = _OPTION.match(lines[j])
        if m and m.group(2).lower() == key.lower():
            lines[j] = _with_value(m, value)
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def options(text: str, key: str) -> list[tuple[str, str]]:
    """(section, value) of every `key` option in order; a section name may come back more than
    once (pjsip.conf repeats `[1001]` for the endpoint, auth and aor)."""
    found = []
    section = ""
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip()
            continue
        m = _OPTION.match(line)
        if m and m.group(2).lower() == key.lower():
            found.append((section, m.group(4).strip()))
    return found


def replace_options(text: str, key: str, new_value: Callable[[str, str], str | None]) -> str:
    """`text` with every `key` option set to new_value(section, old value), where that is not
    None; comments and every other line are kept."""
    lines = text.splitlines()
    section = ""
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip()
            continue
        m = _OPTION.match(line)
        if m and m.group(2).lower() == key.lower():
            value = new_value(section, m.group(4).strip())
            if value is not None:
                lines[i] = _with_value(m, value)
    return "\n".join(lines) + "\n"
