"""E-mail over HTTP: the mail job's cleanup context (mailbox in, acknowledgements out,
publications to subscribers), an incident's messages and their attachments for agents."""

from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web

from desk import incidents
from desk.mail import messages
from desk.mail.imap import ImapSettings
from desk.mail.poller import MailPoller
from desk.models import Role
from desk.validation import incident_number, record_id
from desk.web import published
from desk.web.auth import requires
from desk.web.keys import MAIL, MAILER, SESSIONS, SETTINGS
from desk.web.nodes import runs_desk_jobs

# Attachments are shown inline only when the browser cannot run them; everything else downloads.
_INLINE = {"image/png", "image/jpeg", "image/gif", "application/pdf", "text/plain"}


def imap_settings(app: web.Application) -> ImapSettings | None:
    """The desk's mailbox, if one is configured."""
    s = app[SETTINGS]
    if not s.imap_host:
        return None
    return ImapSettings(
        s.imap_host, s.imap_port, s.imap_user, s.imap_secret, s.imap_tls, s.imap_mailbox
    )


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mail job (after desk_ctx, which makes the mailer)."""
    s = app[SETTINGS]
    own = {s.smtp_sender, s.imap_user if "@" in s.imap_user else ""}
    poller = MailPoller(
        app[SESSIONS],
        app[MAILER],
        imap_settings(app),
        s.tz,
        own=own,
        poll_seconds=s.mail_poll_seconds,
        outbox_seconds=s.mail_outbox_seconds,
        publish=lambda: published.to_subscribers(app),
        publish_seconds=s.mail_publish_seconds,
        active=lambda: runs_desk_jobs(app),
    )
    app[MAIL] = poller
    if app[MAILER].enabled or poller.imap is not None:
        poller.start()
    yield
    await poller.close()


def _number(request: web.Request) -> str:
    return incident_number(request.match_info["number"])


@requires(Role.AGENT)
async def incident_messages(request: web.Request) -> web.Response:
    """GET /api/incidents/{number}/messages: the e-mails in and out, oldest first."""
    async with request.app[SESSIONS]() as s:
        inc = await incidents.get(s, _number(request))
        found = await messages.list_messages(s, inc.id)
    return web.json_response({"number": inc.number, "messages": found})


@requires(Role.AGENT)
async def get_attachment(request: web.Request) -> web.Response:
    """GET /api/mail/attachments/{id}: one attachment's bytes, as a download (never run by the
    browser: its content type is the sender's claim)."""
    attachment_id = record_id("attachment", request.match_info["id"])
    async with request.app[SESSIONS]() as s:
        found, _incident = await messages.attachment(s, attachment_id)
    ctype = found.content_type if found.content_type in _INLINE else "application/octet-stream"
    resp = web.Response(body=found.data, content_type=ctype)
    resp.headers["Content-Disposition"] = _disposition(found.filename)
    resp.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _disposition(filename: str) -> str:
    safe = "".join(c for c in filename if c.isalnum() or c in "._- ") or "attachment"
    return f"attachment; filename=\"{safe[:100]}\"; filename*=UTF-8''{quote(filename[:200])}"


def setup(app: web.Application) -> None:
    """Register the routes and the job."""
    app.cleanup_ctx.append(mail_ctx)
    app.router.add_get("/api/incidents/{number}/messages", incident_messages)
    app.router.add_get("/api/mail/attachments/{id}", get_attachment)
