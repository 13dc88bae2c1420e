"""The user directory synced from LDAP / Active Directory (6.3.1.2 d, 6.2).

Entries under the base DN that match the filter become directory users keyed by employee
number, their attributes mapped to the 6.3.1.2 fields (CTI_LDAP_ATTRIBUTES); membership of a
privileged group (CTI_LDAP_PRIVILEGED_GROUPS: the group's member / uniqueMember list, as AD and
OpenLDAP both keep it) sets `users.privileged`. A dry run says what would change and changes
nothing; a real run writes each change with its history (by "ldap"). Users the directory no
longer lists are reported, never deleted: incidents refer to them.

ldap3 is synchronous; every LDAP exchange runs in a thread, under CTI_LDAP_TIMEOUT.
Staff may also log in with their directory password (an LDAP bind), local passwords remain.
"""

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import ConfigError, CtiError
from cti.phone import NumberPlan
from cti.settings import Settings
from desk import directory
from desk.models import User, UserChange

logger = logging.getLogger(__name__)

BY = "ldap"


class LdapError(CtiError):
    """The directory server could not be reached or refused us."""


@dataclass(frozen=True)
class LdapConfig:
    """Where the directory is and how its entries map to our fields."""

    url: str
    bind_dn: str
    secret: str = field(repr=False)
    base_dn: str
    user_filter: str
    attributes: dict[str, tuple[str, ...]]
    privileged_groups: tuple[str, ...]
    staff_filter: str
    timeout: float

    @classmethod
    def from_settings(cls, s: Settings) -> "LdapConfig | None":
        """None when no directory is configured; ConfigError for a bad mapping."""
        if not s.ldap_url:
            return None
        if not s.ldap_url.startswith(("ldap://", "ldaps://")):
            raise ConfigError("CTI_LDAP_URL must start with ldap:// or ldaps://")
        mapping: dict[str, tuple[str, ...]] = {}
        for pair in s.ldap_attributes:
            key, sep, attrs = pair.partition("=")
            if not sep or key.strip() not in directory.FIELDS or not attrs.strip():
                raise ConfigError(
                    f"CTI_LDAP_ATTRIBUTES: {pair!r} is not field=attribute "
                    f"(fields: {', '.join(directory.FIELDS)})"
                )
            mapping[key.strip()] = tuple(a.strip() for a in attrs.split("|") if a.strip())
        for required in ("employee_no", "name"):
            if required not in mapping:
                raise ConfigError(f"CTI_LDAP_ATTRIBUTES: map {required} to an attribute")
        if "{username}" not in s.ldap_staff_filter:
            raise ConfigError("CTI_LDAP_STAFF_FILTER must contain {username}")
        return cls(
            s.ldap_url,
            s.ldap_bind_dn,
            s.ldap_bind_secret,
            s.ldap_base_dn,
            s.ldap_user_filter,
            mapping,
            tuple(g.strip() for g in s.ldap_privileged_groups.split(";") if g.strip()),
            s.ldap_staff_filter,
            s.ldap_timeout,
        )


def _connect(cfg: LdapConfig, user: str | None, password: str | None) -> ldap3.Connection:
    # Whole seconds: ldap3 packs the receive timeout into a socket option with struct.
    seconds = max(1, math.ceil(cfg.timeout))
    server = ldap3.Server(cfg.url, connect_timeout=seconds, get_info=ldap3.NONE)
    conn = ldap3.Connection(
        server,
        user=user or None,
        password=password or None,
        receive_timeout=seconds,
        read_only=True,
        raise_exceptions=True,
    )
    conn.bind()
    return conn


def _first(entry: dict[str, Any], names: tuple[str, ...]) -> str:
    lowered = {k.lower(): v for k, v in entry.items()}
    for name in names:
        value = lowered.get(name.lower())
        if isinstance(value, list):
            value = value[0] if value else None
        if value not in (None, ""):
            return str(value).strip()
    return ""


def fetch(cfg: LdapConfig) -> tuple[list[dict[str, Any]], set[str]]:
    """Every matching entry ({"dn", attributes...}) and the DNs of privileged accounts
    (blocking: run it in a thread)."""
    wanted = sorted({a for names in cfg.attributes.values() for a in names})
    try:
        conn = _connect(cfg, cfg.bind_dn, cfg.secret)
        try:
            rows = conn.extend.standard.paged_search(
                cfg.base_dn,
                cfg.user_filter,
                ldap3.SUBTREE,
                attributes=wanted,
                paged_size=500,
                generator=False,
            )
            entries = [
                {"dn": r["dn"], **dict(r["attributes"])}
                for r in rows
                if r.get("type") == "searchResEntry"
            ]
            privileged: set[str] = set()
            for group in cfg.privileged_groups:
                conn.search(
                    group, "(objectClass=*)", ldap3.BASE, attributes=["member", "uniqueMember"]
                )
                for r in conn.response or []:
                    attrs = r.get("attributes", {})
                    for dn in [*attrs.get("member", []), *attrs.get("uniqueMember", [])]:
                        privileged.add(str(dn).lower())
        finally:
            conn.unbind()
    except LDAPException as exc:
        raise LdapError(f"LDAP {cfg.url}: {type(exc).__name__}: {exc}") from None
    return entries, privileged


