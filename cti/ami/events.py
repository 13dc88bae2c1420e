"""AMI events as typed, frozen objects, parsed where they arrive.

Each class is named like the Asterisk event it parses, so it greps against Asterisk's docs. Events
the server does not use parse to None and go no further. A required header that is missing raises
ProtocolError (the AMI client counts and logs it); it is never silently ''.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from cti.ami.headers import Headers
from cti.ami.headers import integer as _int
from cti.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """Base of every item on the event stream; `timestamp` is Unix time in seconds (UTC)."""

    timestamp: float


@dataclass(frozen=True, slots=True)
class ChannelEvent(AmiEvent):
    """An event about one channel, keyed by Asterisk's own ids."""

    channel: str
    uniqueid: str
    linkedid: str


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelEvent):
    """A channel was created."""

    caller_num: str
    caller_name: str
    context: str
    exten: str


@dataclass(frozen=True, slots=True)
class Newexten(ChannelEvent):
    """A channel executes a dialplan priority."""

    context: str
    exten: str
    priority: int
    application: str
    app_data: str
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class Hangup(ChannelEvent):
    """A channel was hung up."""

    cause: int
    cause_txt: str


@dataclass(frozen=True, slots=True)
class Hold(ChannelEvent):
    """A channel put the call on hold (a SIP phone's hold re-INVITE): the other side hears
    music on hold. The channel is the one that held (the agent's phone)."""

    music_class: str


@dataclass(frozen=True, slots=True)
class Unhold(ChannelEvent):
    """A channel took the call off hold."""


@dataclass(frozen=True, slots=True)
class AttendedTransfer(AmiEvent):
    """An attended transfer finished (Result "Success" when the transferee, the caller, is now
    with the target); the transferee's ids name the call."""

    result: str
    transferee_uniqueid: str
    transferee_linkedid: str
    dest_type: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoin(ChannelEvent):
    """A caller joined a queue."""

    queue: str
    position: int
    count: int
    caller_num: str
    caller_name: str


@dataclass(frozen=True, slots=True)
class QueueCallerLeave(ChannelEvent):
    """A caller left a queue (answered or not)."""

    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon(ChannelEvent):
    """A caller left a queue without an agent (hang-up, timeout or empty queue)."""

    queue: str
    position: int
    original_position: int
    hold_time: int


@dataclass(frozen=True, slots=True)
class AgentEvent(ChannelEvent):
    """A queue event about the caller's channel and one member (agent)."""

    queue: str
    member_name: str
    interface: str


@dataclass(frozen=True, slots=True)
class AgentCalled(AgentEvent):
    """The queue rings a member for this caller."""

    dest_uniqueid: str
    dest_channel: str


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer(AgentEvent):
    """A member did not answer in time; `ring_time_ms` is in milliseconds."""

    ring_time_ms: int


@dataclass(frozen=True, slots=True)
class AgentConnect(AgentEvent):
    """A member answered; `hold_time` and `ring_time` are whole seconds."""

    hold_time: int
    ring_time: int
    dest_uniqueid: str


@dataclass(frozen=True, slots=True)
class AgentComplete(AgentEvent):
    """A queue call ended; `reason` is caller, agent or transfer."""

    hold_time: int
    talk_time: int
    reason: str


@dataclass(frozen=True, slots=True)
class AgentDump(AgentEvent):
    """A member hung up while being rung."""


@dataclass(frozen=True, slots=True)
class QueueMemberEvent(AmiEvent):
    """A change to a queue member (agent) and its state."""

    queue: str
    member_name: str
    interface: str
    status: int
    paused: bool
    paused_reason: str
    in_call: bool


@dataclass(frozen=True, slots=True)
class QueueMemberStatus(QueueMemberEvent):
    """A member's device or pause state changed."""


@dataclass(frozen=True, slots=True)
class QueueMemberAdded(QueueMemberEvent):
    """A member logged in to a queue."""


@dataclass(frozen=True, slots=True)
class QueueMemberRemoved(AmiEvent):
    """A member logged out of a queue."""

    queue: str
    member_name: str
    interface: str


@dataclass(frozen=True, slots=True)
class QueueMemberPause(QueueMemberEvent):
    """A member was paused or unpaused."""


