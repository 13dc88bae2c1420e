"""The routing executor's own records: back-up alerts, IM offers of waiting calls, call-backs.

Their text comes from the calls (Asterisk) and the roster, so every text column is Clipped."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

from cti.journal.models import Base, Clipped


class OfferState(StrEnum):
    """An IM offer of a waiting call."""

    OPEN = "open"  # on offer; the first valid click takes it
    TAKEN = "taken"
    EXPIRED = "expired"  # nobody took it in time
    GONE = "gone"  # taken, but the caller had stopped waiting (or the responder has no phone)


class CallbackState(StrEnum):
    """A caller's call-back request."""

    PENDING = "pending"
    DIALLING = "dialling"
    DONE = "done"  # the caller answered and was put back in the queue
    FAILED = "failed"


class BackupAlert(Base):
    """One queue back-up (6.3.1.4): raised once per peak, with the rules that tripped."""

    __tablename__ = "backup_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    queue: Mapped[str] = mapped_column(Clipped(80), index=True)
    raised_at: Mapped[datetime] = mapped_column(index=True)
    cleared_at: Mapped[datetime | None]
    rules: Mapped[dict[str, Any]]  # measure -> highest value seen
    notified: Mapped[list[Any]] = mapped_column(default=list)  # IM deliveries


class OverflowOffer(Base):
    """A waiting call offered to IM responders; the first valid click takes it."""

    __tablename__ = "overflow_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    uniqueid: Mapped[str] = mapped_column(Clipped(150), index=True)
    queue: Mapped[str] = mapped_column(Clipped(80))
    caller_number: Mapped[str] = mapped_column(Clipped(80), default="")
    caller_name: Mapped[str] = mapped_column(Clipped(200), default="")
    incident_number: Mapped[str | None] = mapped_column(Clipped(20))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(Clipped(12), default=OfferState.OPEN)
    taken_by: Mapped[str | None] = mapped_column(Clipped(120))
    taken_at: Mapped[datetime | None]
    deliveries: Mapped[list[Any]] = mapped_column(default=list)


class CallbackRequest(Base):
    """A caller who pressed 1 to be called back, keeping their place in the queue."""

    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    uniqueid: Mapped[str] = mapped_column(Clipped(150), unique=True)
    queue: Mapped[str] = mapped_column(Clipped(80))
    number: Mapped[str] = mapped_column(Clipped(80))
    incident_number: Mapped[str | None] = mapped_column(Clipped(20))
    queued_at: Mapped[datetime] = mapped_column(index=True)  # their original place
    requested_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(Clipped(12), default=CallbackState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_uniqueid: Mapped[str | None] = mapped_column(Clipped(150))
    result: Mapped[str] = mapped_column(Clipped(40), default="")
    updated_at: Mapped[datetime]
