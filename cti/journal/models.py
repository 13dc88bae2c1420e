"""SQLAlchemy models of the call journal."""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from cti.asterisks import DEFAULT_ASTERISK


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ELLIPSIS = "…"


def clip(value: str, limit: int) -> str:
    """`value` fitted into `limit` characters: NUL characters (which PostgreSQL refuses in text)
    dropped, and a longer value cut with an ellipsis as its last character, so the cut shows."""
    value = value.replace("\x00", "")
    return value if len(value) <= limit else value[: limit - 1] + ELLIPSIS


class Clipped(TypeDecorator[str]):
    """VARCHAR(n) for text that comes from outside and cannot be refused: AMI events, FastAGI
    sessions, queue_log, what a caller keys. Every value is clipped to n characters on its way
    into the database, whatever path writes it: PostgreSQL refuses a longer value (SQLite keeps
    it), and one refused value would fail the whole statement it is part of.

    Text typed over HTTP is checked by the handlers instead, with a message naming the field."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.limit = length

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """Clip on the way in."""
        return None if value is None else clip(value, self.limit)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Call(Base):
    """One call, from arrival to hang-up, keyed by its Asterisk's name and the caller channel's
    Uniqueid (a Uniqueid is unique on one Asterisk only)."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("asterisk", "uniqueid", name="uq_calls_asterisk_uniqueid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The Asterisk the call lives on (cti/asterisks.py): "main" for the single-Asterisk settings.
    asterisk: Mapped[str] = mapped_column(
        String(40), default=DEFAULT_ASTERISK, server_default=DEFAULT_ASTERISK, index=True
    )
    uniqueid: Mapped[str] = mapped_column(Clipped(150))
    linkedid: Mapped[str] = mapped_column(Clipped(150), index=True)
    channel: Mapped[str] = mapped_column(Clipped(200), default="")
    caller_number: Mapped[str] = mapped_column(Clipped(80), default="")
    caller_name: Mapped[str] = mapped_column(Clipped(200), default="")
    dialled_number: Mapped[str] = mapped_column(Clipped(80), default="")
    arrived_at: Mapped[datetime] = mapped_column(index=True)
    ivr_entered_at: Mapped[datetime | None]
    ivr_left_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    talk_ended_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    queue: Mapped[str | None] = mapped_column(Clipped(80), index=True)
    agent: Mapped[str | None] = mapped_column(Clipped(80), index=True)
    # Each offer to an agent: {"agent", "interface", "at", "ended_at", "result"} (times as ISO).
    offers: Mapped[list[Any]] = mapped_column(default=list)
    ring_no_answer: Mapped[int] = mapped_column(Integer, default=0)
    # Each overflow (6.3.1.4, 4.2 f): {"kind": mobile|im|callback, "to", "at", "answered_at",
    # "result"} — where the call went, when, and whether it was answered there.
    overflows: Mapped[list[Any]] = mapped_column(default=list)
    # After-call work of the agent who answered (their wrap-up), written when it ends.
    acw_seconds: Mapped[float | None] = mapped_column(Float)
    # A call-back the desk placed: the Uniqueid of the call whose caller asked for it.
    callback_of: Mapped[str | None] = mapped_column(Clipped(150))
    outcome: Mapped[str | None] = mapped_column(Clipped(20), index=True)
    queue_status: Mapped[str | None] = mapped_column(Clipped(20))
    complete_reason: Mapped[str | None] = mapped_column(Clipped(20))
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    # The part of talk_seconds the caller spent on hold (Asterisk's Hold/Unhold), and how often.
    hold_seconds: Mapped[float | None] = mapped_column(Float)
    holds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Each agent's part (more than one after a transfer): agent, via, answered_at, ended_at,
    # talk_seconds. The call is still one row: reports count it once.
    legs: Mapped[list[Any] | None] = mapped_column(default=list)
    incident_number: Mapped[str | None] = mapped_column(Clipped(20), index=True)
    ivr_path: Mapped[str | None] = mapped_column(Clipped(200))
    language: Mapped[str | None] = mapped_column(Clipped(8))
    survey_score: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Clipped(12), default="ami")
    # Names of the fields that were inferred (snapshot, queue_log) rather than observed live.
    inferred: Mapped[list[Any]] = mapped_column(default=list)
    # The tracker's working state while the call is live (so a restarted server can resume it).
    live_state: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime]


class LinkOutage(Base):
    """A period when the server did not see Asterisk's events (AMI down, server not running)."""

    __tablename__ = "link_outages"

    id: Mapped[int] = mapped_column(primary_key=True)
    asterisk: Mapped[str] = mapped_column(
        String(40), default=DEFAULT_ASTERISK, server_default=DEFAULT_ASTERISK
    )
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    reconciled_calls: Mapped[int] = mapped_column(Integer, default=0)


