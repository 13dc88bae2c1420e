"""Mail to staff rather than to the requester: the hand-off of an escalated incident to its
support group's mailbox, and the SLA breach warning to the assignee. Mandarin, then English,
from the catalogue; the addresses come from the service catalogue and the staff table only."""

from email.message import EmailMessage

from cti.errors import InvalidInput
from desk.i18n import N_, translate
from desk.models import Incident
from desk.validation import is_email

_HANDOFF_SUBJECT = N_("Incident %(number)s handed to %(group)s")
_HANDOFF_BODY = N_(
    "The service desk hands incident %(number)s to %(group)s.\n"
    "Reason: %(reason)s\nPriority: %(priority)s\nCategory: %(category)s\n"
    "Configuration item: %(item)s\nRequester: %(requester)s %(phone)s\nSymptom: %(symptom)s"
)
_BREACH_SUBJECT = N_("Incident %(number)s missed its %(which)s target")
_BREACH_BODY = N_(
    "Incident %(number)s (priority %(priority)s, %(category)s), assigned to you, missed its "
    "%(which)s target. Please act on it now."
)
WHICH = {"response": N_("response"), "resolution": N_("resolution")}


def _line(text: str | None) -> str:
    return " ".join((text or "").split())


def _message(sender: str, to: str, subject: dict[str, str], body: dict[str, str]) -> EmailMessage:
    if not is_email(to):
        raise InvalidInput(f"{to!r} is not a valid e-mail address")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = _line(f"{subject['zh']} / {subject['en']}")
    msg.set_content(f"{body['zh']}\n\n{body['en']}\n")
    return msg


def compose_handoff(
    incident: Incident, group: str, to: str, reason: str, sender: str
) -> EmailMessage:
    """The escalation hand-off to a support group's mailbox."""
    values = {
        "number": incident.number,
        "group": _line(group),
        "reason": reason,
        "priority": incident.priority,
        "category": _line(incident.category),
        "item": _line(incident.config_item) or "-",
        "requester": _line(incident.requester_name) or "-",
        "phone": _line(incident.requester_office_phone or incident.caller_number),
        "symptom": incident.symptom,
    }
    return _message(
        sender,
        to,
        {lg: translate(lg, _HANDOFF_SUBJECT) % values for lg in ("zh", "en")},
        {lg: translate(lg, _HANDOFF_BODY) % values for lg in ("zh", "en")},
    )


def compose_breach(incident: Incident, which: str, to: str, sender: str) -> EmailMessage:
    """The warning to the assignee that an incident missed a target."""

    def values(lang: str) -> dict[str, object]:
        return {
            "number": incident.number,
            "priority": incident.priority,
            "category": _line(incident.category),
            "which": translate(lang, WHICH.get(which, WHICH["resolution"])),
        }

    return _message(
        sender,
        to,
        {lg: translate(lg, _BREACH_SUBJECT) % values(lg) for lg in ("zh", "en")},
        {lg: translate(lg, _BREACH_BODY) % values(lg) for lg in ("zh", "en")},
    )
