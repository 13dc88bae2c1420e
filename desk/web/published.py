"""What the desk publishes (6.4.2) on the portal and to subscribers, and the requester's own
confirm-or-reopen of a resolved incident, all under /portal.

Proof of identity: confirming or reopening needs the signed link from the resolution notice,
which went only to the requester's directory address; knowing an incident's number and a phone
it was reported from (the portal's lookup) is not enough to change it. A subscription starts
only when the address's owner follows the link mailed to it."""

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.helpers import ChainMapProxy
from sqlalchemy import update

from cti.errors import Conflict, InvalidInput, NotFound
from desk import hours as desk_hours
from desk import incidents, publish
from desk.i18n import translations
from desk.mail import subscribers
from desk.models import Incident, IncidentState
from desk.validation import email_address
from desk.web.auth import remote
from desk.web.i18n import language
from desk.web.keys import CORE, HOURS_SEED, LINKS, MAIL, MAILER, PORTAL_LIMITER, SESSIONS, SETTINGS
from desk.web.limits import PORTAL_LINK, PORTAL_SUBSCRIBE, SUBSCRIBE_TARGET, too_many
from desk.web.portal_forms import token_ok, token_page

S = IncidentState


async def publication(
    app: web.Application | ChainMapProxy, *, with_status: bool = True
) -> publish.Publication:
    """Everything the desk publishes, now."""
    s = app[SETTINGS]
    now = datetime.now(UTC)
    config_dir = Path(s.config_dir) if s.config_dir else None
    async with app[SESSIONS]() as session:
        catalogue = await publish.service_catalogue(session, config_dir)
        staff = await publish.staff_and_services(session)
        current, planned = await publish.outages(session, now, s.tz)
        hours, _ = await desk_hours.load(session, app[HOURS_SEED])
    address = s.imap_user if "@" in s.imap_user else s.smtp_sender
    help_ = publish.how_to_get_help(
        hours, s.desk_phone, address if s.imap_host else "", now.astimezone(hours.tz).date()
    )
    status = None
    if with_status:
        waiting = None
        if CORE in app:
            waits = app[CORE].queues.waiting(None, time.time())
            waiting = (len(waits), round(waits[0][1]) if waits else 0)
        status = publish.Status(
            hours.is_open(now), waiting[0] if waiting else None, waiting[1] if waiting else None
        )
    return publish.Publication(catalogue, help_, staff, current, planned, status)


async def to_subscribers(app: web.Application) -> int:
    """The mail job's publishing round."""
    if not app[MAILER].enabled:
        return 0
    pub = await publication(app, with_status=False)
    return await subscribers.send_publication(app[SESSIONS], app[MAILER], app[LINKS], pub)


async def api_published(request: web.Request) -> web.Response:
    """GET /portal/api/published: the catalogue, how to get help, staff, status, outages."""
    return web.json_response((await publication(request.config_dict)).as_json())


# -- pages reached from links in the desk's e-mails -------------------------------------------


def _page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    base: dict[str, Any] = {
        "error": None, "done": None, "incident": None, "email": "", "t": "", "text": ""
    }  # fmt: skip
    return token_page(request, "portal_link.html", status, **{**base, **context})


def _checked_form(request: web.Request, form: Any) -> None:
    if not token_ok(request, form):
        raise PermissionError


def _link_attempt(request: web.Request) -> None:
    """Counted before the link is read: nobody tries many tokens from one address."""
    limiter = request.config_dict[PORTAL_LIMITER]
    if limiter.acquire([(f"link:{remote(request)}", PORTAL_LINK)]) is None:
        raise too_many("too many attempts; try again later")


async def _resolved(session: Any, request: web.Request, token: str) -> Incident:
    """The incident a feedback link is for, if it still awaits the requester's word."""
    link = request.config_dict[LINKS].read_feedback(token)
    inc = await incidents.get(session, link.number)
    if inc.state != S.RESOLVED or inc.resolved_at is None:
        raise Conflict(f"incident {inc.number} is not waiting for your confirmation")
    try:
        made_for = datetime.fromisoformat(link.resolved_at)
    except ValueError:
        raise InvalidInput("this link is not valid") from None
    if inc.resolved_at != made_for:  # both to the microsecond (SQLite and PostgreSQL keep them)
        raise Conflict(f"incident {inc.number} was reopened since this link was sent")
    return inc


