"""A task that is cancelled stops, even when what it waited for arrives in the same moment.

On Python 3.11 `asyncio.wait_for` returns the inner result instead of raising CancelledError when
the inner wait completes in the loop iteration that delivers the cancel; a loop around it then
never ends. The wallboard pusher's close waited forever that way in a test (its event set by
the last calls as the server stopped). The server's code uses `asyncio.timeout` instead.
"""

import asyncio
import re
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from cti.live.bus import Bus
from desk.mail.outbox import Sent
from desk.mail.poller import MailPoller
from desk.web.hub import Hub
from desk.web.pusher import WallboardPusher
from reports.wallboard import MetricSettings

ROOT = Path(__file__).resolve().parents[2]


async def _no_sessions(_ids: Any) -> set[str]:
    return set()


async def test_the_wallboard_pusher_stops_when_closed_as_a_change_arrives() -> None:
    core = SimpleNamespace(bus=Bus())
    pusher = WallboardPusher(
        cast(Any, None), [cast(Any, core)], Hub(_no_sessions), UTC, MetricSettings(), {}
    )
    pusher.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the task waits for a change now
    pusher.touch()  # the change: the wait ends in the next iteration, with the cancel
    closing = asyncio.create_task(pusher.close())
    done, _ = await asyncio.wait([closing], timeout=5)  # (wait: no cancel of its own)
    assert closing in done, "the pusher went on after its cancel"
    assert pusher._task is not None and pusher._task.cancelled()


def test_the_servers_code_does_not_use_wait_for() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("cti", "desk", "reports")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bwait_for\(", line)
    ]
    assert not found, f"asyncio.wait_for can lose a cancel on Python 3.11: {found}"


async def test_the_mail_poller_stops_when_a_step_swallows_its_cancel() -> None:
    """A step whose library swallows the cancel (3.11's wait_for, a broad except) no longer keeps
    the poller going: its close waited forever so at a test's teardown in a fresh-clone run."""
    swallowed = asyncio.Event()

    class Swallowing(MailPoller):
        async def deliver(self) -> Sent:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                swallowed.set()  # as such a library does: the cancel is gone
            return Sent(0, 0, 0)

    poller = Swallowing(cast(Any, None), cast(Any, None), None, UTC, own=set(),
                        poll_seconds=60, outbox_seconds=60)  # fmt: skip
    poller.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the poller is in its outbox step now
    closing = asyncio.create_task(poller.close())
    done, _ = await asyncio.wait([closing], timeout=5)
    assert swallowed.is_set()
    assert closing in done, "the poller went on after its cancel"
