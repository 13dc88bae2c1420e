"""Opening hours, holidays and make-up working days: hours.yaml (the first start's seed and the
fallback) and the lead's edit of them (a JSON document, see desk/hours.py); the sentence the
after-hours prompt says, made from the same data so it cannot drift from it."""

import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cti.errors import InvalidInput
from cti.ivr.yamlconf import Node, allowed_keys, load
from cti.phone import digits

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


def parse_span(raw: str) -> tuple[time, time]:
    """'08:30-12:00' -> (08:30, 12:00); ValueError says what is wrong."""
    try:
        a, b = raw.split("-")
        start, end = time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a time range like 08:30-12:00") from None
    if end <= start:
        raise ValueError(f"{raw!r} ends before it starts")
    return start, end


def _span(node: Node) -> tuple[time, time]:
    try:
        return parse_span(node.scalar())
    except ValueError as exc:
        raise node.error(str(exc)) from None


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
    if oncall and not digits(oncall.lstrip("+")):
        raise top["oncall_number"].error(f"{oncall!r} is not a phone number")
    return OpeningHours(tz, weekly, tuple(holidays), workdays, oncall)


# -- the lead's edit: a JSON document ----------------------------------------------------------


def _fmt(t: time) -> str:
    return t.strftime("%H:%M")


def to_doc(hours: OpeningHours) -> dict[str, Any]:
    """The document form (what the lead's page edits and the database keeps)."""
    return {
        "timezone": str(hours.tz),
        "weekly": {
            day: [f"{_fmt(a)}-{_fmt(b)}" for a, b in hours.weekly.get(day, ())] for day in DAYS
        },
        "holidays": [
            {"from": h.start.isoformat(), "to": h.end.isoformat(), "name": h.name}
            for h in hours.holidays
        ],
        "workdays": [{"date": d.isoformat(), "as": w} for d, w in sorted(hours.workdays.items())],
        "oncall_number": hours.oncall_number,
    }


def _doc_date(where: str, raw: Any) -> date:
    try:
        value = date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if value is None or not 1970 <= value.year <= 9000:
        raise InvalidInput(f"{where}: {raw!r} is not a date (YYYY-MM-DD)")
    return value


def from_doc(doc: Any) -> OpeningHours:
    """Opening hours from the document form; InvalidInput names the field (weekly.mon[1],
    holidays[2].from ...)."""
    if not isinstance(doc, dict):
        raise InvalidInput("expected a JSON object")
    unknown = set(doc) - {"timezone", "weekly", "holidays", "workdays", "oncall_number"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    tz_name = doc.get("timezone", "Asia/Shanghai")
    try:
        tz = ZoneInfo(tz_name) if isinstance(tz_name, str) and tz_name else None
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    if tz is None:
        raise InvalidInput(f"timezone: unknown time zone {tz_name!r}")
    weekly_doc = doc.get("weekly", {})
    if not isinstance(weekly_doc, dict):
        raise InvalidInput("weekly: expected an object of weekdays (mon ... sun)")
    weekly: dict[str, tuple[tuple[time, time], ...]] = {}
    for day, spans in weekly_doc.items():
        if day not in DAYS:
            raise InvalidInput(f"weekly: {day!r} is not one of {', '.join(DAYS)}")
        if not isinstance(spans, list) or len(spans) > 8:
            raise InvalidInput(f"weekly.{day}: expected a list of at most 8 time ranges")
        parsed = []
        for i, raw in enumerate(spans):
            try:
                parsed.append(parse_span(raw if isinstance(raw, str) else repr(raw)))
            except ValueError as exc:
                raise InvalidInput(f"weekly.{day}[{i + 1}]: {exc}") from None
        parsed.sort()
        for (_, end), (start, _) in itertools.pairwise(parsed):
            if start < end:
                raise InvalidInput(f"weekly.{day}: time ranges overlap")
        weekly[day] = tuple(parsed)
    holidays = []
    for i, item in enumerate(_list(doc, "holidays")):
        where = f"holidays[{i + 1}]"
        if not isinstance(item, dict) or set(item) - {"from", "to", "name"}:
            raise InvalidInput(f"{where}: expected {{from, to, name}}")
        first = _doc_date(f"{where}.from", item.get("from"))
        last = _doc_date(f"{where}.to", item.get("to") or item.get("from"))
        if last < first:
            raise InvalidInput(f"{where}: ends before it starts")
        name = item.get("name", "")
        if not isinstance(name, str) or len(name) > 60:
            raise InvalidInput(f"{where}.name: text of at most 60 characters")
        holidays.append(Holiday(first, last, name.strip()))
    workdays: dict[date, str] = {}
    for i, item in enumerate(_list(doc, "workdays")):
        where = f"workdays[{i + 1}]"
        if not isinstance(item, dict) or set(item) - {"date", "as"}:
            raise InvalidInput(f"{where}: expected {{date, as}}")
        d = _doc_date(f"{where}.date", item.get("date"))
        if item.get("as") not in DAYS:
            raise InvalidInput(f"{where}.as: {item.get('as')!r} is not one of {', '.join(DAYS)}")
        workdays[d] = item["as"]
    oncall = doc.get("oncall_number", "")
    if not isinstance(oncall, str) or (oncall and not digits(oncall.lstrip("+"))):
        raise InvalidInput(f"oncall_number: {oncall!r} is not a phone number")
    if len(oncall) > 20:
        raise InvalidInput("oncall_number: at most 20 characters")
    return OpeningHours(tz, weekly, tuple(holidays), workdays, oncall)


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list) or len(value) > 500:
        raise InvalidInput(f"{key}: expected a list (at most 500)")
    return value


