"""What the IVR needs from the service desk, as a protocol the desk application implements.

cti/ never imports desk/: the composition root hands the IVR an object with these methods.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cti.ivr.hours import OpeningHours


@dataclass(frozen=True)
class Requester:
    """Who is calling, from the user directory (6.3.1.2 d)."""

    user_id: int
    employee_no: str
    name: str
    department: str = ""
    location: str = ""
    office_phone: str = ""
    mobile: str = ""
    email: str = ""


@dataclass(frozen=True)
class NewIncident:
    """Everything the phone can tell about a new request (6.3.1.2)."""

    type: str  # fault, service_request, consultation
    category: str
    symptom: str
    channel: str  # phone, voicemail
    caller_number: str
    caller_key: str | None
    requester: Requester | None
    call_uniqueid: str
    language: str
    menu_path: str
    announcement_id: int | None = None
    recording: str | None = None
    account: str | None = None  # 6.2: the account a password or account request is about


@dataclass(frozen=True)
class IncidentStatus:
    """What a caller may hear about an incident."""

    number: str
    state: str
    caller_keys: frozenset[str] = field(default_factory=frozenset)  # numbers that may act on it


@dataclass(frozen=True)
class AnnouncementPrompt:
    """An active announcement as the IVR plays it."""

    id: int
    kind: str  # outage, change, info
    prompts: dict[str, str]  # language -> prompt file (as Asterisk sees it, no extension)


@dataclass(frozen=True)
class DeskHours:
    """The opening hours the lead set, and the after-hours prompt that states them."""

    hours: OpeningHours
    prompts: dict[str, str]  # language -> prompt file (as Asterisk sees it, no extension)


class DeskPort(Protocol):
    """The desk services the IVR calls."""

    async def identify_caller(self, caller_key: str) -> Requester | None:
        """The user whose office phone, mobile or extension this is (None if unknown or shared)."""
        ...

    async def identify_employee(self, employee_no: str) -> Requester | None:
        """The user with this employee number."""
        ...

    async def open_incident(self, new: NewIncident) -> str:
        """Record the request; return its digits-only number."""
        ...

    async def attach_recording(self, number: str, recording: str) -> None:
        """Attach a voicemail recording to an incident."""
        ...

    async def account_privileged(self, account: str) -> bool | None:
        """Whether the account a caller names is privileged (6.2); None if it is unknown."""
        ...

    async def incident_status(self, number: str) -> IncidentStatus | None:
        """The state of an incident, or None if there is none with that number."""
        ...

    async def confirm_closure(self, number: str, by: str) -> bool:
        """The requester confirms a resolved incident is solved: close it."""
        ...

    async def reopen(self, number: str, by: str) -> bool:
        """The requester says a resolved incident is not solved: reopen it."""
        ...

    async def active_announcements(self, now: datetime) -> list[AnnouncementPrompt]:
        """Announcements to play now, outages first."""
        ...

    async def opening_hours(self) -> DeskHours | None:
        """The hours in force (None: the IVR's own hours.yaml)."""
        ...

    async def oncall_number(self, queue: str) -> str | None:
        """The number of the engineer on call now for `queue` (the roster), if anyone is."""
        ...

    async def record_survey(
        self, call_uniqueid: str, incident_number: str | None, agent: str | None, score: int
    ) -> None:
        """Store a post-call satisfaction score with the call, the incident and the agent."""
        ...
