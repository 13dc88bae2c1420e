"""Reading request input: JSON objects, query strings and path parts, with clear messages.

Text may not hold what is no character (a lone UTF-16 surrogate, which JSON can spell) or what
PostgreSQL cannot store (NUL): both made the database driver fail with 500 after the handler
had accepted them, so they are refused at the door, naming the field."""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cti.errors import InvalidInput

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_text(where: str, value: str) -> None:
    """InvalidInput if `value` holds a NUL or a lone surrogate."""
    if "\x00" in value:
        raise InvalidInput(f"{where}: text with a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: text with a lone surrogate") from None


@web.middleware
async def input_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Query parameters and path parts are text like any other."""
    for key, value in request.query.items():
        check_text(key, value)
    for key, value in request.match_info.items():
        check_text(key, value)
    return await handler(request)


async def body_of(request: web.Request) -> dict[str, Any]:
    """The JSON object body (InvalidInput otherwise), its text checked (see above)."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object")
    _check_text(body, "")
    return body


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        check_text(where or "the body", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"field name {key!r}" if not where else f"{where}: field name {key!r}")
            _check_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{where}[{i}]")