# -- what the after-hours prompt says ---------------------------------------------------------

_DAY_WORDS = {
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def _clock(t: time, lang: str) -> str:
    if lang == "zh":
        return f"{t.hour}点{t.minute}分" if t.minute else f"{t.hour}点"
    return f"{t.hour}:{t.minute:02d}" if t.minute else f"{t.hour} o'clock"


def describe_hours(hours: OpeningHours, lang: str, *, closed_now: bool = True) -> str:
    """The sentence the after-hours prompt says: the weekly hours, weekdays with the same hours
    grouped ("周一至周五 8点30分至12点、13点至17点30分"), and that holidays are closed. Without
    `closed_now`, the hours alone (what the portal publishes at any hour)."""
    words = _DAY_WORDS[lang]
    groups: list[tuple[int, int, tuple[tuple[time, time], ...]]] = []
    for i, day in enumerate(DAYS):
        spans = hours.weekly.get(day, ())
        if groups and groups[-1][2] == spans and groups[-1][1] == i - 1:
            groups[-1] = (groups[-1][0], i, spans)
        else:
            groups.append((i, i, spans))
    parts = []
    for first, last, spans in groups:
        if not spans:
            continue
        if lang == "zh":
            days = words[first] if first == last else f"{words[first]}至{words[last]}"
            times = "、".join(f"{_clock(a, lang)}至{_clock(b, lang)}" for a, b in spans)
            parts.append(f"{days} {times}")
        else:
            days = words[first] if first == last else f"{words[first]} to {words[last]}"
            times = " and ".join(f"{_clock(a, lang)} to {_clock(b, lang)}" for a, b in spans)
            parts.append(f"{days}, {times}")
    if lang == "zh":
        now = "现在是非工作时间。" if closed_now else ""
        if not parts:
            return now or "服务台暂无工作时间。"
        return now + "服务台的工作时间是" + "；".join(parts) + "，法定节假日除外。"
    now = "The service desk is closed now. " if closed_now else ""
    if not parts:
        return now.strip() or "The service desk has no opening hours."
    return now + "We are open " + "; ".join(parts) + (", except public holidays.")


def calendar(hours: OpeningHours, first: date, days: int) -> list[dict[str, Any]]:
    """Each day from `first`: open (with its hours), closed, holiday (with its name) or a
    make-up working day (调休, with the weekday whose hours it keeps)."""
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        holiday = next((h for h in hours.holidays if h.start <= d <= h.end), None)
        weekday = hours.workdays.get(d, DAYS[d.weekday()])
        spans = hours.weekly.get(weekday, ())
        if holiday is not None:
            state, spans = "holiday", ()
        elif d in hours.workdays:
            state = "workday"
        else:
            state = "open" if spans else "closed"
        out.append(
            {
                "date": d.isoformat(),
                "weekday": d.weekday(),
                "state": state,
                "hours": [f"{_fmt(a)}-{_fmt(b)}" for a, b in spans],
                "name": holiday.name if holiday else "",
                "as": weekday if d in hours.workdays else "",
            }
        )
    return out
