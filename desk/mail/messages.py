"""An incident's e-mails as the workbench shows them: every message in and out, oldest first,
with its attachments named (their bytes are fetched one at a time, by agents only)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import NotFound
from desk.mail.models import IncidentMessage, MessageAttachment, MessageKind


async def list_messages(session: AsyncSession, incident_id: int) -> list[dict[str, Any]]:
    """The incident's messages (JSON-ready), oldest first."""
    found = await session.scalars(
        select(IncidentMessage).where(IncidentMessage.incident_id == incident_id)
    )
    # The request that opened an incident and its acknowledgement share a time: request first.
    messages = sorted(found.all(), key=lambda m: (m.at, m.kind != MessageKind.REQUEST, m.id))
    files = (
        await session.execute(
            select(
                MessageAttachment.id,
                MessageAttachment.message_id,
                MessageAttachment.filename,
                MessageAttachment.content_type,
                MessageAttachment.size,
            ).where(MessageAttachment.message_id.in_([m.id for m in messages]))
        )
    ).all()
    by_message: dict[int, list[dict[str, Any]]] = {}
    for fid, mid, name, ctype, size in files:
        by_message.setdefault(mid, []).append(
            {"id": fid, "filename": name, "content_type": ctype, "size": size}
        )
    return [
        {
            "id": m.id,
            "direction": m.direction,
            "kind": m.kind,
            "at": m.at.isoformat(),
            "from": m.from_addr,
            "to": m.to_addr,
            "subject": m.subject,
            "body": m.body,
            "status": m.status,
            "error": m.error,
            "attempts": m.attempts,
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            "attachments": by_message.get(m.id, []),
        }
        for m in messages
    ]


async def attachment(session: AsyncSession, attachment_id: int) -> tuple[MessageAttachment, int]:
    """An attachment and the id of its incident (NotFound otherwise)."""
    row = (
        await session.execute(
            select(MessageAttachment, IncidentMessage.incident_id)
            .join(IncidentMessage, IncidentMessage.id == MessageAttachment.message_id)
            .where(MessageAttachment.id == attachment_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no attachment {attachment_id}")
    return row[0], row[1]