@dataclass(frozen=True, slots=True)
class UserEvent(AmiEvent):
    """A UserEvent() raised by our dialplan (e.g. CtiQueueResult)."""

    name: str
    uniqueid: str
    linkedid: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AGIExecStart(ChannelEvent):
    """Asterisk starts executing an AGI command on a channel (e.g. `SAY DIGITS 261125042 ""`)."""

    command: str
    command_id: str


@dataclass(frozen=True, slots=True)
class AGIExecEnd(ChannelEvent):
    """An AGI command finished; `result` is the AGI response line."""

    command: str
    command_id: str
    result_code: int
    result: str


@dataclass(frozen=True, slots=True)
class FullyBooted(AmiEvent):
    """Asterisk is fully booted (sent after every login too)."""

    uptime: int


@dataclass(frozen=True, slots=True)
class Shutdown(AmiEvent):
    """Asterisk is shutting down."""

    restart: bool


@dataclass(frozen=True, slots=True)
class OriginateResponse(AmiEvent):
    """The outcome of an asynchronous Originate (Response: Success or Failure)."""

    action_id: str
    response: str
    uniqueid: str
    reason: int


# -- markers the AMI client adds to the stream (not Asterisk events) ------------------------------


@dataclass(frozen=True, slots=True)
class LinkUp(AmiEvent):
    """Logged in and Asterisk is fully booted; live state must be rebuilt now."""

    reconnect: bool


@dataclass(frozen=True, slots=True)
class LinkDown(AmiEvent):
    """The AMI connection is gone; events are lost until the next LinkUp."""

    reason: str


@dataclass(frozen=True, slots=True)
class StreamGap(AmiEvent):
    """The bounded event queue overflowed and `dropped` events were discarded."""

    dropped: int


