"""The rows of AMI list actions as typed, frozen objects, parsed where they arrive.

Each class is named like the Asterisk event that carries the row (`CoreShowChannel`,
`QueueMember`, `QueueEntry`), so it greps against Asterisk's docs. A required header that is
missing raises ProtocolError; it is never silently ''. Like `events.py`, this is the only place
that knows the header names.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cti.ami.headers import INT_MAX, Headers
from cti.ami.headers import integer as _int
from cti.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class CoreShowChannel:
    """One live channel (CoreShowChannels)."""

    channel: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    application: str
    caller_num: str
    caller_name: str
    duration: int  # seconds the channel has existed (Asterisk prints HH:MM:SS)
    application_data: str = ""


@dataclass(frozen=True, slots=True)
class QueueMember:
    """One queue membership (QueueStatus)."""

    queue: str
    name: str  # the member name (our agents' extension)
    interface: str  # Asterisk's "Location"
    status: int  # app_queue's device status code
    paused: bool
    paused_reason: str
    in_call: bool


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One caller waiting in a queue (QueueStatus)."""

    queue: str
    uniqueid: str
    channel: str
    position: int
    wait: int  # seconds in this queue so far


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """What QueueStatus answered: memberships and waiting callers."""

    members: tuple[QueueMember, ...]
    entries: tuple[QueueEntry, ...]


@dataclass(frozen=True, slots=True)
class AuthList:
    """One PJSIP auth object (PJSIPShowAuths), secrets included: only to check them."""

    name: str  # the section name in pjsip.conf
    username: str
    auth_type: str  # userpass, md5, ...
    password: str = field(repr=False)


Msg = Headers
Row = TypeVar("Row")


def _duration(raw: str) -> int:
    """'01:02:03' -> 3723; anything else -> 0 (Asterisk omits it for some channels)."""
    try:
        h, m, s = (int(x) for x in raw.split(":"))
    except ValueError:
        return 0
    seconds = h * 3600 + m * 60 + s
    return seconds if 0 <= seconds <= INT_MAX else 0


def cid(value: str) -> str:
    """A caller ID field: Asterisk writes "<unknown>" for an absent one."""
    return "" if value in ("<unknown>", "") else value


def _channel(m: Msg) -> CoreShowChannel:
    return CoreShowChannel(
        m["Channel"],
        m["Uniqueid"],
        m.get("Linkedid") or m["Uniqueid"],
        m.get("Context", ""),
        m.get("Extension", m.get("Exten", "")),
        m.get("Application", ""),
        cid(m.get("CallerIDNum", "")),
        cid(m.get("CallerIDName", "")),
        _duration(m.get("Duration", "")),
        m.get("ApplicationData", ""),
    )


def _member(m: Msg) -> QueueMember:
    return QueueMember(
        m["Queue"],
        m.get("Name") or m["Location"],
        m["Location"],
        _int(m, "Status", 0),
        m.get("Paused") == "1",
        m.get("PausedReason", ""),
        m.get("InCall") == "1",
    )


def _entry(m: Msg) -> QueueEntry:
    return QueueEntry(
        m["Queue"], m["Uniqueid"], m.get("Channel", ""), _int(m, "Position", 0), _int(m, "Wait", 0)
    )


def _auth(m: Msg) -> AuthList:
    return AuthList(m["ObjectName"], m.get("Username", ""), m.get("AuthType", ""), m["Password"])


def _rows(
    messages: Iterable[Mapping[str, Any]], event: str, parse: Callable[[Msg], Row]
) -> list[Row]:
    out = []
    for m in messages:
        if m.get("Event") != event:
            continue
        try:
            out.append(parse(Headers(m)))
        except KeyError as exc:
            raise ProtocolError(f"{event} row without header {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"{event} row with a malformed header: {exc}") from exc
    return out


def core_show_channels(messages: Iterable[Mapping[str, Any]]) -> list[CoreShowChannel]:
    """The CoreShowChannel rows of a CoreShowChannels response."""
    return _rows(messages, "CoreShowChannel", _channel)


def queue_status(messages: Iterable[Mapping[str, Any]]) -> QueueStatus:
    """The QueueMember and QueueEntry rows of a QueueStatus response."""
    rows = list(messages)
    return QueueStatus(
        tuple(_rows(rows, "QueueMember", _member)), tuple(_rows(rows, "QueueEntry", _entry))
    )


def pjsip_auths(messages: Iterable[Mapping[str, Any]]) -> list[AuthList]:
    """The AuthList rows of a PJSIPShowAuths response."""
    return _rows(messages, "AuthList", _auth)
