"""The words for the desk's finite sets (incident states and types, agent states, call outcomes), as
messages in the catalogue; pages, the scripts' text table and reports translate them when shown.
Keyed by the StrEnum members, so the stored or sent value (a plain str) finds its word too."""

from cti.live.model import AgentState
from cti.types import CallOutcome
from desk.i18n import NC_, Msg
from desk.models import IncidentState, IncidentType

INCIDENT_STATES: dict[str, Msg] = {
    IncidentState.NEW: NC_("incident state", "New"),
    IncidentState.IN_PROGRESS: NC_("incident state", "In progress"),
    IncidentState.ESCALATED_INCIDENT: NC_("incident state", "Escalated (incident mgmt)"),
    IncidentState.ESCALATED_PROBLEM: NC_("incident state", "Escalated (problem mgmt)"),
    IncidentState.RESOLVED: NC_("incident state", "Resolved"),
    IncidentState.CLOSED: NC_("incident state", "Closed"),
}

# The same states as the requester reads them on the portal: plainer, and about their request.
REQUESTER_STATES: dict[str, Msg] = {
    IncidentState.NEW: NC_("incident state, to the requester", "Received"),
    IncidentState.IN_PROGRESS: NC_("incident state, to the requester", "Being worked on"),
    IncidentState.ESCALATED_INCIDENT: NC_("incident state, to the requester", "With second line"),
    IncidentState.ESCALATED_PROBLEM: NC_(
        "incident state, to the requester", "With problem management"
    ),
    IncidentState.RESOLVED: NC_(
        "incident state, to the requester", "Resolved, awaiting your confirmation"
    ),
    IncidentState.CLOSED: NC_("incident state, to the requester", "Closed"),
}

INCIDENT_TYPES: dict[str, Msg] = {
    IncidentType.FAULT: NC_("incident type", "Fault"),
    IncidentType.SERVICE_REQUEST: NC_("incident type", "Service request"),
    IncidentType.CONSULTATION: NC_("incident type", "Consultation"),
}

AGENT_STATES: dict[str, Msg] = {
    AgentState.LOGGED_OUT: NC_("agent state", "Logged out"),
    AgentState.READY: NC_("agent state", "Ready"),
    AgentState.RINGING: NC_("agent state", "Ringing"),
    AgentState.ON_CALL: NC_("agent state", "On a call"),
    AgentState.WRAP_UP: NC_("agent state", "Wrap-up"),
    AgentState.PAUSED: NC_("agent state", "Paused"),
}

CALL_OUTCOMES: dict[str, Msg] = {
    CallOutcome.ANSWERED: NC_("call outcome", "Answered"),
    CallOutcome.ABANDONED: NC_("call outcome", "Abandoned"),
    CallOutcome.QUEUE_TIMEOUT: NC_("call outcome", "Queue timeout"),
    CallOutcome.LEFT_EMPTY: NC_("call outcome", "Left empty queue"),
    CallOutcome.QUEUE_FULL: NC_("call outcome", "Queue full"),
    CallOutcome.ENDED_IN_IVR: NC_("call outcome", "Ended in IVR"),
    CallOutcome.VOICEMAIL: NC_("call outcome", "Voicemail"),
    CallOutcome.OVERFLOWED: NC_("call outcome", "Overflowed"),
    CallOutcome.TRANSFERRED: NC_("call outcome", "To on-call"),
    CallOutcome.DROPPED: NC_("call outcome", "Dropped (no record)"),
}
