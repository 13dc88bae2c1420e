"""Retention: what the desk keeps, and for how long (China's PIPL, art. 19: personal data is kept
no longer than its purpose needs). Applied by the report scheduler; each sweep that changes
anything leaves an audit entry with its counts, and /metrics shows the last sweep.

- calls: call records that ended before the cutoff are deleted, with their IVR steps;
- IVR steps: steps older than the cutoff are deleted (the call record keeps its IVR path);
- recordings: voicemail files older than the cutoff are deleted and unlinked from incidents, and
  call recordings (MixMonitor) older than it are deleted, their rows kept and marked;
- personal data: caller numbers and names in call records, keyed digits in IVR steps, and the
  requester's contacts in closed incidents are blanked; the records stay, so the figures of
  past reports do not change.
A setting of 0 days keeps that kind until deleted by hand.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cti.db import SessionMaker
from cti.journal import recordings
from cti.journal.models import Call, IvrStep
from cti.settings import Settings
from desk import audit
from desk.models import Incident, IncidentState

logger = logging.getLogger(__name__)

ACTOR = "retention"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each kind (0: no limit)."""

    calls_days: int = 0
    ivr_steps_days: int = 0
    recordings_days: int = 0
    personal_days: int = 0

    @classmethod
    def from_settings(cls, s: Settings) -> "RetentionPolicy":
        """The CTI_RETENTION_* settings."""
        return cls(s.retention_calls_days, s.retention_ivr_steps_days,
                   s.retention_recordings_days, s.retention_personal_days)  # fmt: skip

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return any((self.calls_days, self.ivr_steps_days, self.recordings_days,
                    self.personal_days))  # fmt: skip


@dataclass
class RetentionResult:
    """What one sweep deleted or blanked."""

    at: datetime
    calls: int = 0
    ivr_steps: int = 0
    recordings: int = 0
    personal_calls: int = 0
    personal_incidents: int = 0
    errors: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # recordings to delete once committed

    def counts(self) -> dict[str, int]:
        """Kind -> number, for the audit entry and /metrics."""
        return {"calls": self.calls, "ivr_steps": self.ivr_steps, "recordings": self.recordings,
                "personal_calls": self.personal_calls,
                "personal_incidents": self.personal_incidents}  # fmt: skip


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def run(
    sessions: SessionMaker, policy: RetentionPolicy, now: datetime, media_root: Path
) -> RetentionResult:
    """One sweep: the rows in one transaction, then the files (only once no row names them),
    then an audit entry with the counts when anything went."""
    async with sessions.begin() as session:
        out = await sweep(session, policy, now, media_root)
    out.recordings = _remove(out.files, media_root, out)
    if any(out.counts().values()) or out.errors:
        detail: dict[str, object] = {**out.counts(), "calls_days": policy.calls_days,
            "ivr_steps_days": policy.ivr_steps_days, "recordings_days": policy.recordings_days,
            "personal_days": policy.personal_days}  # fmt: skip
        if out.errors:
            detail["errors"] = "; ".join(out.errors)[:500]
        async with sessions.begin() as session:
            audit.record(session, ACTOR, "retention.sweep", "", detail, now=now)
    logger.info("retention sweep: %s", out.counts())
    return out


async def sweep(
    session: AsyncSession, policy: RetentionPolicy, now: datetime, media_root: Path
) -> RetentionResult:
    """The rows' part of the policy, in the session's transaction; the files to delete are
    listed in the result."""
    out = RetentionResult(now)
    if policy.calls_days:
        cutoff = now - timedelta(days=policy.calls_days)
        old = select(Call.uniqueid).where(Call.ended_at.is_not(None), Call.ended_at < cutoff)
        out.ivr_steps += _rowcount(
            await session.execute(delete(IvrStep).where(IvrStep.call_uniqueid.in_(old)))
        )
        out.calls = _rowcount(
            await session.execute(
                delete(Call).where(Call.ended_at.is_not(None), Call.ended_at < cutoff)
            )
        )
    if policy.ivr_steps_days:
        cutoff = now - timedelta(days=policy.ivr_steps_days)
        out.ivr_steps += _rowcount(
            await session.execute(delete(IvrStep).where(IvrStep.at < cutoff))
        )
    if policy.personal_days:
        cutoff = now - timedelta(days=policy.personal_days)
        out.personal_calls = _rowcount(
            await session.execute(
                update(Call)
                .where(
                    Call.arrived_at < cutoff, or_(Call.caller_number != "", Call.caller_name != "")
                )
                .values(caller_number="", caller_name="")
            )
        )
        await session.execute(
            update(IvrStep).where(IvrStep.at < cutoff, IvrStep.digits != "").values(digits="")
        )
        out.personal_incidents = _rowcount(
            await session.execute(
                update(Incident)
                .where(
                    Incident.created_at < cutoff,
                    Incident.state == IncidentState.CLOSED.value,
                    or_(Incident.caller_number != "", Incident.requester_name != "",
                        Incident.requester_id.is_not(None), Incident.requester_mobile != "",
                        Incident.requester_office_phone != "", Incident.requester_email != ""),
                )
                .values(caller_number="", caller_key=None, requester_id=None, requester_name="",
                        requester_office_phone="", requester_mobile="", requester_email="")
            )
        )  # fmt: skip
    doomed: list[Path] = []
    if policy.recordings_days:
        cutoff = now - timedelta(days=policy.recordings_days)
        rows = await session.execute(
            select(Incident.id, Incident.recording).where(
                Incident.created_at < cutoff, Incident.recording.is_not(None)
            )
        )
        ids = []
        for incident_id, name in rows:
            ids.append(incident_id)
            doomed.append(media_root / str(name))
        if ids:
            await session.execute(
                update(Incident).where(Incident.id.in_(ids)).values(recording=None)
            )
        # Call recordings (MixMonitor): the rows stay, marked deleted by retention.
        doomed += await recordings.expire(session, media_root, cutoff, now)
        # Files no incident names any more (a failed call, a crash between file and row).
        folder = media_root / "recordings"
        if folder.is_dir():
            limit = cutoff.timestamp()
            doomed += [p for p in folder.iterdir() if p.is_file() and p.stat().st_mtime < limit]
    out.files = doomed
    return out


def _remove(paths: list[Path], media_root: Path, out: RetentionResult) -> int:
    """Delete the files (only inside the media folder); how many went."""
    root = media_root.resolve()
    removed = 0
    for path in dict.fromkeys(paths):
        try:
            real = path.resolve()
            if not real.is_relative_to(root):
                out.errors.append(f"{path}: outside the media folder, kept")
                continue
            real.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.errors.append(f"{path}: {exc}")
    return removed


async def run_cli(settings: Settings, policy: RetentionPolicy, now: datetime) -> RetentionResult:
    """`cti retention`: one sweep on the configured database."""
    from cti.db import create_engine, migrate, session_maker
    from desk.migrations import MIGRATIONS

    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine, MIGRATIONS)
        return await run(session_maker(engine), policy, now, settings.effective_media_dir)
    finally:
        await engine.dispose()
