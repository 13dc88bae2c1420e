"""The acknowledgement of every new incident (6.3.1.1 c), through an outbox: `queue_ack` adds it
in the transaction that creates the incident (so there is one exactly when the incident exists,
whatever the channel), and `deliver` sends what is queued, outside any transaction, with a lease
so two server nodes never send one message twice, retries with back-off, and a record of each
outcome in the incident's history."""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cti.db import SessionMaker
from cti.errors import InvalidInput
from desk.i18n import N_
from desk.mail.models import Delivery, Direction, IncidentMessage, MessageKind
from desk.models import Incident, IncidentEvent
from desk.notify import Mailer
from desk.validation import is_email

logger = logging.getLogger(__name__)

ACK_HEADLINE = N_("has been received")
_ACK_TEXT = N_("Reply to this e-mail to add information; keep the incident number in the subject.")
ATTEMPTS = 5
LEASE = timedelta(minutes=5)
# An acknowledgement not sent within this (no SMTP server then, a long outage) is no news.
TOO_OLD = timedelta(hours=24)
BATCH = 50


def new_message_id(number: str) -> str:
    """A Message-ID for one of our messages: random, so nobody can guess it and pass for a reply."""
    return f"<{secrets.token_hex(12)}.{number}@cti-desk>"


def queue_ack(session: AsyncSession, incident: Incident, now: datetime) -> IncidentMessage | None:
    """Queue the acknowledgement of a new incident, if its requester has a directory address
    (the only addresses the desk writes to); None otherwise."""
    to = incident.requester_email
    if not to or not is_email(to):
        return None
    message = IncidentMessage(
        incident_id=incident.id,
        direction=Direction.OUT.value,
        kind=MessageKind.ACK.value,
        message_id=new_message_id(incident.number),
        in_reply_to="",
        from_addr="",
        to_addr=to,
        subject="",
        body="",
        status=Delivery.QUEUED.value,
        attempts=0,
        error="",
        at=now,
        next_try_at=now,
    )
    session.add(message)
    return message


@dataclass(frozen=True)
class Sent:
    """What one delivery round did."""

    sent: int
    failed: int
    expired: int


async def _claim(sessions: SessionMaker, now: datetime) -> list[int]:
    """Ids of queued messages now due, each leased to this round (another node skips them)."""
    async with sessions.begin() as s:
        due = (
            await s.scalars(
                select(IncidentMessage.id)
                .where(
                    IncidentMessage.status == Delivery.QUEUED.value,
                    or_(
                        IncidentMessage.next_try_at.is_(None),
                        IncidentMessage.next_try_at <= now,
                    ),
                )
                .order_by(IncidentMessage.id)
                .limit(BATCH)
            )
        ).all()
    claimed = []
    for mid in due:
        async with sessions.begin() as s:
            result = await s.execute(
                update(IncidentMessage)
                .where(
                    IncidentMessage.id == mid,
                    IncidentMessage.status == Delivery.QUEUED.value,
                    or_(
                        IncidentMessage.next_try_at.is_(None),
                        IncidentMessage.next_try_at <= now,
                    ),
                )
                .values(next_try_at=now + LEASE)
            )
            if getattr(result, "rowcount", 0) == 1:
                claimed.append(mid)
    return claimed


async def deliver(sessions: SessionMaker, mailer: Mailer, now: datetime) -> Sent:
    """Send the queued messages that are due."""
    sent = failed = expired = 0
    for mid in await _claim(sessions, now):
        async with sessions() as s:
            message = await s.get(IncidentMessage, mid)
            incident = await s.get(Incident, message.incident_id) if message else None
        if message is None or incident is None:
            continue
        error: str | None
        if message.at < now - TOO_OLD:
            status, error = Delivery.EXPIRED, "not sent within a day"
        else:
            try:
                msg = mailer.compose(incident, ACK_HEADLINE, _ack_text(incident), note=_ACK_TEXT)
            except InvalidInput as exc:
                status, error = Delivery.FAILED, str(exc)
            else:
                msg["Message-ID"] = message.message_id
                msg["Auto-Submitted"] = "auto-replied" if message.in_reply_to else "auto-generated"
                if message.in_reply_to:
                    msg["In-Reply-To"] = message.in_reply_to
                    msg["References"] = message.in_reply_to
                error = await mailer.send(msg)
                status = Delivery.SENT if error is None else Delivery.QUEUED
                if status == Delivery.QUEUED and message.attempts + 1 >= ATTEMPTS:
                    status = Delivery.FAILED
                message.subject = str(msg["Subject"])
                message.body = _body_of(msg)
                message.from_addr = str(msg["From"])
        attempts = message.attempts + 1
        values: dict[str, object] = {
            "attempts": attempts,
            "status": status.value,
            "error": (error or "")[:500],
            "subject": message.subject,
            "body": message.body,
            "from_addr": message.from_addr,
        }
        if status == Delivery.SENT:
            values["sent_at"] = now
            sent += 1
        elif status == Delivery.QUEUED:
            values["next_try_at"] = now + timedelta(minutes=2**attempts)
        else:
            failed += status == Delivery.FAILED
            expired += status == Delivery.EXPIRED
        async with sessions.begin() as s:
            # The write comes first in its transaction (no stale SQLite snapshot to upgrade).
            await s.execute(
                update(IncidentMessage).where(IncidentMessage.id == mid).values(**values)
            )
            if status != Delivery.QUEUED:
                s.add(
                    IncidentEvent(
                        incident_id=message.incident_id,
                        at=now,
                        by="e-mail",
                        kind="ack" if status == Delivery.SENT else "ack_failed",
                        text=f"acknowledgement to {message.to_addr}: {error or 'sent'}",
                    )
                )
    return Sent(sent, failed, expired)


def _ack_text(incident: Incident) -> str:
    """The request as the desk recorded it, quoted (its first 20 lines)."""
    return "\n".join(f"> {line}" for line in incident.symptom.strip().splitlines()[:20])


def _body_of(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain",))
    content = body.get_content() if body is not None else ""
    return content if isinstance(content, str) else ""
