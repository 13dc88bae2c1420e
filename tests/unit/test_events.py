"""Parsing AMI frames into typed events."""

import pytest
from panoramisk.message import Message

from cti.ami import events as ev
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
