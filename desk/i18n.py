"""Texts of pages, e-mails and reports in gettext catalogues: Mandarin, then English.

The catalogues are the `.po` files in `desk/locale/<lang>/LC_MESSAGES/messages.po`, read and
compiled in memory when a language is first asked for (the app factory asks for both at start),
so there is no build step and no `.mo` file in the repository. Message ids are the English text;
the `en` catalogue repeats them, so both catalogues are complete (tests/unit/test_i18n.py checks
them against the source).

After changing a text, from the repository root (options in pyproject's `[tool.babel.*]`, the
extraction mapping in `babel.cfg`):

    pybabel extract     # every message in desk/ and reports/ -> desk/locale/messages.pot
    pybabel update      # merge it into both .po files (messages no longer used are dropped)

then fill in the new entries' zh and en msgstr, and review any `#, fuzzy` guess (drop the flag).
`pybabel compile` is not needed: `translations()` compiles the `.po` when it loads it.
"""

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import NamedTuple

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("zh", "en")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


class Msg(NamedTuple):
    """A text marked where it is defined and translated where it is shown."""

    context: str | None
    id: str


def N_(msgid: str) -> Msg:
    """Mark `msgid` for extraction; `translate` it when the language is known."""
    return Msg(None, msgid)


def NC_(context: str, msgid: str) -> Msg:
    """Like N_, with a context: the same English word has another Mandarin one elsewhere."""
    return Msg(context, msgid)


@cache
def translations(lang: str) -> gettext.GNUTranslations:
    """The catalogue of `lang`, compiled in memory (fuzzy entries are left out, as msgfmt does)."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for language {lang!r}")
    with (LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    mo = BytesIO()
    write_mo(mo, catalog)
    mo.seek(0)
    return gettext.GNUTranslations(mo)


def translate(lang: str, msg: Msg) -> str:
    """`msg` in `lang`."""
    tr = translations(lang)
    return tr.gettext(msg.id) if msg.context is None else tr.pgettext(msg.context, msg.id)
