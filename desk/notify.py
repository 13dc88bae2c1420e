"""Progress notices to the user by e-mail (5.2.2 e), over SMTP (aiosmtplib): one message in
Mandarin, then English, both from the catalogue."""

import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from cti.errors import InvalidInput
from desk.i18n import N_, Msg, translate
from desk.mail.links import Links
from desk.models import Incident, IncidentState
from desk.validation import is_email

logger = logging.getLogger(__name__)

# The headlines end the sentence "Your incident <number> (<category>) ...".
STATE_HEADLINES: dict[IncidentState, Msg] = {
    IncidentState.IN_PROGRESS: N_("is being worked on"),
    IncidentState.ESCALATED_INCIDENT: N_("has been passed to second-line support"),
    IncidentState.ESCALATED_PROBLEM: N_("has been passed to problem management"),
    IncidentState.RESOLVED: N_("has been resolved; please confirm"),
    IncidentState.CLOSED: N_("is closed"),
}
NEWS_HEADLINE = N_("has news")  # a note the agent chose to send

_SUBJECT = N_("Incident %(number)s: %(headline)s")
_NEWS = N_("Your incident %(number)s (%(category)s) %(headline)s.")
_NEWS_BARE = N_("Your incident %(number)s %(headline)s.")  # not classified yet
# TRANSLATORS: the greeting line; %(name)s is the requester's name, or "Hello" without one.
_GREETING = N_("%(name)s:")
_HELLO = N_("Hello")
_ASK = N_("If you have any questions, call the service desk and give the incident number.")
_SIGNATURE = N_("IT service desk")
_FEEDBACK = N_("Confirm that it is solved, or reopen the incident: %(url)s")


def _one_line(text: str) -> str:
    """Text for a header or a greeting: line breaks and other control characters become spaces."""
    spaced = "".join(" " if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)
    return " ".join(spaced.split())


def _stamp(incident: Incident) -> str:
    """The resolution a feedback link is for."""
    return incident.resolved_at.isoformat() if incident.resolved_at else ""


@dataclass(frozen=True)
class SmtpSettings:
    """Where to send mail; an empty host disables notices."""

    host: str
    port: int
    username: str
    password: str
    sender: str
    starttls: bool


class Mailer:
    """Sends one message per notice; failures are reported, never raised to the caller."""

    def __init__(self, smtp: SmtpSettings, links: Links | None = None) -> None:
        self.smtp = smtp
        # Resolution notices carry the requester's confirm-or-reopen link when there are links.
        self.links = links

    @property
    def enabled(self) -> bool:
        """True when an SMTP host is configured."""
        return bool(self.smtp.host)

    def compose(
        self, incident: Incident, headline: Msg, text: str, *, note: Msg | None = None
    ) -> EmailMessage:
        """A bilingual notice about an incident: the Mandarin half greets the user and says how
        to ask; the English half is the news alone. InvalidInput when the requester's address is
        not one plain mailbox (records from before addresses were checked may hold anything):
        nothing a record holds can add a recipient or a header."""
        to = incident.requester_email
        if not is_email(to):
            raise InvalidInput(f"the requester's e-mail address {to!r} is not a valid address")

        def say(lang: str, message: Msg) -> str:
            return translate(lang, message) % {
                "number": incident.number,
                "category": _one_line(incident.category),
                "headline": translate(lang, headline),
                "name": _one_line(incident.requester_name) or translate(lang, _HELLO),
            }

        # A line per language after the text: `note`, and a resolution's confirm-or-reopen link.
        extra = {lang: translate(lang, note) + "\n" if note else "" for lang in ("zh", "en")}
        if self.links is not None and incident.state == IncidentState.RESOLVED:
            url = self.links.feedback_url(incident.number, _stamp(incident))
            for lang in extra:
                extra[lang] += translate(lang, _FEEDBACK) % {"url": url} + "\n"
        news = _NEWS if incident.category.strip() else _NEWS_BARE
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = to
        msg["Subject"] = f"{say('zh', _SUBJECT)} / {say('en', _SUBJECT)}"
        msg.set_content(
            f"{say('zh', _GREETING)}\n\n{say('zh', news)}\n{text}\n\n{extra['zh']}"
            f"{say('zh', _ASK)}\n\n{say('en', news)}\n{text}\n\n{extra['en']}"
            f"{say('zh', _SIGNATURE)} / {say('en', _SIGNATURE)}\n"
        )
        return msg

    def plain(self, to: str, subject: str, text: str) -> EmailMessage:
        """A message that is not about an incident (a subscription, a publication);
        InvalidInput when `to` is not one plain mailbox."""
        if not is_email(to):
            raise InvalidInput(f"{to!r} is not a valid address")
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = to
        msg["Subject"] = _one_line(subject)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        return msg

    async def send(self, msg: EmailMessage) -> str | None:
        """Send; None on success, else the error text."""
        if not self.enabled:
            return "no SMTP server configured"
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.smtp.host,
                port=self.smtp.port,
                username=self.smtp.username or None,
                password=self.smtp.password or None,
                start_tls=self.smtp.starttls,
                timeout=15,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            logger.warning("notice to %s failed: %s", msg["To"], exc)
            return f"{type(exc).__name__}: {exc}"
        return None
