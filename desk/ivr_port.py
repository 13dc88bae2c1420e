"""The desk services the IVR calls (cti.ivr.ports.DeskPort), on the desk's records."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cti.db import SessionMaker, retry_locked
from cti.errors import Conflict, NotFound
from cti.ivr.hours import OpeningHours
from cti.ivr.ports import (
    AnnouncementPrompt,
    DeskHours,
    IncidentStatus,
    NewIncident,
    Requester,
)
from cti.phone import NumberPlan, digits, normalize
from desk import accounts, announcements, directory, hours, incidents, sla
from desk.models import IncidentState, SurveyResponse, UserPhone
from desk.oncall import OncallRoster


class DeskService:
    """Implements DeskPort with one short transaction per call."""

    def __init__(
        self,
        sessions: SessionMaker,
        plan: NumberPlan,
        tz: ZoneInfo,
        clock: Callable[[], float] = time.time,
        fallback_hours: OpeningHours | None = None,
        on_voicemail: Callable[[str, str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.plan = plan
        self.tz = tz
        self.clock = clock
        self.fallback_hours = fallback_hours
        self.roster = OncallRoster(sessions)
        # Told (incident number, category) when a voicemail arrives: the desk's pages alert.
        self.on_voicemail = on_voicemail

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def identify_caller(self, caller_key: str) -> Requester | None:
        """The one user at this number; a number shared by several people identifies nobody."""
        async with self.sessions() as session:
            users = await directory.find_by_key(session, caller_key)
        return directory.requester_of(users[0]) if len(users) == 1 else None

    async def identify_employee(self, employee_no: str) -> Requester | None:
        """The user with this employee number."""
        async with self.sessions() as session:
            user = await directory.find_by_employee(session, employee_no)
        return directory.requester_of(user) if user else None

    async def open_incident(self, new: NewIncident) -> str:
        """Record the request; its number. A request naming a privileged account is routed to
        the administrators' group (6.2, desk/accounts.py)."""
        now = self._now()

        async def record() -> tuple[str, str]:
            async with self.sessions.begin() as session:
                incident = await incidents.create(
                    session, new, recorded_by="IVR", now=now,
                    local_day=now.astimezone(self.tz).date(),
                )  # fmt: skip
                if new.account:
                    incident.account = new.account
                    await accounts.guard(session, incident, await sla.load(session), now)
                return incident.number, incident.category

        number, category = await retry_locked(record, f"incident of {new.call_uniqueid}")
        if new.recording and self.on_voicemail is not None:
            self.on_voicemail(number, category)
        return number

    async def attach_recording(self, number: str, recording: str) -> None:
        """Attach a voicemail to an incident."""
        async with self.sessions.begin() as session:
            incident = await incidents.get(session, number)
            incident.recording = recording
            incident.updated_at = self._now()
            category = incident.category
        if self.on_voicemail is not None:
            self.on_voicemail(number, category)

    async def account_privileged(self, account: str) -> bool | None:
        """Whether the account a caller names is privileged (None: not in the directory)."""
        async with self.sessions() as session:
            found = await accounts.find(session, account)
        return found.privileged if found is not None else None

    async def incident_status(self, number: str) -> IncidentStatus | None:
        """State, and who may confirm or reopen it (the caller's number, the requester)."""
        async with self.sessions() as session:
            try:
                incident = await incidents.get(session, number)
            except NotFound:
                return None
            keys = {incident.caller_key} if incident.caller_key else set()
            if incident.requester_id is not None:
                keys.add(f"user:{incident.requester_id}")
                phones = await session.scalars(
                    select(UserPhone.key).where(UserPhone.user_id == incident.requester_id)
                )
                keys.update(phones.all())
        return IncidentStatus(incident.number, incident.state, frozenset(keys))

    async def _move(self, number: str, to: IncidentState, by: str, text: str) -> bool:
        async with self.sessions.begin() as session:
            try:
                incident = await incidents.get(session, number)
                await incidents.change_state(
                    session, incident, to, by=by, now=self._now(), text=text
                )
            except (NotFound, Conflict):
                return False
        return True

    async def confirm_closure(self, number: str, by: str) -> bool:
        """Resolved -> closed, confirmed by the requester."""
        return await self._move(number, IncidentState.CLOSED, by, "closure confirmed by phone")

    async def reopen(self, number: str, by: str) -> bool:
        """Resolved -> in progress: the requester says it is not solved."""
        return await self._move(number, IncidentState.IN_PROGRESS, by, "reopened by phone")

    async def active_announcements(self, now: datetime) -> list[AnnouncementPrompt]:
        """In force now, outages first, only those with audio."""
        async with self.sessions() as session:
            rows = await announcements.active(session, now)
        return [announcements.prompts_of(a) for a in rows if a.prompts]

    async def opening_hours(self) -> DeskHours | None:
        """The lead's hours from the database and the prompt stating them."""
        if self.fallback_hours is None:
            return None
        async with self.sessions() as session:
            found, prompts = await hours.load(session, self.fallback_hours)
        return DeskHours(found, prompts)

    async def oncall_number(self, queue: str) -> str | None:
        """The first engineer on the roster now (for `queue` or every queue) with a mobile, as
        the carrier dials it (national digits)."""
        for r in await self.roster.responders(queue):
            key = normalize(r.mobile, self.plan).key if r.mobile else None
            if key and key.startswith("+86"):
                return ("" if key.startswith("+861") else "0") + key[3:]
            if key and key.startswith("+"):
                return "00" + key[1:]
            if r.mobile:
                return "".join(c for c in r.mobile if digits(c)) or None
        return None

    async def record_survey(
        self, call_uniqueid: str, incident_number: str | None, agent: str | None, score: int
    ) -> None:
        """One score per call, also kept on the incident."""
        now = self._now()
        async with self.sessions.begin() as session:
            existing = await session.scalar(
                select(SurveyResponse).where(SurveyResponse.call_uniqueid == call_uniqueid)
            )
            if existing is None:
                session.add(
                    SurveyResponse(
                        call_uniqueid=call_uniqueid,
                        incident_number=incident_number,
                        agent=agent,
                        score=score,
                        at=now,
                    )
                )
            else:
                existing.score, existing.at = score, now
            if incident_number:
                try:
                    incident = await incidents.get(session, incident_number)
                    incident.satisfaction = score
                except NotFound:
                    pass
