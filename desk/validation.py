"""Reading request bodies: JSON objects and form fields, with clear messages."""

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


def text_field(body: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    """A text field: stripped, at most `limit` characters; None when absent and optional."""
    if key not in body or body[key] is None:
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    value = body[key]
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{key} is required")
    if len(value) > limit:
        raise InvalidInput(f"{key} is longer than {limit} characters")
    return value
