"""Opening hours, holidays and make-up working days (hours.yaml)."""

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cti.ivr.yamlconf import Node, allowed_keys, load

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Holiday:
    """Closed from `start` to `end` inclusive."""

    start: date
    end: date
    name: str


@dataclass(frozen=True)
class OpeningHours:
    """When the desk answers calls."""

    tz: ZoneInfo
    weekly: dict[str, tuple[tuple[time, time], ...]]
    holidays: tuple[Holiday, ...]
    workdays: dict[date, str]  # a weekend day worked with the hours of this weekday
    oncall_number: str

    def is_open(self, when: datetime) -> bool:
        """Whether the desk is open at `when` (an aware datetime)."""
        local = when.astimezone(self.tz)
        day = local.date()
        if any(h.start <= day <= h.end for h in self.holidays):
            return False
        weekday = self.workdays.get(day, DAYS[local.weekday()])
        t = local.time()
        return any(start <= t < end for start, end in self.weekly.get(weekday, ()))

    def holiday(self, when: datetime) -> Holiday | None:
        """The holiday `when` falls in, if any."""
        day = when.astimezone(self.tz).date()
        return next((h for h in self.holidays if h.start <= day <= h.end), None)


def _span(node: Node) -> tuple[time, time]:
    raw = node.scalar()
    try:
        a, b = raw.split("-")
        start, end = time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    except ValueError:
        raise node.error(f"{raw!r} is not a time range like 08:30-12:00") from None
    if end <= start:
        raise node.error(f"{raw!r} ends before it starts")
    return start, end


def _date(node: Node) -> date:
    try:
        return date.fromisoformat(node.scalar())
    except ValueError:
        raise node.error(f"{node.scalar()!r} is not a date (YYYY-MM-DD)") from None


def load_hours(path: Path) -> OpeningHours:
    """Load and validate hours.yaml; every error names the line."""
    root = load(path)
    top = root.mapping()
    allowed_keys(
        top, root, {"timezone", "weekly", "holidays", "workdays", "oncall_number"}, {"weekly"}
    )
    tz_name = top["timezone"].scalar() if "timezone" in top else "Asia/Shanghai"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise top["timezone"].error(f"unknown time zone {tz_name!r}") from None
    weekly: dict[str, tuple[tuple[time, time], ...]] = {}
    for day, spans in top["weekly"].mapping().items():
        if day not in DAYS:
            raise spans.error(f"{day!r} is not one of {', '.join(DAYS)}")
        weekly[day] = tuple(_span(s) for s in spans.items())
    holidays = []
    for item in top["holidays"].items() if "holidays" in top else ():
        h = item.mapping()
        allowed_keys(h, item, {"from", "to", "name"}, {"from"})
        start = _date(h["from"])
        end = _date(h["to"]) if "to" in h else start
        if end < start:
            raise item.error("holiday ends before it starts")
        holidays.append(Holiday(start, end, h["name"].scalar() if "name" in h else ""))
    workdays: dict[date, str] = {}
    for item in top["workdays"].items() if "workdays" in top else ():
        w = item.mapping()
        allowed_keys(w, item, {"date", "as"}, {"date", "as"})
        weekday = w["as"].scalar()
        if weekday not in DAYS:
            raise w["as"].error(f"{weekday!r} is not one of {', '.join(DAYS)}")
        workdays[_date(w["date"])] = weekday
    oncall = top["oncall_number"].scalar() if "oncall_number" in top else ""
    if oncall and not oncall.lstrip("+").isdigit():
        raise top["oncall_number"].error(f"{oncall!r} is not a phone number")
    return OpeningHours(tz, weekly, tuple(holidays), workdays, oncall)
