"""The WebSocket messages pages receive: their kinds, and the hub topics they go to."""

from enum import StrEnum


class MessageType(StrEnum):
    """Every kind of WebSocket message a page receives."""

    HELLO = "hello"  # the agent page's first message: who I am, my state, my current pop
    POP = "pop"  # a call rings my phone: caller, incident, history, matches
    ANSWERED = "answered"
    HOLD = "hold"  # my call went on hold or came off it (Asterisk's Hold/Unhold)
    RING_ENDED = "ring_ended"  # it stopped ringing at my phone (no answer, rejected, lost)
    ENDED = "ended"  # my part of the call is over, or the call is
    AGENT_STATE = "agent_state"
    WALLBOARD = "wallboard"  # the whole board
    ALERT = "alert"  # a queue just backed up
    TAKEN = "taken"  # an IM responder took a waiting call
    RESYNC = "resync"  # the page fell behind: reload its state over HTTP
    INCIDENT_ALERT = "incident_alert"  # a voicemail arrived, an incident assigned or breached


def agent_topic(ext: str) -> str:
    """The hub topic of one agent's pages."""
    return f"agent:{ext}"


WALLBOARD = "wallboard"
# Every agent page and the workbench: news for the whole desk (a new voicemail).
DESK = "desk"
# Every agent page and the workbench: news for the whole desk (a new voicemail).
DESK = "desk"
