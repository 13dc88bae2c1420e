"""Agent state spans (the agent_states table, for occupancy and workload reports).

Every change of an agent's state closes the agent's open span and opens a new one. The changes are
buffered and written in their order once a second in one transaction: at ten calls a second an
agent desk changes state about forty times a second, and a transaction each (issued from
concurrent tasks, so possibly committed out of order) cost the screen pop its database time.
The batch is two executemany statements (close the open spans, insert the new ones), not two
statements per change: at 30 calls a second those were some 250 round trips a second.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update

from cti.asterisks import DEFAULT_ASTERISK
from cti.db import SessionMaker
from cti.journal.models import AgentStateSpan
from cti.live.bus import AgentStateChanged, Bus

logger = logging.getLogger(__name__)
SPANS = cast(Table, AgentStateSpan.__table__)


class StateLog:
    """Writes agent state changes to agent_states in batches."""

    def __init__(
        self,
        sessions: SessionMaker,
        bus: Bus,
        interval: float = 1.0,
        asterisk: str = DEFAULT_ASTERISK,
    ) -> None:
        self.sessions = sessions
        # The Asterisk whose phones these agents are logged in at.
        self.asterisk = asterisk
        self.interval = interval
        self._pending: list[tuple[str, str, str, float]] = []
        self._task: asyncio.Task[None] | None = None
        # One flush at a time (the timer's and a caller's), so batches commit in their order.
        self._writing = asyncio.Lock()
        self._last: dict[str, tuple[str, str]] = {}
        self._unsubscribe = bus.subscribe(AgentStateChanged, self.note)

    def note(self, event: AgentStateChanged) -> None:
        """The agent's new state, from now on (a wrap-up timer change alone is no new span)."""
        a = event.agent
        if self._last.get(a.ext) == (a.state.value, a.reason):
            return
        self._last[a.ext] = (a.state.value, a.reason)
        self._pending.append((a.ext, a.state.value, a.reason, a.since))

    def start(self) -> None:
        """Write once a second from now on."""
        self._task = asyncio.create_task(self._run(), name="agent-states")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("agent states not written (kept for the next try)")

    async def flush(self) -> None:
        """Write what is buffered, in order; on failure it stays buffered."""
        async with self._writing:
            pending, self._pending = self._pending, []
            if not pending:
                return
            closes, spans = _rows(pending)
            try:
                async with self.sessions.begin() as session:
                    # Two statements for the whole batch (executemany), not two per change.
                    await session.execute(
                        update(SPANS)
                        .where(
                            SPANS.c.asterisk == self.asterisk,
                            SPANS.c.ext == bindparam("b_ext"),
                            SPANS.c.ended_at.is_(None),
                        )
                        .values(ended_at=bindparam("b_at")),
                        closes,
                    )
                    await session.execute(
                        insert(SPANS), [{**span, "asterisk": self.asterisk} for span in spans]
                    )
            except BaseException:
                self._pending[:0] = pending
                raise

    async def close(self) -> None:
        """Stop the timer and write the rest."""
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def _rows(
    pending: list[tuple[str, str, str, float]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A batch of changes, in their order, as what one change after another would have left:
    each agent's span open in the table closes at its first change, every change opens a span,
    and a span the batch opens closes at the agent's next change in the batch."""
    closes: dict[str, dict[str, Any]] = {}
    spans: list[dict[str, Any]] = []
    open_of: dict[str, dict[str, Any]] = {}
    for ext, state, reason, at in pending:
        when = datetime.fromtimestamp(at, UTC)
        before = open_of.get(ext)
        if before is None:
            closes.setdefault(ext, {"b_ext": ext, "b_at": when})
        else:
            before["ended_at"] = when
        span = {"ext": ext, "state": state, "reason": reason, "started_at": when, "ended_at": None}
        spans.append(span)
        open_of[ext] = span
    return list(closes.values()), spans
