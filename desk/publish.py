"""What the desk publishes (6.4.2), for the portal and the subscribers' e-mail: the service
catalogue with its commitments, how to get help (numbers, hours, after-hours emergency), staff
and the services they look after (Table A.2 without private numbers), the desk's status (open or
closed, the queue's wait now) and current and planned outages.

`service_catalogue` is the one place the catalogue is read: point it at the lead's catalogue
(with its SLA) when there is one; everything else asks it."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import ConfigError
from cti.ivr.hours import OpeningHours, describe_hours
from desk import announcements, sla
from desk.i18n import N_, Msg, translate
from desk.models import Announcement, Staff

DEFAULTS = Path(__file__).parent / "defaults"


@dataclass(frozen=True)
class Commitment:
    """What the desk commits to for one priority."""

    priority: int
    response_minutes: int
    resolution_hours: float


@dataclass(frozen=True)
class Service:
    """One service of the catalogue (names and descriptions per language)."""

    name: dict[str, str]
    description: dict[str, str]
    owner: str


@dataclass(frozen=True)
class Catalogue:
    """The services and the commitments."""

    services: tuple[Service, ...]
    commitments: tuple[Commitment, ...]


def _texts(where: str, raw: Any) -> dict[str, str]:
    if isinstance(raw, str):
        return {"zh": raw, "en": raw}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError(f"{where}: expected text, or {{zh: ..., en: ...}}")
    return {"zh": raw.get("zh") or raw.get("en", ""), "en": raw.get("en") or raw.get("zh", "")}


def load_catalogue(path: Path) -> tuple[Service, ...]:
    """services.yaml's service descriptions; ConfigError names the file and the entry."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected services")
    services = []
    for i, item in enumerate(doc.get("services") or []):
        where = f"{path}: services[{i + 1}]"
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where}: expected name, description, owner")
        services.append(
            Service(
                _texts(f"{where}.name", item["name"]),
                _texts(f"{where}.description", item.get("description", "")),
                str(item.get("owner", "")),
            )
        )
    return tuple(services)


async def service_catalogue(session: AsyncSession, config_dir: Path | None) -> Catalogue:
    """The catalogue as published: the commitments are the lead's SLA targets (the same ones
    the incidents' timers and breach warnings use, desk/sla.py), the services are the lead's
    catalogue when it names any, else the descriptions in services.yaml (the config folder's
    copy or the default)."""
    own = config_dir / "services.yaml" if config_dir is not None else None
    described = load_catalogue(
        own if own is not None and own.exists() else DEFAULTS / "services.yaml"
    )
    policy = await sla.load(session)
    commitments = tuple(
        Commitment(t.priority, t.response_minutes, _hours(t.resolution_minutes))
        for _, t in sorted(policy.targets.items())
    )
    if not policy.services:
        return Catalogue(described, commitments)
    services = tuple(
        Service(
            {"zh": sv.name, "en": sv.name}, {"zh": sv.description, "en": sv.description}, sv.owner
        )
        for sv in policy.services
    )
    return Catalogue(services, commitments)


def _hours(minutes: int) -> float:
    """Minutes as hours, whole where they are whole (8, not 8.0)."""
    return minutes // 60 if minutes % 60 == 0 else round(minutes / 60, 1)


@dataclass(frozen=True)
class StaffEntry:
    """A member of staff as users may see them: no mobile (a private number)."""

    name: str
    position: str
    services: str
    office_phone: str
    email: str
    im_handle: str


async def staff_and_services(session: AsyncSession) -> list[StaffEntry]:
    """Active staff with the services they look after (Table A.2, public columns only)."""
    rows = await session.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.name))
    return [
        StaffEntry(s.name, s.position, s.services, s.office_phone, s.email, s.im_handle)
        for s in rows
    ]


@dataclass(frozen=True)
class Help:
    """How to get help."""

    phone: str
    email: str
    hours: dict[str, str]  # the sentence per language (the after-hours prompt says the same)
    emergency: str  # the after-hours on-call number
    holidays: tuple[tuple[str, str, str], ...]  # upcoming: (from, to, name)


def how_to_get_help(hours: OpeningHours, phone: str, email: str, today: date) -> Help:
    """Numbers, hours, upcoming holidays and the after-hours emergency number."""
    upcoming = tuple(
        (h.start.isoformat(), h.end.isoformat(), h.name)
        for h in hours.holidays
        if h.end >= today and h.start <= today + timedelta(days=90)
    )
    return Help(
        phone,
        email,
        {lang: describe_hours(hours, lang, closed_now=False) for lang in ("zh", "en")},
        hours.oncall_number,
        upcoming,
    )


