"""What routing needs from the service desk and the reports, as protocols they implement.

cti/ never imports desk/ or reports/: the composition root hands the executor objects with these
methods (the on-call roster is the desk's; today's handle time is the reports' figure).
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Responder:
    """Someone on call now."""

    shift_id: int
    name: str
    mobile: str
    im_channel: str
    im_handle: str


class Roster(Protocol):
    """The on-call roster."""

    async def responders(self, queue: str) -> list[Responder]:
        """Who is on call now for this queue, in roster order."""
        ...

    async def responder(self, shift_id: int) -> Responder | None:
        """One roster entry, whether or not it is in force now."""
        ...

    async def desk_phone(self, shift_id: int) -> str | None:
        """The extension of the member of staff behind a roster entry, if any."""
        ...


class HandleTimes(Protocol):
    """Today's average handle time per queue (the metric's one definition)."""

    async def aht(self, queue: str) -> float | None:
        """Seconds, or None before the first answered call of the day."""
        ...
