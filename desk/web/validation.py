"""Reading request bodies: JSON objects, with clear messages."""

from typing import Any

from aiohttp import web

from cti.errors import InvalidInput


async def body_of(request: web.Request) -> dict[str, Any]:
    """The JSON object body (InvalidInput otherwise). JSON may spell a lone UTF-16 surrogate
    ("\\ud800"), which is no character: Python keeps it in the str, and the database driver
    fails on it later, so it is refused here, naming the field."""
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
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where or 'the body'}: text with a lone surrogate") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where or "a field name")
            _check_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{where}[{i}]")
