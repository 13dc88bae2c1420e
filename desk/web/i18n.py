"""The page's language, and the texts the pages' scripts show (rendered into the page from the
catalogue, so no text is written in the scripts themselves)."""

from aiohttp import web

from desk.i18n import LANGUAGES, N_, Msg, translate
from desk.labels import AGENT_STATES, INCIDENT_STATES, INCIDENT_TYPES

# What static/*.js show besides the state and type words, under the keys they ask for (CTI.t).
_SCRIPT_TEXTS: dict[str, Msg] = {
    "no_matches": N_("No matches"),
    "saved": N_("Saved"),
    "ended": N_("Call ended"),
    "breached": N_("Breached"),
    "total": N_("Total"),
    "backed_up": N_("Queue backed up"),
    "ws_lost": N_("Connection lost, reconnecting…"),
    # The softphone (static/softphone.js): registration, call and button words.
    "sp_off": N_("Softphone off"),
    "sp_registering": N_("Softphone connecting…"),
    "sp_registered": N_("Softphone ready"),
    "sp_unregistered": N_("Softphone signed out"),
    "sp_failed": N_("Softphone failed"),
    "sp_idle": N_("No call"),
    "sp_ringing": N_("Incoming call"),
    "sp_talking": N_("On the line"),
    "sp_mute": N_("Mute"),
    "sp_unmute": N_("Unmute"),
    "sp_hold": N_("Hold"),
    "sp_resume": N_("Resume"),
    "sp_bad_number": N_("Enter a number to transfer to"),
    "sp_transfer_failed": N_("Transfer failed"),
    "sla_response": N_("response"),
    "sla_resolution": N_("resolution"),
    "due_soon": N_("Due soon"),
    "on_time": N_("On time"),
    "voicemail": N_("Voicemail"),
    "call_recording": N_("Call recording"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "web": N_("Web"),
    "walk_in": N_("Walk-in"),
    "no_such_employee": N_("No user with this employee number:"),
    "alert_voicemail": N_("New voicemail:"),
    "alert_breached": N_("SLA breached:"),
    "alert_assigned": N_("Assigned to you:"),
    "confirm_close": N_("Has the user confirmed that the solution works? Close the incident?"),
    "confirm_merge": N_("Close this incident as a duplicate of"),
    "event_created": N_("opened"),
    "event_note": N_("note"),
    "event_classify": N_("classified"),
    "event_assign": N_("assigned"),
    "event_merged": N_("merged"),
    "event_parent": N_("outage link"),
    "event_notice": N_("e-mailed the requester"),
    "event_notice_skipped": N_("no e-mail sent"),
    "event_notice_failed": N_("e-mail failed"),
    "event_handoff": N_("handed to the group by e-mail"),
    "event_handoff_skipped": N_("no hand-off e-mail"),
    "event_handoff_failed": N_("hand-off e-mail failed"),
    "event_privileged": N_("privileged account: refused"),
    "event_sla_breach": N_("SLA target missed"),
    "listen": N_("Listen"),
    "whisper": N_("Whisper"),
    "barge": N_("Barge in"),
}


def script_texts(lang: str) -> dict[str, str]:
    """The scripts' text table in `lang`: state and type words by their value, and the rest."""
    table: dict[str, Msg] = {**AGENT_STATES, **INCIDENT_STATES, **INCIDENT_TYPES, **_SCRIPT_TEXTS}
    return {str(key): translate(lang, msg) for key, msg in table.items()}


def language(request: web.Request) -> str:
    """?lang=, then the cti_lang cookie, then Accept-Language; Mandarin by default."""
    lang = request.query.get("lang") or request.cookies.get("cti_lang")
    if lang in LANGUAGES:
        return lang
    accept = request.headers.get("Accept-Language", "").lower()
    if accept.startswith("en"):
        return "en"
    return "zh"
