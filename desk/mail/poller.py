"""The mail job: reads the desk's mailbox every `poll_seconds`, sends the outbox every
`outbox_seconds` (and at once after a poll filed something, or when kicked), and hands the
desk's publications to their subscribers now and then. One task, owned by whoever calls
start() and close() (the web application's cleanup context)."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cti.db import SessionMaker
from cti.errors import CtiError
from cti.tasks import stop_if_cancelled
from desk.mail import intake, outbox
from desk.mail.imap import ImapError, ImapSettings, open_mailbox
from desk.mail.parse import parse
from desk.notify import Mailer

logger = logging.getLogger(__name__)

PER_POLL = 50
Publisher = Callable[[], Awaitable[int]]


class MailPoller:
    """Mailbox in, outbox out, publications to subscribers."""

    def __init__(
        self,
        sessions: SessionMaker,
        mailer: Mailer,
        imap: ImapSettings | None,
        tz: tzinfo,
        *,
        own: set[str],
        poll_seconds: float,
        outbox_seconds: float,
        publish: Publisher | None = None,
        publish_seconds: float = 600.0,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.imap = imap
        self.tz = tz
        self.own = {a.lower() for a in own if a}
        self.poll_seconds = max(1.0, poll_seconds)
        self.outbox_seconds = max(0.2, outbox_seconds)
        self.publish = publish
        self.publish_seconds = publish_seconds
        self.active = active
        self._kick = asyncio.Event()
        self._publish_now = False
        self._task: asyncio.Task[None] | None = None
        self.errors: dict[str, str] = {}  # the last failure of each part, while it lasts

    def start(self) -> None:
        """Run the job in the background."""
        self._task = asyncio.create_task(self._run(), name="mail")

    async def close(self) -> None:
        """Stop the job and wait for it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self, *, publish: bool = False) -> None:
        """Look at the mailbox and the outbox now (and publish now, with `publish`)."""
        self._publish_now = self._publish_now or publish
        self._kick.set()

    async def poll_mailbox(self) -> list[intake.Filed]:
        """File every unseen message (at most PER_POLL); what became of each."""
        if self.imap is None:
            return []
        out = []
        async with open_mailbox(self.imap) as box:
            for uid in await box.unseen(PER_POLL):
                raw = await box.read(uid)
                if raw is None:
                    await box.mark_seen(uid)
                    continue
                try:
                    filed = await self._file(raw)
                except (CtiError, IntegrityError) as exc:  # filed by another node meanwhile
                    logger.warning("mail uid %s not filed: %s", uid, exc)
                    continue
                except (SQLAlchemyError, OSError):
                    # Left unseen, tried again next poll; the messages after it still go in.
                    logger.exception("mail uid %s not filed", uid)
                    continue
                logger.info("mail uid %s: %s %s %s", uid, filed.outcome, filed.number, filed.reason)
                out.append(filed)
                await box.mark_seen(uid)
        return out

    async def _file(self, raw: bytes) -> intake.Filed:
        inbound = parse(raw, self.own)
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            return await intake.receive(
                s, inbound, now=now, local_day=now.astimezone(self.tz).date()
            )

    async def deliver(self) -> outbox.Sent:
        """Send the outbox's due messages (nothing without an SMTP server)."""
        if not self.mailer.enabled:
            return outbox.Sent(0, 0, 0)
        return await outbox.deliver(self.sessions, self.mailer, datetime.now(UTC))

    async def _step(self, name: str, work: Callable[[], Awaitable[object]]) -> None:
        """One part of a round: its failure is logged and kept, and the other parts still run
        (a mailbox that is down never holds up the acknowledgements)."""
        try:
            await work()
            self.errors.pop(name, None)
        except ImapError as exc:
            self.errors[name] = str(exc)
            logger.error("mail: %s", exc)
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            logger.exception("mail %s failed", name)

    async def _run(self) -> None:
        next_poll = next_publish = time.monotonic()
        while True:
            now = time.monotonic()
            # The mailbox and the publications: on one node of several (`active`); the outbox
            # sends under a lease per message, so any node may.
            active = self.active()
            if active and self.imap is not None and (now >= next_poll or self._kick.is_set()):
                next_poll = now + self.poll_seconds
                await self._step("mailbox", self.poll_mailbox)
            self._kick.clear()
            await self._step("outbox", self.deliver)
            if active and self.publish is not None and (now >= next_publish or self._publish_now):
                next_publish = now + self.publish_seconds
                self._publish_now = False
                await self._step("publish", self.publish)
            stop_if_cancelled()  # a step swallowed our cancel (a test's close waited forever so)
            with contextlib.suppress(TimeoutError):  # timeout(): a cancel is never lost
                async with asyncio.timeout(self.outbox_seconds):
                    await self._kick.wait()
