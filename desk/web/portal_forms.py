"""The portal's forms have no staff session to tie a CSRF token to: a double-submit token (a
random cookie, path /portal, SameSite=Strict, and the same value in a hidden field)."""

import hmac
import secrets
from typing import Any

from aiohttp import web

from desk.web.i18n import language
from desk.web.keys import SETTINGS
from desk.web.templating import render

TOKEN_COOKIE = "cti_portal"


def form_token(request: web.Request) -> str:
    """The browser's token, or a new one."""
    return request.cookies.get(TOKEN_COOKIE) or secrets.token_urlsafe(24)


def token_ok(request: web.Request, form: Any) -> bool:
    """True when the form's hidden token is the cookie's."""
    cookie = request.cookies.get(TOKEN_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, str(form.get("token", "")))


def token_page(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    """A portal page with forms: rendered with the token, the cookie set."""
    token = form_token(request)
    resp = render(template, lang=language(request), token=token, **context)
    resp.set_status(status)
    resp.set_cookie(
        TOKEN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/portal",
        secure=request.config_dict[SETTINGS].effective_secure_cookies,
    )
    return resp