class JournalMeta(Base):
    """Small key/value state of the journal (queue_log read position, last event time)."""

    __tablename__ = "journal_meta"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class IvrStep(Base):
    """One step of a call in the IVR: what was played, what was keyed, how long it took."""

    __tablename__ = "ivr_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    asterisk: Mapped[str] = mapped_column(
        String(40), default=DEFAULT_ASTERISK, server_default=DEFAULT_ASTERISK
    )
    call_uniqueid: Mapped[str] = mapped_column(Clipped(150), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    route: Mapped[str] = mapped_column(Clipped(20))  # ivr, survey
    menu: Mapped[str] = mapped_column(Clipped(60), default="")
    step: Mapped[str] = mapped_column(Clipped(60))
    digits: Mapped[str] = mapped_column(Clipped(40), default="")
    result: Mapped[str] = mapped_column(Clipped(120), default="")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class AgentStateSpan(Base):
    """How long an agent spent in each state (for occupancy and workload reports)."""

    __tablename__ = "agent_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The Asterisk whose phone the agent was logged in at.
    asterisk: Mapped[str] = mapped_column(
        String(40), default=DEFAULT_ASTERISK, server_default=DEFAULT_ASTERISK
    )
    ext: Mapped[str] = mapped_column(Clipped(40), index=True)
    state: Mapped[str] = mapped_column(Clipped(20))
    reason: Mapped[str] = mapped_column(Clipped(60), default="")
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]


# -- the half-hour table of report figures ---------------------------------------------------------
#
# Reports sum finished calls per queue, UTC half-hour and agent; at a million calls a month that
# pass over `calls` took ten times a bare aggregate. The sums are kept per (slot, queue, agent) in
# `call_slot_figures`: triggers on `calls` (migration 0010_perf) bump a slot's `version` whenever
# a finished call in it is written, whoever writes it, and reports/slots.py recomputes the slots
# whose figures are older than their calls. A slot is the UTC half-hour, as
# floor(epoch seconds / 1800).

SLOT_SECONDS = 1800


class CallSlot(Base):
    """One UTC half-hour with finished calls: how often its calls changed (`version`), and the
    version and thresholds its figures in call_slot_figures were computed for."""

    __tablename__ = "call_slots"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    computed_version: Mapped[int] = mapped_column(Integer, default=0)
    sl_seconds: Mapped[float | None] = mapped_column(Float)
    short_abandon: Mapped[float | None] = mapped_column(Float)


class CallSlotFigures(Base):
    """The additive figures (reports.metrics.CallFigures) of one slot's finished calls for one
    queue and agent ('' for none)."""

    __tablename__ = "call_slot_figures"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    queue: Mapped[str] = mapped_column(String(80), primary_key=True)
    agent: Mapped[str] = mapped_column(String(80), primary_key=True)
    arrived: Mapped[int] = mapped_column(Integer, default=0)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    short_abandoned: Mapped[int] = mapped_column(Integer, default=0)
    timed_out: Mapped[int] = mapped_column(Integer, default=0)
    overflowed: Mapped[int] = mapped_column(Integer, default=0)
    ended_in_ivr: Mapped[int] = mapped_column(Integer, default=0)
    voicemail: Mapped[int] = mapped_column(Integer, default=0)
    answered_in_sl: Mapped[int] = mapped_column(Integer, default=0)
    wait_answered: Mapped[float] = mapped_column(Float, default=0.0)
    talk: Mapped[float] = mapped_column(Float, default=0.0)
    acw: Mapped[float] = mapped_column(Float, default=0.0)
    hold: Mapped[float] = mapped_column(Float, default=0.0)
    reconciled: Mapped[int] = mapped_column(Integer, default=0)


class CallRecording(Base):
    """A call's recording (MixMonitor), kept until the retention period ends or a lead deletes
    it; the row stays (deleted_at set) so the call log says a recording existed."""

    __tablename__ = "call_recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_uniqueid: Mapped[str] = mapped_column(Clipped(150), index=True)
    linkedid: Mapped[str] = mapped_column(Clipped(150))
    queue: Mapped[str | None] = mapped_column(Clipped(80))
    agent: Mapped[str | None] = mapped_column(Clipped(80), index=True)
    incident_number: Mapped[str | None] = mapped_column(Clipped(20), index=True)
    # Relative to the media folder (calls/<uniqueid>.wav): never a path a client chose.
    file: Mapped[str] = mapped_column(Clipped(200))
    started_at: Mapped[datetime] = mapped_column(index=True)
    deleted_at: Mapped[datetime | None] = mapped_column()
    deleted_by: Mapped[str | None] = mapped_column(Clipped(80))
