"""Caller IDs normalised with libphonenumber (the `phonenumbers` package).

Inputs seen on a Chinese enterprise desk: mobiles (13800138000, +8613800138000,
008613800138000), landlines with the area code (01012345678, 010-1234-5678, +86 10 1234 5678),
local landlines without it (12345678: the desk's own area code applies), internal extensions
(1001), international numbers, and anonymous or garbage caller IDs. Each normalises to a lookup
key: E.164 for a telephone number, `ext:<digits>` for an extension, None when there is nothing
usable — never an exception.
"""

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

_JUNK = re.compile(r"[\s\-().]")


class NumberKind(StrEnum):
    """What a caller ID turned out to be."""

    MOBILE = "mobile"
    LANDLINE = "landline"
    EXTENSION = "extension"
    INTERNATIONAL = "international"
    OTHER = "other"  # a valid number of another type (toll-free, VoIP ...)
    INVALID = "invalid"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class CallerNumber:
    """A normalised caller ID."""

    raw: str
    kind: NumberKind
    key: str | None  # E.164 or ext:NNNN; None when unusable

    @property
    def usable(self) -> bool:
        """True when the number can identify somebody."""
        return self.key is not None


@dataclass(frozen=True)
class NumberPlan:
    """The desk's numbering context."""

    area_code: str  # the desk's own area code (CTI_AREA_CODE), for local numbers without it
    region: str = "CN"
    extension_lengths: tuple[int, ...] = (3, 4, 5)


def digits(text: str) -> bool:
    """True when `text` is one or more ASCII digits 0-9 (str.isdigit() also takes '¹' and '١',
    which int() refuses or reads, and which no phone keys)."""
    return text.isascii() and text.isdigit()


# The same callers ring again and again (every screen pop and IVR lookup normalises the caller
# ID): libphonenumber's parse and checks cost a fifth of a millisecond, a cached answer nothing.
@functools.lru_cache(maxsize=4096)
def normalize(raw: str | None, plan: NumberPlan) -> CallerNumber:
    """Normalise a caller ID (see the module docstring); never raises."""
    text = (raw or "").strip()
    if text.lower() in ("", "anonymous", "unknown", "<unknown>", "restricted", "private"):
        return CallerNumber(text, NumberKind.ANONYMOUS, None)
    compact = _JUNK.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not re.fullmatch(r"\+?\d{2,20}", compact):
        return CallerNumber(text, NumberKind.INVALID, None)
    digits = compact.lstrip("+")
    if not compact.startswith("+") and len(digits) in plan.extension_lengths:
        return CallerNumber(text, NumberKind.EXTENSION, f"ext:{digits}")
    candidate = compact
    if not compact.startswith("+") and len(digits) in (7, 8) and digits[0] != "0":
        candidate = f"0{plan.area_code}{digits}"  # a local landline
    try:
        number = phonenumbers.parse(candidate, plan.region)
    except NumberParseException:
        return CallerNumber(text, NumberKind.INVALID, None)
    if not phonenumbers.is_valid_number(number):
        return CallerNumber(text, NumberKind.INVALID, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.region_code_for_number(number) != plan.region:
        return CallerNumber(text, NumberKind.INTERNATIONAL, e164)
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.MOBILE:
        return CallerNumber(text, NumberKind.MOBILE, e164)
    if kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return CallerNumber(text, NumberKind.LANDLINE, e164)
    return CallerNumber(text, NumberKind.OTHER, e164)