@dataclass
class SyncPlan:
    """What a sync does (or, in a dry run, would do)."""

    created: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)  # with changes {field: [old, new]}
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # entries we cannot use, and why
    missing: list[str] = field(default_factory=list)  # our users the directory no longer lists

    def as_json(self, dry_run: bool) -> dict[str, Any]:
        """The public form."""
        return {
            "dry_run": dry_run,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "missing": self.missing,
        }


def rows_of(
    cfg: LdapConfig, entries: list[dict[str, Any]], privileged: set[str], plan: NumberPlan
) -> tuple[list[dict[str, Any]], list[str]]:
    """Directory rows (our fields + privileged) and the entries skipped, with why."""
    rows, skipped, seen = [], [], set()
    for entry in entries:
        data = {key: _first(entry, names) for key, names in cfg.attributes.items()}
        problems = directory.validate(data, plan)
        if data.get("employee_no") in seen:
            problems.append(f"employee_no {data['employee_no']} appears twice")
        if problems:
            skipped.append(f"{entry['dn']}: " + "; ".join(problems))
            continue
        seen.add(data["employee_no"])
        rows.append({**data, "privileged": str(entry["dn"]).lower() in privileged})
    return rows, skipped


def _privileged_change(user: User, now: datetime, old: bool, new: bool) -> UserChange:
    return UserChange(
        user_id=user.id, at=now, by=BY, field="privileged", old=str(old), new=str(new)
    )


async def apply(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    *,
    dry_run: bool,
    now: datetime,
    plan: NumberPlan,
) -> SyncPlan:
    """Compare the directory's rows with ours and, unless `dry_run`, write the differences."""
    result = SyncPlan()
    ours = {u.employee_no: u for u in (await session.scalars(select(User))).all()}
    for row in rows:
        user = ours.get(row["employee_no"])
        fields = {k: v for k, v in row.items() if k != "privileged"}
        if user is None:
            result.created.append({**fields, "privileged": row["privileged"]})
            if not dry_run:
                created, _ = await directory.upsert_user(session, fields, by=BY, now=now, plan=plan)
                if row["privileged"]:
                    created.privileged = True
                    session.add(_privileged_change(created, now, False, True))
            continue
        changes = {
            k: [getattr(user, k), v]
            for k, v in fields.items()
            if k != "employee_no" and getattr(user, k) != v
        }
        if user.privileged != row["privileged"]:
            changes["privileged"] = [user.privileged, row["privileged"]]
        if not changes:
            result.unchanged += 1
            continue
        result.updated.append({"employee_no": user.employee_no, "name": row["name"],
                               "changes": changes})  # fmt: skip
        if not dry_run:
            await directory.upsert_user(session, fields, by=BY, now=now, plan=plan)
            if "privileged" in changes:
                session.add(_privileged_change(user, now, user.privileged, row["privileged"]))
                user.privileged = row["privileged"]
                user.updated_at = now
    listed = {r["employee_no"] for r in rows}
    result.missing = sorted(no for no in ours if no not in listed)
    return result


async def sync(
    session: AsyncSession, cfg: LdapConfig, *, dry_run: bool, now: datetime, plan: NumberPlan
) -> SyncPlan:
    """Read the directory and apply (or plan) the changes in `session`'s transaction."""
    entries, privileged = await asyncio.to_thread(fetch, cfg)
    rows, skipped = rows_of(cfg, entries, privileged, plan)
    result = await apply(session, rows, dry_run=dry_run, now=now, plan=plan)
    result.skipped = skipped
    return result


class LdapLogin:
    """Staff login against the directory: find the entry with the service account, then bind
    as it with the password typed. The staff record (role, extension) stays ours."""

    def __init__(self, cfg: LdapConfig) -> None:
        self.cfg = cfg

    def _check(self, username: str, password: str) -> bool:
        if not password:  # an empty password is an anonymous bind: it proves nothing
            return False
        flt = self.cfg.staff_filter.replace("{username}", escape_filter_chars(username))
        try:
            conn = _connect(self.cfg, self.cfg.bind_dn, self.cfg.secret)
            try:
                conn.search(self.cfg.base_dn, flt, ldap3.SUBTREE, attributes=[], size_limit=2)
                found = [r["dn"] for r in conn.response or [] if r.get("type") == "searchResEntry"]
            finally:
                conn.unbind()
            if len(found) != 1:
                return False
            _connect(self.cfg, found[0], password).unbind()
        except LDAPException as exc:
            logger.info("LDAP login for %s refused: %s", username, type(exc).__name__)
            return False
        return True

    async def verify(self, username: str, password: str) -> bool:
        """True when the directory accepts this user's password."""
        return await asyncio.to_thread(self._check, username, password)
