"""The on-call roster (Table A.2): who is on call when, for overflow and after hours. It is the
routing executor's Roster port (cti/routing/ports.py)."""

from datetime import UTC, datetime

from sqlalchemy import or_, select

from cti.db import SessionMaker
from cti.routing.ports import Responder
from desk.models import OncallShift, Staff


def _responder(r: OncallShift) -> Responder:
    return Responder(r.id, r.name, r.mobile, r.im_channel, r.im_handle)


class OncallRoster:
    """The roster, read from the database on every question (a change applies at once)."""

    def __init__(self, sessions: SessionMaker) -> None:
        self.sessions = sessions

    async def responders(self, queue: str) -> list[Responder]:
        """Who is on call now for this queue, in roster order."""
        now = datetime.now(UTC)
        async with self.sessions() as s:
            rows = await s.scalars(
                select(OncallShift)
                .where(
                    OncallShift.starts_at <= now,
                    OncallShift.ends_at > now,
                    or_(OncallShift.queue.is_(None), OncallShift.queue == queue),
                )
                .order_by(OncallShift.starts_at, OncallShift.id)
            )
            return [_responder(r) for r in rows.all()]

    async def responder(self, shift_id: int) -> Responder | None:
        """One roster entry, whether or not it is in force now."""
        async with self.sessions() as s:
            row = await s.get(OncallShift, shift_id)
            return _responder(row) if row is not None else None

    async def desk_phone(self, shift_id: int) -> str | None:
        """The extension of the member of staff behind a roster entry, if any."""
        async with self.sessions() as s:
            row = await s.get(OncallShift, shift_id)
            staff = await s.get(Staff, row.staff_id) if row and row.staff_id else None
            return staff.extension if staff is not None and staff.extension else None
