"""The OpenAPI 3.1 description of the HTTP API, built from the route table itself: every route's
method, path, parameters, summary (its handler's docstring) and the role it requires, so the
document cannot drift from what the server does."""

import inspect
import re
from typing import Any

from aiohttp import web

from desk.web.auth import COOKIE

_PARAM = re.compile(r"{(\w+)}")
_ROLE_TEXT = {"agent": "agent, lead or admin", "lead": "lead or admin", "admin": "admin"}


def _tag(path: str) -> str:
    """/api/incidents/{number} -> incidents; /portal/api/requests -> portal (a sub-application)."""
    parts = path.split("/")
    if path.startswith("/api/"):
        return parts[2]
    return parts[1] if "/api/" in path else "pages"


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
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if rest.strip():
        op["description"] = rest.strip()
    role = getattr(handler, "required_role", None)
    if role is not None:
        op["security"] = [{"session": []}]
        op["x-required-role"] = role.value
        op["description"] = (
            f"{op.get('description', '')}\n\nRole: {_ROLE_TEXT[role.value]}.".strip()
        )
        op["responses"]["401"] = {"description": "Not logged in"}
        op["responses"]["403"] = {"description": "Role not allowed, or missing/wrong CSRF token"}
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            op["parameters"].append(
                {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The csrf value returned by POST /api/login",
                }
            )
    if "{" in path:
        op["responses"]["404"] = {"description": "No such record"}
    if method in ("POST", "PATCH", "PUT"):
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
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
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": COOKIE}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/openapi.json: this document."""
    return web.json_response(describe(request.app))


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/api/openapi.json", openapi_json)
