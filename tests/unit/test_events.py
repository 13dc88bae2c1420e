"""Parsing AMI frames into typed events."""

import dataclasses

import pytest
from panoramisk.message import Message

from cti.ami import events as ev
from cti.ami import responses
from cti.errors import ProtocolError


def frame(**headers: str) -> Message:
    return Message(headers)


def test_agent_connect_parses_types() -> None:
    e = ev.parse_event(frame(
        Event="AgentConnect", Timestamp="1795637297.970014", Channel="Local/x;1", Uniqueid="u1",
        Linkedid="u1", Queue="helpdesk", MemberName="1002", Interface="Local/1002@sim-agent/n",
        HoldTime="3", RingTime="3", DestUniqueid="u2",
    ))  # fmt: skip
    assert isinstance(e, ev.AgentConnect)
    assert e.timestamp == 1795637297.970014 and e.hold_time == 3 and e.member_name == "1002"


@pytest.mark.parametrize(
    "cls", [c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.AmiEvent)]
)
def test_every_event_is_built_like_the_dataclass_it_is_and_stays_frozen(cls: type) -> None:
    # events._fill_slots gives them a faster __init__: the same parameters, by position or by
    # name, all required but a default's, and the object as frozen and comparable as before.
    fields = dataclasses.fields(cls)
    values = {f.name: f"v{i}" for i, f in enumerate(fields)}
    by_name, by_position = cls(**values), cls(*values.values())
    assert by_name == by_position and hash(by_name) == hash(by_position)
    assert all(getattr(by_name, n) == v for n, v in values.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_name.timestamp = 0.0
    required = [f for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]  # fmt: skip
    with pytest.raises(TypeError):
        cls(*list(values.values())[: len(required) - 1])
    with pytest.raises(TypeError):
        cls(*values.values(), "one too many")


def test_missing_required_header_raises() -> None:
    with pytest.raises(ProtocolError, match="Hangup event without header"):
        ev.parse_event(frame(Event="Hangup", Timestamp="1"))


def test_malformed_number_raises() -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        ev.parse_event(frame(Event="Newexten", Timestamp="1", Channel="c", Uniqueid="u",
                             Linkedid="u", Context="x", Exten="s", Priority="first"))  # fmt: skip


def test_unused_events_parse_to_none() -> None:
    assert ev.parse_event(frame(Event="RTCPSent", Timestamp="1")) is None
    assert ev.parse_event(frame(Response="Success")) is None


def test_user_event_keeps_its_own_fields() -> None:
    e = ev.parse_event(frame(Event="UserEvent", Timestamp="2", UserEvent="CtiQueueResult",
                             Uniqueid="u", Linkedid="u", Channel="c", Queue="helpdesk",
                             Status="TIMEOUT"))  # fmt: skip
    assert isinstance(e, ev.UserEvent) and e.fields == {"Queue": "helpdesk", "Status": "TIMEOUT"}


# -- regressions found by tests/fuzz/test_ami_frames.py --------------------------------------------

LEAVE = (
    "Event: QueueCallerLeave\r\nTimestamp: 1795638672.122316\r\nChannel: Local/12*0*n@sim-caller;1"
    "\r\nUniqueid: sim-3087d7-0002\r\nLinkedid: sim-3087d7-0002\r\nQueue: helpdesk\r\n"
    "Position: 1\r\nCount: 4"
)


def test_a_repeated_header_is_malformed_not_a_list() -> None:
    # A captured frame with its Uniqueid line repeated gave an event whose uniqueid was a list.
    repeated = Message.from_line(
        LEAVE.replace("Linkedid:", "Uniqueid: sim-3087d7-0002\r\nLinkedid:")
    )
    with pytest.raises(ProtocolError, match="Uniqueid is repeated"):
        ev.parse_event(repeated)
    e = ev.parse_event(Message.from_line(LEAVE))
    assert isinstance(e, ev.QueueCallerLeave) and e.uniqueid == "sim-3087d7-0002"


def test_a_user_event_keeps_its_fields_next_to_repeated_chanvariables() -> None:
    e = ev.parse_event(Message.from_line(
        "Event: UserEvent\r\nTimestamp: 2\r\nUserEvent: CtiQueueResult\r\nUniqueid: u\r\n"
        "Linkedid: u\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nStatus: TIMEOUT"
    ))  # fmt: skip
    assert isinstance(e, ev.UserEvent) and e.fields == {"Status": "TIMEOUT"}


def test_a_list_row_with_a_repeated_header_is_malformed() -> None:
    row = Message.from_line(
        "Event: QueueMember\r\nQueue: helpdesk\r\nName: 1001\r\nLocation: Local/1001@a/n\r\n"
        "Location: Local/1002@a/n\r\nStatus: 1"
    )
    with pytest.raises(ProtocolError, match="Location is repeated"):
        responses.queue_status([row])


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "1e400"])
def test_a_timestamp_that_is_not_a_time_is_malformed(stamp: str) -> None:
    # Found by the fuzzer: 'Timestamp: nan' on a captured Newexten gave an event at time NaN,
    # and every wait and talk time computed from it NaN.
    with pytest.raises(ProtocolError, match="malformed"):
        ev.parse_event(Message.from_line(LEAVE.replace("1795638672.122316", stamp)))


@pytest.mark.parametrize(("name", "header"), [("AgentConnect", "RingTime"), ("Hangup", "Cause")])
def test_a_number_past_a_database_integer_is_malformed(name: str, header: str) -> None:
    # Found by the fuzzer: RingTime 2147483648 on AgentConnect and Cause 2147483648 on Hangup
    # parsed, and would have failed the journal's write of the call.
    frame = (
        LEAVE.replace("QueueCallerLeave", name) + "\r\nMemberName: 1001\r\n"
        f"Interface: Local/1001@a/n\r\nHoldTime: 3\r\n{header}: 2147483648"
    )
    with pytest.raises(ProtocolError, match=f"{header} is out of range"):
        ev.parse_event(Message.from_line(frame))
    assert ev.parse_event(Message.from_line(frame.replace("2147483648", "2147483647")))


def test_a_channel_duration_past_a_database_integer_reads_as_unknown() -> None:
    # Seen while reading the row parser next to the above: Asterisk's HH:MM:SS can overflow too.
    row = Message.from_line(
        "Event: CoreShowChannel\r\nChannel: c\r\nUniqueid: u\r\nDuration: 99999999:00:00"
    )
    assert responses.core_show_channels([row])[0].duration == 0
    row["Duration"] = "01:02:03"
    assert responses.core_show_channels([row])[0].duration == 3723
