"""Jinja2 rendering with autoescaping (every page goes through here), one environment per language
with that language's catalogue installed (jinja2.ext.i18n: `_()`, `pgettext()`, `ngettext()`)."""

from functools import cache, partial
from typing import Any

import jinja2
from aiohttp import web

from desk.i18n import translate, translations


@cache
def environment(lang: str) -> jinja2.Environment:
    """The template environment of one language."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("desk.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    # Newstyle: `_("%(n)s calls", n=3)` formats and escapes its arguments; a literal % is %%.
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["label"] = partial(translate, lang)  # a label table's entry (desk/labels.py)
    return env


def render(name: str, *, lang: str, **context: Any) -> web.Response:
    """Render a template in `lang` to an HTML response."""
    html = environment(lang).get_template(name).render(lang=lang, **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8")
