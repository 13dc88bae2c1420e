"""Jinja2 rendering with autoescaping (every page goes through here)."""

from functools import cache
from typing import Any

import jinja2
from aiohttp import web


@cache
def environment() -> jinja2.Environment:
    """The one template environment."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("desk.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )


def render(name: str, **context: Any) -> web.Response:
    """Render a template to an HTML response."""
    html = environment().get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html", charset="utf-8")
