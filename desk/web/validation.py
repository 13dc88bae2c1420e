"""Reading request bodies: JSON objects, with clear messages."""

from typing import Any

from aiohttp import web

from cti.errors import InvalidInput


async def body_of(request: web.Request) -> dict[str, Any]:
    """The JSON object body (InvalidInput otherwise)."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object")
    return body
