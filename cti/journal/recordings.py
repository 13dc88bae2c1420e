"""Call recordings: a row per recording, linked to the call and its incident, written when an
agent answers a call the dialplan records, and deletion after the retention period.

The dialplan starts MixMonitor before Queue() for the queues the IVR marks (CTI_RECORD): the
CTI server's AMI user may not run MixMonitor itself (Asterisk files that action under the
`system` write class, which the least-privilege user lacks). The file is named by the caller
channel's Uniqueid (Asterisk's id, never anything a client sent), in the media folder both
Asterisk and the server see (`calls/<uniqueid>.wav`); the dialplan reports it with a
CtiRecording UserEvent.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cti.errors import CtiError
from cti.journal.models import CallRecording
from cti.live.bus import Bus, CallEvent, CallEventKind
from cti.live.model import CallView
from cti.tasks import Background

logger = logging.getLogger(__name__)

FOLDER = "calls"


def recorded(queue: str | None, queues: Iterable[str]) -> bool:
    """Whether calls answered in `queue` are recorded ("*" in `queues`: every queue)."""
    wanted = frozenset(queues)
    return queue is not None and ("*" in wanted or queue in wanted)


class Recorder:
    """Journals the recording of each answered call the dialplan records."""

    def __init__(self, bus: Bus, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.tasks = Background(logger)
        self._written: set[str] = set()
        self._unsubscribe = bus.subscribe(CallEvent, self._on_call)

    def _on_call(self, event: CallEvent) -> None:
        call = event.call
        if event.kind == CallEventKind.CALL_ENDED:
            self._written.discard(call.uniqueid)
        elif (
            event.kind == CallEventKind.CALL_ANSWERED
            and call.recording
            and call.uniqueid not in self._written
        ):
            self._written.add(call.uniqueid)
            self.tasks.spawn(self.start(call))

    async def start(self, call: CallView) -> CallRecording:
        """The recording row of `call` (answered just now)."""
        name = call.recording or f"{FOLDER}/{call.uniqueid}.wav"
        row = CallRecording(
            call_uniqueid=call.uniqueid,
            linkedid=call.linkedid,
            queue=call.queue,
            agent=call.agent,
            incident_number=call.incident_number,
            file=name,
            started_at=datetime.now(UTC),
        )
        async with self.sessions.begin() as s:
            s.add(row)
        logger.info("recording %s linkedid=%s", name, call.linkedid)
        return row

    async def close(self) -> None:
        """Stop listening; wait for rows being written."""
        self._unsubscribe()
        await self.tasks.close()


def delete_file(media: Path, rec: CallRecording) -> None:
    """Remove a recording's file (gone already is fine); the path stays inside `media`."""
    path = (media / rec.file).resolve()
    if media.resolve() not in path.parents:
        raise CtiError(f"recording {rec.id}: {rec.file!r} is outside the media folder")
    path.unlink(missing_ok=True)


async def expire(session: AsyncSession, media: Path, cutoff: datetime, now: datetime) -> list[Path]:
    """Mark recordings that started before `cutoff` deleted by retention (the rows stay, with
    their figures); the files to delete once that is committed."""
    rows = await session.scalars(
        select(CallRecording).where(
            CallRecording.started_at < cutoff, CallRecording.deleted_at.is_(None)
        )
    )
    files = []
    for rec in rows.all():
        files.append(media / rec.file)  # the caller deletes only what resolves inside `media`
        rec.deleted_at, rec.deleted_by = now, "retention"
    return files
