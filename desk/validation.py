"""Checking input fields (text, dates, e-mail addresses, queue names) with messages that name
the field."""

import re
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from cti.errors import InvalidInput
from cti.phone import digits

# One mailbox, plainly written: no display name, no list, no quoting, no white space (so it can
# never carry a second address or a header into a message). ASCII only.
EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)

# Dates the desk accepts anywhere (reports, filters, rosters): far enough from the ends of the
# calendar that time zones and a month's length cannot step off it.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9000, 12, 31)

# Queue lists (a member of staff's queues) and one queue's name, which becomes part of file names.
QUEUE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_,")
QUEUE_NAME_CHARS = QUEUE_CHARS - {","}


def text_field(body: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    """A text field: stripped, at most `limit` characters; None when absent and optional."""
    if key not in body or body[key] is None:
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    value = body[key]
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text")
    value = value.strip()
    if "\x00" in value:  # PostgreSQL cannot store it: refused here rather than a 500 there
        raise InvalidInput(f"{key}: text with a NUL character")
    if required and not value:
        raise InvalidInput(f"{key} is required")
    if len(value) > limit:
        raise InvalidInput(f"{key} is longer than {limit} characters")
    return value


def when(name: str, raw: Any, tz: tzinfo, *, day_ok: bool = False) -> datetime:
    """An ISO 8601 date-time (without an offset: in the desk's zone); with `day_ok`, a bare date
    means its midnight. Between FIRST_DAY and LAST_DAY: the ends of the calendar do not survive
    a move to UTC or a day added."""
    what = "date or date-time" if day_ok else "date-time"
    if not isinstance(raw, str):
        raise InvalidInput(f"{name}: expected an ISO 8601 {what} string")
    raw = raw.strip()
    try:
        if day_ok and len(raw) == 10:
            value = datetime.combine(date.fromisoformat(raw), time(), tz)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            value = value if value.tzinfo else value.replace(tzinfo=tz)
        in_range = FIRST_DAY <= value.astimezone(UTC).date() <= LAST_DAY
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name}: {raw!r} is not an ISO 8601 {what}") from None
    if not in_range:
        raise InvalidInput(f"{name}: {raw!r} is not between {FIRST_DAY} and {LAST_DAY}")
    return value


def day(name: str, raw: Any) -> date:
    """A calendar date (YYYY-MM-DD) between FIRST_DAY and LAST_DAY."""
    if not isinstance(raw, str):
        raise InvalidInput(f"{name}: expected a date (YYYY-MM-DD)")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name}: {raw!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= value <= LAST_DAY:
        raise InvalidInput(f"{name}: {raw!r} is not between {FIRST_DAY} and {LAST_DAY}")
    return value


def record_id(name: str, raw: str) -> int:
    """A record's id from a URL: ASCII digits only ('²' and '٣' are digits to str.isdigit, and
    int() of them fails), small enough for the database."""
    if not digits(raw) or len(raw) > 18:
        raise InvalidInput(f"{name} {raw!r} is not a record id (a whole number)")
    return int(raw)


def incident_number(raw: str) -> str:
    """An incident number from a URL: ASCII digits, at most 20 of them."""
    if not digits(raw) or len(raw) > 20:
        raise InvalidInput(f"{raw!r} is not an incident number")
    return raw


def whole_number(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    """An optional JSON integer field in [low, high] (true and 1.0 are not integers here)."""
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise InvalidInput(f"{key} must be a whole number from {low} to {high}")
    return value


def queue_name(name: str, raw: Any) -> str:
    """A queue's name: 1 to 80 of a-z, 0-9, '-' and '_' (it becomes part of file names)."""
    if not isinstance(raw, str) or not 1 <= len(raw) <= 80 or set(raw) - QUEUE_NAME_CHARS:
        raise InvalidInput(f"{name}: a queue name is 1 to 80 of a-z, 0-9, '-' and '_'")
    return raw


def is_email(value: str) -> bool:
    """True for one plainly written mailbox (at most 254 characters)."""
    return len(value) <= 254 and EMAIL.fullmatch(value) is not None


def email_address(name: str, raw: str) -> str:
    """An e-mail address field: one mailbox, or InvalidInput naming the field."""
    if not is_email(raw):
        raise InvalidInput(f"{name}: {raw!r} is not one e-mail address (name@example.com)")
    return raw
