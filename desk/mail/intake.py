"""Filing an incoming e-mail (3.2): a reply goes onto its incident, anything else opens one.

A reply is found by the Message-IDs it answers (In-Reply-To, References: ours are random, so
only someone who received our message can name one), or by the incident number in its subject
when it comes from that incident's requester. The requester of a new incident is the directory
user with the sender's address; an address the directory does not know opens an incident with no
requester and gets no acknowledgement (the desk writes only to directory addresses: a forged
sender cannot make the desk mail a stranger)."""

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.ivr.ports import NewIncident
from desk import directory, incidents
from desk.mail.models import (
    Delivery,
    Direction,
    IncidentMessage,
    MessageAttachment,
    MessageKind,
)
from desk.mail.parse import NUMBER_IN_SUBJECT, Inbound
from desk.models import Incident, IncidentEvent, IncidentState, IncidentType, User

_CJK = re.compile(r"[\u4e00-\u9fff]")


class Outcome(StrEnum):
    """What became of a message."""

    NEW = "new"  # opened an incident
    REPLY = "reply"  # added to an incident
    IGNORED = "ignored"  # written by a machine, or from ourselves
    DUPLICATE = "duplicate"  # already filed (read twice)


@dataclass(frozen=True)
class Filed:
    """The outcome, the incident's number (if any) and why."""

    outcome: Outcome
    number: str = ""
    reason: str = ""


async def _by_reference(session: AsyncSession, inbound: Inbound) -> Incident | None:
    if not inbound.in_reply_to:
        return None
    rows = await session.execute(
        select(IncidentMessage.message_id, IncidentMessage.incident_id).where(
            IncidentMessage.message_id.in_(inbound.in_reply_to)
        )
    )
    found: dict[str, int] = {mid: iid for mid, iid in rows}
    for ref in inbound.in_reply_to:  # the nearest reference wins
        if ref in found:
            return await session.get(Incident, found[ref])
    return None


async def _by_subject(session: AsyncSession, inbound: Inbound) -> Incident | None:
    m = NUMBER_IN_SUBJECT.search(inbound.subject)
    if m is None or not inbound.sender:
        return None
    incident = await session.scalar(select(Incident).where(Incident.number == m.group(1)))
    if incident is None or incident.requester_email.lower() != inbound.sender:
        return None
    return incident


async def _requester(session: AsyncSession, address: str) -> tuple[User | None, str]:
    users = (
        await session.scalars(select(User).where(func.lower(User.email) == address).limit(2))
    ).all()
    if len(users) == 1:
        u = users[0]
        return u, (
            f"requester {u.name} ({u.employee_no}) attached because the sender's address "
            f"{address} is in their directory record (not verified that they sent it)"
        )
    if users:
        return (
            None,
            f"the sender's address {address} is in several directory records: none attached",
        )
    return None, (
        f"e-mail from {address}, an address not in the directory: no requester attached, no "
        "acknowledgement sent"
    )


async def _store(
    session: AsyncSession, incident: Incident, inbound: Inbound, kind: MessageKind, now: datetime
) -> None:
    """The message and its attachments."""
    message = IncidentMessage(
        incident_id=incident.id,
        direction=Direction.IN.value,
        kind=kind.value,
        message_id=inbound.message_id,
        in_reply_to=inbound.in_reply_to[0] if inbound.in_reply_to else "",
        from_addr=inbound.sender,
        to_addr="",
        subject=inbound.subject,
        body=inbound.text,
        status=Delivery.RECEIVED.value,
        attempts=0,
        error="",
        at=now,
    )
    session.add(message)
    await session.flush()
    for a in inbound.attachments:
        session.add(
            MessageAttachment(
                message_id=message.id,
                filename=a.filename,
                content_type=a.content_type,
                size=len(a.data),
                data=a.data,
            )
        )


def _summary(inbound: Inbound) -> str:
    files = ", ".join(a.filename for a in inbound.attachments)
    parts = [f"e-mail from {inbound.sender}: {inbound.subject}", inbound.text[:1000]]
    if files:
        parts.append(f"attachments: {files}")
    if inbound.dropped:
        parts.append(f"attachments not kept (too large or too many): {', '.join(inbound.dropped)}")
    return "\n".join(p for p in parts if p)


async def receive(
    session: AsyncSession, inbound: Inbound, *, now: datetime, local_day: date
) -> Filed:
    """File one message; the caller commits."""
    if inbound.automatic:
        return Filed(Outcome.IGNORED, reason=inbound.automatic)
    known = await session.scalar(
        select(IncidentMessage.incident_id).where(IncidentMessage.message_id == inbound.message_id)
    )
    if known is not None:
        incident = await session.get(Incident, known)
        return Filed(Outcome.DUPLICATE, incident.number if incident else "", "already filed")
    incident = await _by_reference(session, inbound) or await _by_subject(session, inbound)
    if incident is not None:
        await _store(session, incident, inbound, MessageKind.REPLY, now)
        text = _summary(inbound)
        if incident.state == IncidentState.CLOSED:
            text = "(the incident is closed) " + text
        session.add(
            IncidentEvent(
                incident_id=incident.id,
                at=now,
                by=inbound.sender[:80],
                kind="email",
                text=text,
            )
        )
        incident.updated_at = now
        return Filed(Outcome.REPLY, incident.number)
    user, remark = await _requester(session, inbound.sender)
    symptom = "\n\n".join(p for p in (inbound.subject, inbound.text) if p)[:5000]
    new = NewIncident(
        IncidentType.SERVICE_REQUEST.value,
        "",
        symptom or "(empty e-mail)",
        "email",
        "",
        None,
        directory.requester_of(user) if user else None,
        "",
        "zh" if _CJK.search(symptom) or not symptom else "en",
        "email",
    )
    incident = await incidents.create(
        session, new, recorded_by="e-mail", now=now, local_day=local_day
    )
    if user is None:
        incident.requester_name = inbound.sender_name
    await _store(session, incident, inbound, MessageKind.REQUEST, now)
    ack = await session.scalar(
        select(IncidentMessage).where(
            IncidentMessage.incident_id == incident.id,
            IncidentMessage.kind == MessageKind.ACK.value,
        )
    )
    if ack is not None:
        ack.in_reply_to = inbound.message_id  # the acknowledgement answers the request
    for text in (remark, _summary(inbound)):
        session.add(
            IncidentEvent(incident_id=incident.id, at=now, by="e-mail", kind="note", text=text)
        )
    return Filed(Outcome.NEW, incident.number)