@dataclass(frozen=True)
class Status:
    """The desk now: open or closed, and the wait in the queue (None when not known)."""

    open: bool
    waiting: int | None
    longest_wait_seconds: int | None


@dataclass(frozen=True)
class Notice:
    """An outage or planned change, as published."""

    kind: str
    title: str
    text: dict[str, str]
    service: str
    starts_at: str
    ends_at: str | None


async def outages(
    session: AsyncSession, now: datetime, tz: tzinfo
) -> tuple[list[Notice], list[Notice]]:
    """(current, planned): outages and changes in force now, and those announced to start
    later (within 30 days); times in the desk's time zone."""

    def notice(a: Announcement) -> Notice:
        return Notice(
            a.kind,
            a.title,
            {"zh": a.text_zh or a.text_en, "en": a.text_en or a.text_zh},
            a.service,
            a.starts_at.astimezone(tz).isoformat(),
            a.ends_at.astimezone(tz).isoformat() if a.ends_at else None,
        )

    current = [notice(a) for a in await announcements.active(session, now)]
    later = await session.scalars(
        select(Announcement)
        .where(
            Announcement.active.is_(True),
            Announcement.starts_at > now,
            Announcement.starts_at <= now + timedelta(days=30),
        )
        .order_by(Announcement.starts_at)
    )
    return current, [notice(a) for a in later]


@dataclass(frozen=True)
class Publication:
    """Everything 6.4.2 asks the desk to publish. `status` changes by the second and is left out
    of the mail (and of its digest)."""

    catalogue: Catalogue
    help: Help
    staff: list[StaffEntry]
    current: list[Notice]
    planned: list[Notice]
    status: Status | None = field(default=None)

    def as_json(self) -> dict[str, Any]:
        """The portal's JSON form."""
        return asdict(self)

    def digest(self) -> str:
        """What subscribers were last sent (without the status)."""
        doc = asdict(self)
        doc.pop("status", None)
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# -- the subscribers' e-mail -----------------------------------------------------------------

_TITLE = N_("What the IT service desk publishes")
_H_HELP = N_("How to get help")
_H_OUTAGES = N_("Current outages and changes")
_H_PLANNED = N_("Planned outages and changes")
_H_SERVICES = N_("Services and commitments")
_H_STAFF = N_("Staff and their services")
_PHONE = N_("Phone: %(phone)s")
_EMAIL = N_("E-mail: %(email)s")
_EMERGENCY = N_("After hours, emergencies only: %(number)s")
_CLOSED_ON = N_("Closed: %(start)s to %(end)s %(name)s")
_PRIORITY = N_(
    "Priority %(p)s: response within %(minutes)s minutes, resolution within %(hours)s hours"
)
_NONE = N_("None")


def mail_text(pub: Publication, lang: str) -> str:
    """The publication as plain text in one language."""

    def say(msg: Msg, **kw: object) -> str:
        return translate(lang, msg) % kw

    h = pub.help
    lines = [say(_TITLE), "", f"== {say(_H_HELP)} =="]
    if h.phone:
        lines.append(say(_PHONE, phone=h.phone))
    if h.email:
        lines.append(say(_EMAIL, email=h.email))
    lines.append(h.hours[lang])
    if h.emergency:
        lines.append(say(_EMERGENCY, number=h.emergency))
    lines += [say(_CLOSED_ON, start=a, end=b, name=n) for a, b, n in h.holidays]
    for title, notices in ((_H_OUTAGES, pub.current), (_H_PLANNED, pub.planned)):
        lines += ["", f"== {say(title)} =="]
        lines += [f"- {n.title} ({n.starts_at[:16]}): {n.text[lang]}" for n in notices] or [
            say(_NONE)
        ]
    lines += ["", f"== {say(_H_SERVICES)} =="]
    lines += [
        f"- {s.name[lang]}: {s.description[lang]} ({s.owner})" for s in pub.catalogue.services
    ]
    lines += [
        say(_PRIORITY, p=c.priority, minutes=c.response_minutes, hours=c.resolution_hours)
        for c in pub.catalogue.commitments
    ]
    lines += ["", f"== {say(_H_STAFF)} =="]
    lines += [
        " · ".join(x for x in (s.name, s.position, s.services, s.office_phone, s.email) if x)
        for s in pub.staff
    ]
    return "\n".join(lines)
