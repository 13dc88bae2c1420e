"""The service catalogue and the SLA as data the lead edits (clauses 5.2.2 d, 6.4.2 e): services
with their owners, support groups and CMDB items; response and resolution targets per priority
on a clock that runs always or only in the desk's opening hours (holidays and 调休 days from the
hours the lead keeps, desk/hours.py); how long a resolved incident waits for the requester's
reply before it closes by itself.

Both live in `desk_settings` as one document (name "sla"). An incident carries its due times
(`response_due_at`, `resolve_due_at`), stamped when it is opened and again when its priority or
the targets change, so the workbench filters and sorts by them in SQL over every open incident.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import InvalidInput
from cti.ivr.hours import DAYS, OpeningHours, from_doc
from desk import settings_docs
from desk.models import Incident, IncidentEvent, IncidentState

NAME = "sla"
CLOCKS = ("business", "always")
S = IncidentState
OPEN = (S.NEW, S.IN_PROGRESS, S.ESCALATED_INCIDENT, S.ESCALATED_PROBLEM, S.RESOLVED)
UNRESOLVED = (S.NEW, S.IN_PROGRESS, S.ESCALATED_INCIDENT, S.ESCALATED_PROBLEM)
AUTO_CLOSER = "system (auto-close)"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Target:
    """What the desk commits to for one priority, in minutes on its clock."""

    priority: int
    response_minutes: int
    resolution_minutes: int
    clock: str = "business"


@dataclass(frozen=True)
class Group:
    """A support group incidents are escalated to, and the mailbox that gets the hand-off."""

    name: str
    email: str = ""


@dataclass(frozen=True)
class Service:
    """A service of the catalogue: who owns it, who supports it, its configuration items."""

    name: str
    owner: str = ""
    group: str = ""
    config_items: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Policy:
    """The whole document."""

    targets: dict[int, Target]
    due_soon_minutes: int = 60
    autoclose_days: int = 5
    admin_group: str = "系统管理员组"
    groups: tuple[Group, ...] = ()
    services: tuple[Service, ...] = field(default_factory=tuple)

    def group(self, name: str | None) -> Group | None:
        """The support group of this name, if the catalogue has it."""
        return next((g for g in self.groups if g.name == name), None)


DEFAULT = Policy(
    targets={
        1: Target(1, 30, 4 * 60, "always"),
        2: Target(2, 60, 8 * 60, "business"),
        3: Target(3, 4 * 60, 24 * 60, "business"),
        4: Target(4, 8 * 60, 72 * 60, "business"),
    },
    groups=(Group("系统管理员组"),),
)


def to_doc(p: Policy) -> dict[str, Any]:
    """The document form (what the lead's page edits and the database keeps)."""
    return {
        "targets": [
            {
                "priority": t.priority,
                "response_minutes": t.response_minutes,
                "resolution_minutes": t.resolution_minutes,
                "clock": t.clock,
            }
            for t in sorted(p.targets.values(), key=lambda t: t.priority)
        ],
        "due_soon_minutes": p.due_soon_minutes,
        "autoclose_days": p.autoclose_days,
        "admin_group": p.admin_group,
        "groups": [{"name": g.name, "email": g.email} for g in p.groups],
        "services": [
            {
                "name": s.name,
                "owner": s.owner,
                "group": s.group,
                "config_items": list(s.config_items),
                "description": s.description,
            }
            for s in p.services
        ],
    }


def _text(where: str, raw: Any, limit: int, *, required: bool = False) -> str:
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise InvalidInput(f"{where}: expected text")
    value = raw.strip()
    if _CONTROL.search(value):
        raise InvalidInput(f"{where}: contains a line break or a control character")
    if len(value) > limit:
        raise InvalidInput(f"{where}: at most {limit} characters")
    if required and not value:
        raise InvalidInput(f"{where}: required")
    return value


def _whole(where: str, raw: Any, low: int, high: int) -> int:
    if type(raw) is not int or not low <= raw <= high:
        raise InvalidInput(f"{where}: a whole number from {low} to {high}")
    return raw


def _items(doc: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidInput(f"{key}: expected a list of at most {limit}")
    return value


def _obj(where: str, raw: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected an object")
    unknown = set(raw) - keys
    if unknown:
        raise InvalidInput(f"{where}: unknown fields: {', '.join(sorted(map(str, unknown)))}")
    return raw


def policy_from_doc(doc: Any) -> Policy:
    """A policy from the document form; InvalidInput names the field (targets[2].clock ...)."""
    d = _obj(
        "sla",
        doc,
        {"targets", "due_soon_minutes", "autoclose_days", "admin_group", "groups", "services"},
    )
    targets: dict[int, Target] = {}
    for i, raw in enumerate(_items(d, "targets", 4)):
        where = f"targets[{i + 1}]"
        t = _obj(where, raw, {"priority", "response_minutes", "resolution_minutes", "clock"})
        prio = _whole(f"{where}.priority", t.get("priority"), 1, 4)
        if prio in targets:
            raise InvalidInput(f"{where}.priority: priority {prio} is given twice")
        resp = _whole(f"{where}.response_minutes", t.get("response_minutes"), 1, 525_600)
        res = _whole(f"{where}.resolution_minutes", t.get("resolution_minutes"), 1, 525_600)
        if res < resp:
            raise InvalidInput(f"{where}: resolution comes before the response")
        clock = t.get("clock", "business")
        if clock not in CLOCKS:
            raise InvalidInput(f"{where}.clock: one of {', '.join(CLOCKS)}")
        targets[prio] = Target(prio, resp, res, clock)
    missing = {1, 2, 3, 4} - set(targets)
    if missing:
        raise InvalidInput(f"targets: no target for priority {min(missing)}")
    groups = []
    for i, raw in enumerate(_items(d, "groups", 200)):
        where = f"groups[{i + 1}]"
        g = _obj(where, raw, {"name", "email"})
        email = _text(f"{where}.email", g.get("email"), 200)
        if email and not _EMAIL.match(email):
            raise InvalidInput(f"{where}.email: {email!r} is not an e-mail address")
        groups.append(Group(_text(f"{where}.name", g.get("name"), 120, required=True), email))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise InvalidInput("groups: a group name is given twice")
    services = []
    for i, raw in enumerate(_items(d, "services", 500)):
        where = f"services[{i + 1}]"
        s = _obj(where, raw, {"name", "owner", "group", "config_items", "description"})
        group = _text(f"{where}.group", s.get("group"), 120)
        if group and group not in names:
            raise InvalidInput(f"{where}.group: no support group {group!r}")
        cis = s.get("config_items", [])
        if not isinstance(cis, list) or len(cis) > 200:
            raise InvalidInput(f"{where}.config_items: expected a list of at most 200")
        services.append(
            Service(
                _text(f"{where}.name", s.get("name"), 120, required=True),
                _text(f"{where}.owner", s.get("owner"), 120),
                group,
                tuple(_text(f"{where}.config_items", c, 120, required=True) for c in cis),
                _text(f"{where}.description", s.get("description"), 500),
            )
        )
    if len({s.name for s in services}) != len(services):
        raise InvalidInput("services: a service name is given twice")
    admin = _text("admin_group", d.get("admin_group", DEFAULT.admin_group), 120, required=True)
    return Policy(
        targets,
        _whole("due_soon_minutes", d.get("due_soon_minutes", 60), 1, 10_080),
        _whole("autoclose_days", d.get("autoclose_days", 5), 0, 365),
        admin,
        tuple(groups),
        tuple(services),
    )


async def load(session: AsyncSession) -> Policy:
    """The policy in force (the defaults until the lead saves one)."""
    row = await settings_docs.get(session, NAME)
    if row is None:
        return DEFAULT
    try:
        return policy_from_doc(row.value)
    except InvalidInput:  # only a hand edit of the row could; the page validates
        return DEFAULT


async def load_hours(session: AsyncSession) -> OpeningHours | None:
    """The desk's hours in force for the business clock (None: none stored, the clock runs
    always)."""
    row = await settings_docs.get(session, settings_docs.HOURS)
    if row is None:
        return None
    try:
        return from_doc(row.value.get("hours"))
    except InvalidInput:
        return None


# -- the clock ---------------------------------------------------------------------------------


def _spans(hours: OpeningHours, day: Any) -> tuple[tuple[time, time], ...]:
    if any(h.start <= day <= h.end for h in hours.holidays):
        return ()
    return hours.weekly.get(hours.workdays.get(day, DAYS[day.weekday()]), ())


def add_business(start: datetime, minutes: int, hours: OpeningHours | None) -> datetime:
    """`minutes` of the desk's opening hours after `start` (an aware datetime). Without hours,
    or hours that never open, the clock runs always."""
    if hours is None or not any(hours.weekly.values()):
        return start + timedelta(minutes=minutes)
    left = timedelta(minutes=minutes)
    local = start.astimezone(hours.tz)
    day = local.date()
    for _ in range(3 * 366):  # far beyond any target; hours that never open were caught above
        for a, b in _spans(hours, day):
            begin = datetime.combine(day, a, hours.tz)
            end = datetime.combine(day, b, hours.tz)
            begin = max(begin, local)
            if end <= begin:
                continue
            if end - begin >= left:
                return (begin + left).astimezone(UTC)
            left -= end - begin
        day += timedelta(days=1)
    return start + timedelta(minutes=minutes)


def stamp(incident: Incident, policy: Policy, hours: OpeningHours | None) -> None:
    """Set the incident's due times from its priority and creation time."""
    t = policy.targets.get(incident.priority or 3) or policy.targets[3]
    clock = hours if t.clock == "business" else None
    created = incident.created_at
    if created.tzinfo is None:  # SQLite hands back naive datetimes: they are UTC
        created = created.replace(tzinfo=UTC)
    incident.response_due_at = add_business(created, t.response_minutes, clock)
    incident.resolve_due_at = add_business(created, t.resolution_minutes, clock)


async def stamp_now(session: AsyncSession, incident: Incident) -> None:
    """Stamp one incident with the policy and hours in force."""
    stamp(incident, await load(session), await load_hours(session))


async def restamp_open(session: AsyncSession) -> int:
    """Stamp every open incident again (the targets or the hours changed); how many."""
    policy, hours = await load(session), await load_hours(session)
    rows = (
        await session.scalars(select(Incident).where(Incident.state.in_([s.value for s in OPEN])))
    ).all()
    for incident in rows:
        stamp(incident, policy, hours)
    return len(rows)


# -- where an incident stands ------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def breaches(incident: Incident, now: datetime) -> list[str]:
    """Which targets the incident missed: "response", "resolution" (in that order)."""
    out = []
    resp_due, res_due = _aware(incident.response_due_at), _aware(incident.resolve_due_at)
    responded, resolved = _aware(incident.responded_at), _aware(incident.resolved_at)
    if resp_due is not None and (responded or now) > resp_due:
        out.append("response")
    if res_due is not None and (resolved or now) > res_due:
        out.append("resolution")
    return out


def next_due(incident: Incident) -> datetime | None:
    """The target the incident is working towards now (None once resolved)."""
    if incident.resolved_at is not None:
        return None
    if incident.responded_at is None and incident.response_due_at is not None:
        return _aware(incident.response_due_at)
    return _aware(incident.resolve_due_at)


def standing(incident: Incident, now: datetime, due_soon_minutes: int) -> str:
    """ "breached", "due_soon" or "ok"."""
    if breaches(incident, now):
        return "breached"
    due = next_due(incident)
    if due is not None and due - now <= timedelta(minutes=due_soon_minutes):
        return "due_soon"
    return "ok"


def breached_clause(now: datetime) -> ColumnElement[bool]:
    """SQL: the incident missed a target (the same test as `breaches`)."""
    i = Incident
    return or_(
        and_(i.response_due_at.is_not(None), i.responded_at.is_(None), i.response_due_at < now),
        and_(i.responded_at.is_not(None), i.responded_at > i.response_due_at),
        and_(i.resolve_due_at.is_not(None), i.resolved_at.is_(None), i.resolve_due_at < now),
        and_(i.resolved_at.is_not(None), i.resolved_at > i.resolve_due_at),
    )


def next_due_column() -> ColumnElement[Any]:
    """SQL: the target worked towards (resolved incidents sort last)."""
    i = Incident
    return case(
        (i.resolved_at.is_not(None), None),
        (i.responded_at.is_(None), i.response_due_at),
        else_=i.resolve_due_at,
    )


def due_soon_clause(now: datetime, minutes: int) -> ColumnElement[bool]:
    """SQL: not breached, and the next target is within `minutes`."""
    col = next_due_column()
    return and_(~breached_clause(now), col.is_not(None), col <= now + timedelta(minutes=minutes))


# -- the scheduler's sweep ---------------------------------------------------------------------


@dataclass
class SweepResult:
    """What one sweep did."""

    closed: list[str] = field(default_factory=list)
    # (number, assignee, which target) for each breach not warned about before.
    breached: list[tuple[str, str | None, str]] = field(default_factory=list)


async def sweep(session: AsyncSession, now: datetime) -> SweepResult:
    """Close resolved incidents the requester left unanswered for the policy's days; stamp any
    open incident without due times; find breaches nobody was warned about yet (marked warned)."""
    policy, hours = await load(session), await load_hours(session)
    result = SweepResult()
    unstamped = await session.scalars(
        select(Incident).where(
            Incident.state.in_([s.value for s in OPEN]), Incident.resolve_due_at.is_(None)
        )
    )
    for incident in unstamped.all():
        stamp(incident, policy, hours)
    if policy.autoclose_days:
        cutoff = now - timedelta(days=policy.autoclose_days)
        stale = await session.scalars(
            select(Incident)
            .where(Incident.state == S.RESOLVED.value, Incident.resolved_at < cutoff)
            .order_by(Incident.id)
            .limit(500)
        )
        for incident in stale.all():
            session.add(
                IncidentEvent(
                    incident_id=incident.id,
                    at=now,
                    by=AUTO_CLOSER,
                    kind="state",
                    from_state=S.RESOLVED.value,
                    to_state=S.CLOSED.value,
                    text=f"no reply {policy.autoclose_days} days after the resolution",
                )
            )
            incident.state, incident.closed_at, incident.updated_at = S.CLOSED.value, now, now
            result.closed.append(incident.number)
    late = await session.scalars(
        select(Incident)
        .where(Incident.state.in_([s.value for s in UNRESOLVED]), breached_clause(now))
        .order_by(Incident.id)
        .limit(500)
    )
    for incident in late.all():
        warned = set(filter(None, incident.sla_warned.split(",")))
        for which in breaches(incident, now):
            if which not in warned:
                warned.add(which)
                result.breached.append((incident.number, incident.assignee, which))
                session.add(
                    IncidentEvent(
                        incident_id=incident.id,
                        at=now,
                        by="SLA",
                        kind="sla_breach",
                        text=f"{which} target missed",
                    )
                )
        incident.sla_warned = ",".join(sorted(warned))
    await session.flush()
    return result


async def board(session: AsyncSession, now: datetime) -> dict[str, Any]:
    """For the wallboard: open, breached and due-soon counts, and the most overdue incidents."""
    policy = await load(session)
    unresolved = Incident.state.in_([s.value for s in UNRESOLVED])
    breached = (
        await session.scalars(
            select(Incident)
            .where(unresolved, breached_clause(now))
            .order_by(next_due_column())
            .limit(500)
        )
    ).all()
    count = select(func.count()).select_from(Incident)
    soon = await session.scalar(
        count.where(unresolved, due_soon_clause(now, policy.due_soon_minutes))
    )
    total = await session.scalar(count.where(unresolved))
    return {
        "open": total or 0,
        "breached": len(breached),
        "due_soon": soon or 0,
        "worst": [
            {
                "number": i.number,
                "priority": i.priority,
                "assignee": i.assignee,
                "category": i.category,
                "breaches": breaches(i, now),
            }
            for i in breached[:8]
        ],
    }