def _fill_slots(cls: type[AmiEvent]) -> None:
    """Give a frozen event class an __init__ that fills its slots through their descriptors.

    The __init__ that dataclass writes for a frozen class sets every field with
    object.__setattr__ (to get past the frozen __setattr__), which was a tenth of the AMI parse
    path's time. This one has the same parameters and leaves the object just as frozen. Classes
    with a default (UserEvent) keep dataclass's own."""
    names = [f.name for f in fields(cls)]
    if any(f.default is not MISSING or f.default_factory is not MISSING for f in fields(cls)):
        return
    setters = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    code = f"def __init__(self, {', '.join(names)}):\n{body}"
    exec(code, setters)  # names are the class's own field names
    init = setters["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, AmiEvent):
        _fill_slots(_cls)


# -- parsing ---------------------------------------------------------------------------------------

Msg = Headers


def _ts(m: Msg) -> float:
    # timestampevents=yes in manager.conf gives every event a Timestamp; without it, arrival time.
    ts = m.get("Timestamp")
    if not ts:
        return time.time()
    value = float(ts)
    if not math.isfinite(value):  # float() reads "nan" and "inf"; neither is a time
        raise ValueError(f"Timestamp {ts!r} is not a time")
    return value


def _ch(m: Msg) -> tuple[float, str, str, str]:
    return _ts(m), m["Channel"], m["Uniqueid"], m["Linkedid"]


def _member(m: Msg) -> tuple[str, str, str]:
    return m["Queue"], m.get("MemberName") or m["Interface"], m["Interface"]


def _qm(m: Msg) -> tuple[float, str, str, str, int, bool, str, bool]:
    return (
        _ts(m),
        m["Queue"],
        m.get("MemberName") or m["Interface"],
        m["Interface"],
        _int(m, "Status", 0),
        m.get("Paused") == "1",
        m.get("PausedReason", ""),
        m.get("InCall") == "1",
    )


_STANDARD = {
    "Event", "Privilege", "Timestamp", "SystemName", "Channel", "ChannelState", "ChannelStateDesc",
    "CallerIDNum", "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language",
    "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid", "UserEvent", "content",
}  # fmt: skip


def _user_event(m: Msg) -> UserEvent:
    # The dialplan's own fields; a repeated one (ChanVariable) is not one of ours.
    fields = {k: v for k, v in m.raw.items() if k not in _STANDARD and isinstance(v, str)}
    return UserEvent(_ts(m), m["UserEvent"], m.get("Uniqueid", ""), m.get("Linkedid", ""), fields)


_PARSERS: dict[str, Callable[[Msg], AmiEvent]] = {
    "Newchannel": lambda m: Newchannel(
        *_ch(m), m.get("CallerIDNum", ""), m.get("CallerIDName", ""), m["Context"], m["Exten"]
    ),
    "Newexten": lambda m: Newexten(
        *_ch(m),
        m["Context"],
        m["Exten"],
        _int(m, "Priority"),
        m.get("Application", ""),
        m.get("AppData", ""),
        m.get("CallerIDNum", ""),
        m.get("CallerIDName", ""),
    ),
    "Hangup": lambda m: Hangup(*_ch(m), _int(m, "Cause", 0), m.get("Cause-txt", "")),
    "Hold": lambda m: Hold(*_ch(m), m.get("MusicClass", "")),
    "Unhold": lambda m: Unhold(*_ch(m)),
    "AttendedTransfer": lambda m: AttendedTransfer(
        _ts(m),
        m["Result"],
        m.get("TransfereeUniqueid", ""),
        m.get("TransfereeLinkedid", ""),
        m.get("DestType", ""),
    ),
    "QueueCallerJoin": lambda m: QueueCallerJoin(
        *_ch(m),
        m["Queue"],
        _int(m, "Position"),
        _int(m, "Count"),
        m.get("CallerIDNum", ""),
        m.get("CallerIDName", ""),
    ),
    "QueueCallerLeave": lambda m: QueueCallerLeave(
        *_ch(m), m["Queue"], _int(m, "Position"), _int(m, "Count")
    ),
    "QueueCallerAbandon": lambda m: QueueCallerAbandon(
        *_ch(m),
        m["Queue"],
        _int(m, "Position"),
        _int(m, "OriginalPosition"),
        _int(m, "HoldTime"),
    ),
    "AgentCalled": lambda m: AgentCalled(
        *_ch(m), *_member(m), m.get("DestUniqueid", ""), m.get("DestChannel", "")
    ),
    "AgentRingNoAnswer": lambda m: AgentRingNoAnswer(*_ch(m), *_member(m), _int(m, "RingTime")),
    "AgentConnect": lambda m: AgentConnect(
        *_ch(m),
        *_member(m),
        _int(m, "HoldTime"),
        _int(m, "RingTime", 0),
        m.get("DestUniqueid", ""),
    ),
    # When the caller's channel is already gone (seen: the caller hung up mid-conversation),
    # Asterisk sends AgentComplete with no channel headers at all; the Hangup already ended it.
    "AgentComplete": lambda m: AgentComplete(
        _ts(m),
        m.get("Channel", ""),
        m.get("Uniqueid", ""),
        m.get("Linkedid", ""),
        *_member(m),
        _int(m, "HoldTime"),
        _int(m, "TalkTime"),
        m.get("Reason", ""),
    ),
    "AgentDump": lambda m: AgentDump(*_ch(m), *_member(m)),
    "QueueMemberStatus": lambda m: QueueMemberStatus(*_qm(m)),
    "QueueMemberAdded": lambda m: QueueMemberAdded(*_qm(m)),
    "QueueMemberPause": lambda m: QueueMemberPause(*_qm(m)),
    "QueueMemberRemoved": lambda m: QueueMemberRemoved(
        _ts(m), m["Queue"], m.get("MemberName") or m["Interface"], m["Interface"]
    ),
    "UserEvent": _user_event,
    "OriginateResponse": lambda m: OriginateResponse(
        _ts(m), m.get("ActionID", ""), m["Response"], m.get("Uniqueid", ""), _int(m, "Reason", 0)
    ),
    "AGIExecStart": lambda m: AGIExecStart(*_ch(m), m["Command"], m.get("CommandId", "")),
    "AGIExecEnd": lambda m: AGIExecEnd(
        *_ch(m), m["Command"], m.get("CommandId", ""), _int(m, "ResultCode", 0), m.get("Result", "")
    ),
    "FullyBooted": lambda m: FullyBooted(_ts(m), _int(m, "Uptime", 0)),
    "Shutdown": lambda m: Shutdown(_ts(m), m.get("Restart", "") == "True"),
}


def parse_event(message: Mapping[str, Any]) -> AmiEvent | None:
    """The typed event for an AMI event frame, or None for events the server does not use."""
    name = message.get("Event")
    parser = _PARSERS.get(name) if isinstance(name, str) else None
    if parser is None:
        return None
    try:
        return parser(Headers(message))
    except KeyError as exc:
        raise ProtocolError(f"{name} event without header {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{name} event with a malformed header: {exc}") from exc


def known_events() -> frozenset[str]:
    """Names of the AMI events the server parses."""
    return frozenset(_PARSERS)
