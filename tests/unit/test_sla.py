"""The SLA's business-hours clock and the catalogue document: due times over lunch breaks,
nights, weekends, holidays and make-up working days (调休); errors that name the field."""

from datetime import UTC, date, datetime, time
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cti.errors import InvalidInput
from cti.ivr.hours import Holiday, OpeningHours
from desk import sla

TZ = ZoneInfo("Asia/Shanghai")
DAY = ((time(8, 30), time(12)), (time(13), time(17, 30)))
HOURS = OpeningHours(
    TZ,
    {d: DAY for d in ("mon", "tue", "wed", "thu", "fri")},
    (Holiday(date(2026, 10, 1), date(2026, 10, 7), "国庆节"),),
    {date(2026, 10, 10): "fri"},  # a Saturday worked with Friday's hours
    "",
)


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


@pytest.mark.parametrize(
    ("start", "minutes", "due"),
    [
        # Within the morning.
        (local(2026, 9, 28, 9), 60, local(2026, 9, 28, 10)),
        # Over the lunch break.
        (local(2026, 9, 28, 11, 30), 60, local(2026, 9, 28, 13, 30)),
        # Opened at night: the clock starts at 08:30.
        (local(2026, 9, 28, 22), 30, local(2026, 9, 29, 9)),
        # Friday afternoon to Monday morning.
        (local(2026, 11, 27, 17), 60, local(2026, 11, 30, 9)),
        # Into the National Day holiday: nothing counts until Thursday 8 October.
        (local(2026, 9, 30, 17), 60, local(2026, 10, 8, 9)),
        # A Friday evening before the 调休 Saturday (worked with Friday's hours).
        (local(2026, 10, 9, 17), 60, local(2026, 10, 10, 9)),
        # A whole working day is 8 hours (480 minutes).
        (local(2026, 9, 28, 8, 30), 480, local(2026, 9, 28, 17, 30)),
        (local(2026, 9, 28, 8, 30), 481, local(2026, 9, 29, 8, 31)),
    ],
)
def test_business_minutes_skip_breaks_nights_weekends_and_holidays(
    start: datetime, minutes: int, due: datetime
) -> None:
    assert sla.add_business(start.astimezone(UTC), minutes, HOURS) == due


def test_without_hours_or_with_hours_that_never_open_the_clock_runs_always() -> None:
    start = local(2026, 9, 28, 22)
    assert sla.add_business(start, 90, None) == local(2026, 9, 28, 23, 30)
    never = OpeningHours(TZ, {}, (), {}, "")
    assert sla.add_business(start, 90, never) == local(2026, 9, 28, 23, 30)


def test_stamp_uses_the_priority_and_its_clock() -> None:
    inc: Any = SimpleNamespace(priority=1, created_at=local(2026, 9, 28, 22).astimezone(UTC),
                               response_due_at=None, resolve_due_at=None)  # fmt: skip
    sla.stamp(inc, sla.DEFAULT, HOURS)  # P1 runs around the clock: 30 min, 4 h
    assert inc.response_due_at == local(2026, 9, 28, 22, 30)
    assert inc.resolve_due_at == local(2026, 9, 29, 2)
    inc.priority = 3  # business hours: 4 h, 24 h
    sla.stamp(inc, sla.DEFAULT, HOURS)
    assert inc.response_due_at == local(2026, 9, 29, 13, 30)
    # 24 working hours: Tuesday, Wednesday, the holiday, then all of Thursday 8 October.
    assert inc.resolve_due_at == local(2026, 10, 8, 17, 30)


def test_breaches_and_standing() -> None:
    now = local(2026, 9, 28, 12).astimezone(UTC)
    inc: Any = SimpleNamespace(
        response_due_at=local(2026, 9, 28, 11), resolve_due_at=local(2026, 9, 28, 12, 20),
        responded_at=None, resolved_at=None,
    )  # fmt: skip
    assert sla.breaches(inc, now) == ["response"]
    assert sla.standing(inc, now, 30) == "breached"
    inc.responded_at = local(2026, 9, 28, 10)
    assert sla.breaches(inc, now) == [] and sla.standing(inc, now, 30) == "due_soon"
    assert sla.standing(inc, now, 10) == "ok"
    inc.resolved_at = local(2026, 9, 28, 13)
    assert sla.breaches(inc, now) == ["resolution"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"targets": []}, "targets: no target for priority 1"),
        ({"due_soon_minutes": 0}, "due_soon_minutes"),
        ({"autoclose_days": True}, "autoclose_days"),
        ({"groups": [{"name": "x", "email": "a@b.c, d@e.f"}]}, "groups[1].email"),
        ({"groups": [{"name": "x\nBcc: y"}]}, "groups[1].name"),
        ({"services": [{"name": "s", "group": "nobody"}]}, "services[1].group"),
        ({"bogus": 1}, "unknown fields"),
    ],
)
def test_bad_documents_name_the_field(change: dict[str, Any], field: str) -> None:
    doc = {**sla.to_doc(sla.DEFAULT), **change}
    with pytest.raises(InvalidInput, match=field.replace("[", r"\[").replace("]", r"\]")):
        sla.policy_from_doc(doc)


def test_a_document_round_trips() -> None:
    assert sla.policy_from_doc(sla.to_doc(sla.DEFAULT)) == sla.DEFAULT
