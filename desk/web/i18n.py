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