def _error_status(exc: Exception) -> int:
    return 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400


async def feedback_page(request: web.Request) -> web.Response:
    """GET /portal/feedback?t=: the resolved incident and the two buttons."""
    _ = _texts(request)
    token = request.query.get("t", "")
    try:
        _link_attempt(request)
        async with request.config_dict[SESSIONS]() as s:
            inc = await _resolved(s, request, token)
    except (InvalidInput, NotFound, Conflict) as exc:
        return _page(request, _error_status(exc), mode="feedback", error=str(exc))
    except web.HTTPTooManyRequests:
        return _page(request, 429, mode="feedback", error=_("Too many attempts"))
    return _page(request, mode="feedback", incident=inc, t=token)


async def feedback_post(request: web.Request) -> web.Response:
    """POST /portal/feedback {t, token, action: confirm|reopen, text}: the requester's word."""
    _ = _texts(request)
    form = await request.post()
    token = str(form.get("t", ""))
    try:
        _checked_form(request, form)
    except PermissionError:
        return _page(
            request,
            403,
            mode="feedback",
            error=_("This page expired; please submit again"),
        )
    action = str(form.get("action", ""))
    text = str(form.get("text", "")).strip()
    try:
        _link_attempt(request)
        if action not in ("confirm", "reopen"):
            raise InvalidInput("action must be confirm or reopen")
        if len(text) > 2000:
            raise InvalidInput("the reason is longer than 2000 characters")
        if action == "reopen" and not text:
            raise InvalidInput("say what is still wrong")
        now = datetime.now(UTC)
        number = request.config_dict[LINKS].read_feedback(token).number
        async with request.config_dict[SESSIONS].begin() as s:
            # Only one answer counts: the first to change the row. The conditional write comes
            # first in the transaction, so a parallel answer waits for it and then finds the
            # incident no longer resolved (read first, SQLite's snapshot would be stale).
            claimed = await s.execute(
                update(Incident)
                .where(Incident.number == number, Incident.state == S.RESOLVED.value)
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            )
            inc = await _resolved(s, request, token)
            if getattr(claimed, "rowcount", 0) != 1:
                raise Conflict(f"incident {inc.number} is not waiting for your confirmation")
            by = f"requester (portal link sent to {inc.requester_email or 'the requester'})"
            if action == "confirm":
                await incidents.change_state(
                    s, inc, S.CLOSED, by=by, now=now, text=text or "the solution works"
                )
            else:
                await incidents.change_state(s, inc, S.IN_PROGRESS, by=by, now=now, text=text)
    except (InvalidInput, NotFound, Conflict) as exc:
        # The form again (with what was typed) while the link still stands: a missing reason
        # is fixed on the spot.
        again = None
        async with request.config_dict[SESSIONS]() as s:
            with contextlib.suppress(InvalidInput, NotFound, Conflict):
                again = await _resolved(s, request, token)
        return _page(request, _error_status(exc), mode="feedback", error=str(exc), t=token,
                     incident=again, text=text)  # fmt: skip
    except web.HTTPTooManyRequests:
        return _page(request, 429, mode="feedback", error=_("Too many attempts"))
    return _page(request, mode="feedback", done=action, incident=inc)


def _texts(request: web.Request) -> Any:
    """The page language's gettext, to be called `_` so that pybabel finds the texts."""
    return translations(language(request)).gettext


# -- subscriptions ----------------------------------------------------------------------------


