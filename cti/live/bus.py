"""One typed publish/subscribe for every domain event.

Events are frozen dataclasses of plain data (strings, numbers, enums, tuples, nested views), so
that `encode`/`decode` turn them into JSON objects and back: a broker can stand behind the bus
when several server nodes share one desk. In one process, `publish` calls each subscriber at once,
in subscription order, on the event loop; a subscriber must not block (it spawns a task for I/O)
and a subscriber that raises is logged and never stops the others or the publisher.
"""

import dataclasses
import logging
import types
import typing
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, TypeVar

from cti.live.model import AgentState, AgentView, CallState, CallView, OfferView
from cti.types import CallOutcome, OfferResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """The base of every event on the bus."""


class CallEventKind(StrEnum):
    """What happened to a call."""

    CALL_ARRIVED = "call_arrived"
    CALL_CHANGED = "call_changed"  # IVR progress, incident number, queue left, overflow steps
    CALL_QUEUED = "call_queued"
    AGENT_RINGING = "agent_ringing"
    AGENT_RING_ENDED = "agent_ring_ended"
    CALL_ANSWERED = "call_answered"
    # The agent's part of an answered call is over (AgentComplete): the survey may follow.
    TALK_ENDED = "talk_ended"
    CALL_ENDED = "call_ended"


@dataclass(frozen=True, slots=True)
class CallEvent(DomainEvent):
    """A call changed; `call` is its state just after, `offer` the offer concerned."""

    kind: CallEventKind
    call: CallView
    offer: OfferView | None = None


@dataclass(frozen=True, slots=True)
class AgentStateChanged(DomainEvent):
    """An agent's state changed (as Asterisk's queue-member data say), or its wrap-up timer."""

    agent: AgentView


@dataclass(frozen=True, slots=True)
class WrapupEnded(DomainEvent):
    """The agent's after-call work for a call is over: `seconds` from wrap-up start to its end."""

    uniqueid: str
    agent: str
    seconds: float


@dataclass(frozen=True, slots=True)
class QueueChanged(DomainEvent):
    """A caller joined or left a queue (`waiting` callers now)."""

    queue: str
    waiting: int


@dataclass(frozen=True, slots=True)
class BackupRaised(DomainEvent):
    """A queue is backed up (published again while it stays so, when the tripped rules change)."""

    queue: str
    since: float
    rules: Mapping[str, float | None]  # the tripped rules and their values now (None: infinite)
    alert_id: int | None


@dataclass(frozen=True, slots=True)
class BackupCleared(DomainEvent):
    """A queue is no longer backed up; `peak` has each rule's worst value."""

    queue: str
    peak: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OfferTaken(DomainEvent):
    """An IM responder took a waiting call from a take link."""

    uniqueid: str
    by: str


@dataclass(frozen=True, slots=True)
class LiveResynced(DomainEvent):
    """Live state was rebuilt from Asterisk after a reconnect or an event gap."""


E = TypeVar("E", bound=DomainEvent)
Handler = Callable[[Any], None]

EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.__name__: cls
    for cls in (
        CallEvent,
        AgentStateChanged,
        WrapupEnded,
        QueueChanged,
        BackupRaised,
        BackupCleared,
        OfferTaken,
        LiveResynced,
    )
}


class Bus:
    """Subscribers by event type; `publish` never raises and never blocks."""

    def __init__(self) -> None:
        self._subscribers: dict[type[DomainEvent], list[Handler]] = defaultdict(list)
        self.published = 0
        self.failures = 0

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call `handler` with every event of type `kind`; returns the unsubscribe function."""
        handlers = self._subscribers[kind]
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def publish(self, event: DomainEvent) -> None:
        """Hand `event` to each of its subscribers, in order."""
        self.published += 1
        for handler in tuple(self._subscribers.get(type(event), ())):
            try:
                handler(event)
            except Exception:
                self.failures += 1
                logger.exception("subscriber %r failed on %s", handler, type(event).__name__)


# -- plain data in and out (for a broker) ---------------------------------------------------------


def encode(event: DomainEvent) -> dict[str, Any]:
    """The event as a JSON-ready object: {"type": name, ...fields}."""
    return {"type": type(event).__name__, **_plain(event)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def decode(data: Mapping[str, Any]) -> DomainEvent:
    """The event `encode` made (ValueError for an unknown type or a malformed field)."""
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown bus event type {data.get('type')!r}")
    event = _build(cls, data)
    assert isinstance(event, DomainEvent)
    return event


_NESTED: dict[str, type] = {
    "CallView": CallView,
    "OfferView": OfferView,
    "AgentView": AgentView,
    "CallState": CallState,
    "CallOutcome": CallOutcome,
    "OfferResult": OfferResult,
    "AgentState": AgentState,
    "CallEventKind": CallEventKind,
}


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, localns=_NESTED)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _value(hints[f.name], data[f.name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__}: {exc}") from None


def _value(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(inner[0], raw) if len(inner) == 1 else raw
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        return tuple(_value(item, v) for v in raw)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(raw)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, raw)
    if origin is not None and issubclass(origin, Mapping):
        return dict(raw)
    return raw
