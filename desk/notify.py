"""Progress notices to the user by e-mail (5.2.2 e), over SMTP (aiosmtplib)."""

import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from desk.models import Incident

logger = logging.getLogger(__name__)

STATE_TEXT = {
    "in_progress": ("正在处理", "is being worked on"),
    "escalated_incident": ("已转交二线技术支持", "has been passed to second-line support"),
    "escalated_problem": ("已转交问题管理", "has been passed to problem management"),
    "resolved": ("已解决，请确认", "has been resolved; please confirm"),
    "closed": ("已关闭", "is closed"),
}


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

    def __init__(self, smtp: SmtpSettings) -> None:
        self.smtp = smtp

    @property
    def enabled(self) -> bool:
        """True when an SMTP host is configured."""
        return bool(self.smtp.host)

    def compose(
        self, incident: Incident, headline_zh: str, headline_en: str, text: str
    ) -> EmailMessage:
        """A bilingual notice about an incident."""
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = incident.requester_email
        msg["Subject"] = (
            f"[事件 {incident.number}] {headline_zh} / Incident {incident.number}: {headline_en}"
        )
        msg.set_content(
            f"{incident.requester_name or '您好'}：\n\n"
            f"您的事件 {incident.number}（{incident.category}）{headline_zh}。\n"
            f"{text}\n\n如有疑问，请致电服务台并提供事件编号。\n\n"
            f"Your incident {incident.number} ({incident.category}) {headline_en}.\n{text}\n\n"
            "信息技术服务台 / IT service desk\n"
        )
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