async def subscribe_post(request: web.Request) -> web.Response:
    """POST /portal/subscribe {token, email}: a confirmation link goes to the address."""
    _ = _texts(request)
    form = await request.post()
    try:
        _checked_form(request, form)
    except PermissionError:
        return _page(
            request,
            403,
            mode="subscribe",
            error=_("This page expired; please submit again"),
        )
    raw = str(form.get("email", "")).strip()[:254]
    mailer = request.config_dict[MAILER]
    try:
        email = email_address("email", raw).lower()
        if not mailer.enabled:
            raise Conflict("the desk cannot send e-mail at the moment")
        limiter = request.config_dict[PORTAL_LIMITER]
        if limiter.acquire([(f"subscribe:{remote(request)}", PORTAL_SUBSCRIBE)]) is None:
            busy = _("Too many requests from this address; try again later")
            return _page(request, 429, mode="subscribe", error=busy)
        if limiter.acquire([(f"subscribe-to:{email}", SUBSCRIBE_TARGET)]) is None:
            busy = _("A confirmation was sent to this address already; check the mailbox")
            return _page(request, 429, mode="subscribe", error=busy)
        lang = language(request)
        async with request.config_dict[SESSIONS].begin() as s:
            row = await subscribers.ask(s, email, lang, datetime.now(UTC))
            confirmed = row.confirmed
        if not confirmed:
            msg = subscribers.confirmation(mailer, request.config_dict[LINKS], email, lang)
            error = await mailer.send(msg)
            if error is not None:
                raise Conflict("the confirmation e-mail could not be sent; try again later")
    except (InvalidInput, Conflict) as exc:
        return _page(request, _error_status(exc), mode="subscribe", error=str(exc))
    # The same answer whether the address was subscribed already or not: nothing to learn here.
    return _page(request, 202, mode="subscribe", done="asked")


async def _link_page(request: web.Request, mode: str) -> web.Response:
    _ = _texts(request)
    token = request.query.get("t", "")
    links = request.config_dict[LINKS]
    try:
        _link_attempt(request)
        email = links.read_subscribe(token) if mode == "confirm" else links.read_unsubscribe(token)
    except InvalidInput as exc:
        return _page(request, 400, mode=mode, error=str(exc))
    except web.HTTPTooManyRequests:
        return _page(request, 429, mode=mode, error=_("Too many attempts"))
    return _page(request, mode=mode, email=email, t=token)


async def confirm_page(request: web.Request) -> web.Response:
    """GET /portal/subscribe/confirm?t=: a button (a link scanner's GET confirms nothing)."""
    return await _link_page(request, "confirm")


async def unsubscribe_page(request: web.Request) -> web.Response:
    """GET /portal/unsubscribe?t=."""
    return await _link_page(request, "unsubscribe")


async def link_post(request: web.Request) -> web.Response:
    """POST /portal/subscribe/confirm and /portal/unsubscribe {t, token}."""
    _ = _texts(request)
    mode = "confirm" if request.path.endswith("/confirm") else "unsubscribe"
    form = await request.post()
    try:
        _checked_form(request, form)
    except PermissionError:
        return _page(request, 403, mode=mode, error=_("This page expired; please submit again"))
    token = str(form.get("t", ""))
    links = request.config_dict[LINKS]
    try:
        _link_attempt(request)
        email = links.read_subscribe(token) if mode == "confirm" else links.read_unsubscribe(token)
        async with request.config_dict[SESSIONS].begin() as s:
            if mode == "confirm":
                if not await subscribers.confirm(s, email, datetime.now(UTC)):
                    raise NotFound("this address did not ask for the notices")
            else:
                await subscribers.leave(s, email)
    except (InvalidInput, NotFound) as exc:
        return _page(request, _error_status(exc), mode=mode, error=str(exc))
    except web.HTTPTooManyRequests:
        return _page(request, 429, mode=mode, error=_("Too many attempts"))
    if mode == "confirm" and MAIL in request.config_dict:
        request.config_dict[MAIL].kick(
            publish=True
        )  # the new subscriber gets the current publication
    return _page(request, mode=mode, done=mode, email=email)


def add_routes(portal: web.Application) -> None:
    """Register on the portal's sub-application."""
    portal.router.add_get("/api/published", api_published)
    portal.router.add_get("/feedback", feedback_page)
    portal.router.add_post("/feedback", feedback_post)
    portal.router.add_post("/subscribe", subscribe_post)
    portal.router.add_get("/subscribe/confirm", confirm_page)
    portal.router.add_post("/subscribe/confirm", link_post)
    portal.router.add_get("/unsubscribe", unsubscribe_page)
    portal.router.add_post("/unsubscribe", link_post)
