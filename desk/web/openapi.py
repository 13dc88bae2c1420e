"""The OpenAPI 3.1 description of the HTTP API, built from the route table itself: every route's
method, path, parameters, summary (its handler's docstring) and the role it requires, so the
document cannot drift from what the server does. What the route table cannot know (query
parameters, the body's schema, answers other than the usual ones) a handler states with
`@documented(...)`.

Every answer an operation can give is listed: 400 always (a message naming the field), 401/403
for staff routes (no login; a role too low or a missing CSRF token), 404 with a path parameter,
413 for a body over the 1 MiB limit, and what the handler declares (409, 415, 429, 503).
`tests/integration/test_api_fuzz.py` holds the server to this with schemathesis.
"""

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from desk.web.auth import COOKIE

_PARAM = re.compile(r"{(\w+)}")
_ROLE_TEXT = {"agent": "agent, lead or admin", "lead": "lead or admin", "admin": "admin"}
_UNSAFE = ("POST", "PATCH", "PUT", "DELETE")
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# Answers an operation may give besides 200 and 400, and what they mean.
MEANINGS = {
    201: "Created",
    202: "Accepted: Asterisk was asked; the change shows when it reports it",
    401: "Not logged in",
    403: "Role not allowed, or missing/wrong CSRF token",
    404: "No such record",
    409: "Not possible in the record's current state",
    413: "Body larger than 1 MiB",
    415: "Send application/json",
    429: "Too many attempts from this address; wait",
    503: "No link to Asterisk",
}

H = TypeVar("H", bound=Callable[..., Any])


def documented(
    *,
    responses: tuple[int, ...] = (),
    query: dict[str, dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> Callable[[H], H]:
    """State what the route table cannot show: other answers (`responses`), query parameters
    (name -> JSON schema) and the JSON body's schema. Put it above @requires."""

    def mark(handler: H) -> H:
        handler.api_responses = responses  # type: ignore[attr-defined]
        handler.api_query = query or {}  # type: ignore[attr-defined]
        handler.api_body = body  # type: ignore[attr-defined]
        return handler

    return mark


def string(max_length: int, **extra: Any) -> dict[str, Any]:
    """The schema of a text field."""
    return {"type": "string", "maxLength": max_length, **extra}


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The schema of a JSON object body."""
    return {"type": "object", "properties": properties, "required": list(required)}


def _tag(path: str) -> str:
    """/api/incidents/{number} -> incidents; /portal/api/requests -> portal (a sub-application)."""
    parts = path.split("/")
    if path.startswith("/api/"):
        return parts[2]
    return parts[1] if "/api/" in path else "pages"


def _answer(code: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": MEANINGS[code]}
    if code >= 400:
        out["content"] = _ERROR
    return out


def _operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    doc = inspect.getdoc(handler) or ""
    first, _, rest = doc.partition("\n")
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{handler.__name__}",
        "summary": first.strip(),
        "tags": [_tag(path)],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(path)
        ],
        "responses": {
            "200": {"description": "OK"},
            "400": {
                "description": "Invalid input; the body says which field and why",
                "content": _ERROR,
            },
        },
    }
    codes = set(getattr(handler, "api_responses", ()))
    for name, schema in getattr(handler, "api_query", {}).items():
        op["parameters"].append({"name": name, "in": "query", "required": False, "schema": schema})
    if rest.strip():
        op["description"] = rest.strip()
    role = getattr(handler, "required_role", None)
    if role is not None:
        op["security"] = [{"session": [], "csrf": []} if method in _UNSAFE else {"session": []}]
        op["x-required-role"] = role.value
        op["description"] = (
            f"{op.get('description', '')}\n\nRole: {_ROLE_TEXT[role.value]}.".strip()
        )
        codes |= {401, 403}
    if "{" in path:
        codes.add(404)
    if method in ("POST", "PATCH", "PUT"):
        schema = getattr(handler, "api_body", None) or {"type": "object"}
        op["requestBody"] = {"content": {"application/json": {"schema": schema}}}
        codes.add(413)
    for code in sorted(codes):
        op["responses"][str(code)] = _answer(code)
    return op


def describe(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document for this application's routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or not ("/api/" in path or path.startswith("/ws/")) or route.method == "HEAD":
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            route.method, path, route.handler
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CTI service desk (Q/SY 1331.2-2010 热线帮助)",
            "version": "0.1.0",
            "description": "Log in with POST /api/login; send the session cookie and, on unsafe "
            "methods, the X-CSRF-Token header. /ws/* are WebSocket endpoints (GET with Upgrade).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "The csrf value returned by POST /api/login",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    }


@documented()
async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/openapi.json: this document."""
    return web.json_response(describe(request.app))


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/api/openapi.json", openapi_json)
