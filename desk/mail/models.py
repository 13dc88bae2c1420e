"""The mail records: every message sent or received about an incident (with its attachments),
and the addresses that asked for the desk's publications."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cti.journal.models import Base, Clipped


class Direction(StrEnum):
    """Which way a message went."""

    IN = "in"
    OUT = "out"


class MessageKind(StrEnum):
    """What a message is for."""

    REQUEST = "request"  # an e-mail that opened the incident
    REPLY = "reply"  # a later e-mail threaded into it
    ACK = "ack"  # the acknowledgement with the incident's number


class Delivery(StrEnum):
    """Where an outgoing message is (incoming ones are RECEIVED)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt, or the address is unusable
    EXPIRED = "expired"  # not sent in time (no SMTP server then): too old to be news
    RECEIVED = "received"


class IncidentMessage(Base):
    """One e-mail about an incident, in or out. `message_id` is the Message-ID header: replies
    name it in In-Reply-To/References, which is how they find their incident."""

    __tablename__ = "incident_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(Clipped(250), unique=True)
    in_reply_to: Mapped[str] = mapped_column(Clipped(250), default="")
    from_addr: Mapped[str] = mapped_column(Clipped(250), default="")
    to_addr: Mapped[str] = mapped_column(Clipped(250), default="")
    subject: Mapped[str] = mapped_column(Clipped(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Clipped(500), default="")
    at: Mapped[datetime] = mapped_column(index=True)  # received, or queued
    sent_at: Mapped[datetime | None]
    # An outgoing message is not tried before this (back-off after a failure, or a node's lease).
    next_try_at: Mapped[datetime | None] = mapped_column(index=True)


class MessageAttachment(Base):
    """A file that came with an incoming message, kept as it came (bytes in the database, so
    every server node serves the same)."""

    __tablename__ = "incident_message_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("incident_messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(Clipped(250), default="")
    content_type: Mapped[str] = mapped_column(Clipped(120), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Subscriber(Base):
    """An address that receives what the desk publishes (6.4), once it confirmed it asked to
    (the link in the confirmation e-mail): nobody can subscribe someone else."""

    __tablename__ = "mail_subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    confirmed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    last_sent_digest: Mapped[str] = mapped_column(String(64), default="")
