"""What every IVR call needs: configuration, the desk port, paths, and the step journal."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cti.ivr.hours import OpeningHours
from cti.ivr.menu import MenuConfig
from cti.ivr.ports import DeskPort
from cti.ivr.prompts import PromptCatalogue
from cti.phone import NumberPlan


@dataclass(frozen=True)
class MediaPaths:
    """One folder seen from two places: this host (`host`) and Asterisk (`asterisk`)."""

    host: Path
    asterisk: str

    def recording(self, name: str) -> tuple[Path, str]:
        """(host path with .wav, Asterisk path without extension) of a voicemail recording."""
        return self.host / "recordings" / f"{name}.wav", f"{self.asterisk}/recordings/{name}"


@dataclass(frozen=True)
class IvrContext:
    """Shared by every call; read-only."""

    menu: MenuConfig
    prompts: PromptCatalogue
    hours: OpeningHours
    desk: DeskPort
    plan: NumberPlan
    media: MediaPaths
    clock: Callable[[], float] = time.time
    # Calls queued here are recorded once an agent answers ("*": every queue).
    record_queues: tuple[str, ...] = ()

    def now(self) -> datetime:
        """The current time, aware UTC."""
        return datetime.fromtimestamp(self.clock(), UTC)


@dataclass
class StepLog:
    """The IVR steps of one call, journaled when the call leaves the IVR."""

    call_uniqueid: str
    route: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, menu: str, step: str, digits: str, result: str, started: float) -> None:
        """Record one step that started at `started` (time.time())."""
        now = time.time()
        self.rows.append(
            {
                "call_uniqueid": self.call_uniqueid,
                "seq": len(self.rows) + 1,
                "at": datetime.fromtimestamp(started, UTC),
                "route": self.route,
                "menu": menu,
                "step": step,
                "digits": digits[:40],
                "result": result[:120],
                "seconds": round(now - started, 3),
            }
        )
