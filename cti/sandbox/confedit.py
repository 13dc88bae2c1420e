"""Set options in Asterisk's ini-style configuration text, keeping the comments around them."""

import re

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_OPTION = re.compile(r"^(\s*)([A-Za-z0-9_.-]+)(\s*=>?\s*)([^;]*?)(\s*(;.*)?)$")


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
            lines[j] = f"{m.group(1)}{m.group(2)}{m.group(3)}{value}{m.group(5)}"
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"
