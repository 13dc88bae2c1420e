"""The catalogues against the source. Babel's own extraction, configured as `pybabel extract` is
(pyproject's [tool.babel.extract_messages] and babel.cfg), finds every message the code and the
templates use; each must have a Mandarin and an English text, and the catalogues must hold nothing
else: no fuzzy guess, no obsolete entry, no message the source no longer uses."""

import tomllib
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from cti.live.model import AgentState
from cti.types import CallOutcome
from desk.i18n import DOMAIN, LANGUAGES, LOCALE_DIR, translate, translations
from desk.labels import (
    AGENT_STATES,
    CALL_OUTCOMES,
    INCIDENT_STATES,
    INCIDENT_TYPES,
    REQUESTER_STATES,
)
from desk.models import IncidentState, IncidentType
from desk.web.i18n import script_texts
from desk.web.reports import KIND_NAMES
from reports.build import KINDS
from reports.render import TITLES

ROOT = Path(__file__).resolve().parents[2]
Key = tuple[str, str | None]  # (msgid, msgctxt)


@pytest.fixture(scope="module")
def used() -> dict[Key, str]:
    """Every message the source uses, with where it is used."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extract = config["tool"]["babel"]["extract_messages"]
    with (ROOT / extract["mapping-file"]).open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[Key, str] = {}
    for folder in extract["input-paths"]:
        for filename, lineno, message, _, context in extract_from_dir(
            ROOT / folder, method_map, options_map, keywords=DEFAULT_KEYWORDS
        ):
            msgid = message[0] if isinstance(message, tuple | list) else message
            found.setdefault((msgid, context), f"{folder}/{filename}:{lineno}")
    return found


def catalogue(lang: str) -> Catalog:
    """The .po file of `lang`, as Babel reads it."""
    with (LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=lang, domain=DOMAIN)


def test_extraction_finds_python_template_and_context_messages(used: dict[Key, str]) -> None:
    # If the mapping stopped matching, every other check here would pass on nothing.
    assert ("Wrong user name or password", None) in used  # _() in a handler
    assert ("Call log", "navigation") in used  # pgettext() in a template
    assert ("%(num)d call", None) in used  # ngettext() in a template
    assert ("Ready", "agent state") in used  # NC_() in a label table
    assert ("has news", None) in used  # N_() for the e-mail
    assert len(used) > 200


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_in_use_has_a_text(lang: str, used: dict[Key, str]) -> None:
    cat = catalogue(lang)
    missing = [f"{where}: {key}" for key, where in used.items() if cat.get(*key) is None]
    assert not missing, f"not in the {lang} catalogue (run pybabel extract/update):\n" + "\n".join(
        missing
    )
    empty = []
    for key, where in used.items():
        message = cat.get(*key)
        assert message is not None
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings) or (message.pluralizable and len(strings) != cat.num_plurals):
            empty.append(f"{where}: {key}")
    assert not empty, f"no {lang} text for:\n" + "\n".join(empty)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_catalogue_holds_only_reviewed_messages_in_use(lang: str, used: dict[Key, str]) -> None:
    cat = catalogue(lang)
    assert not cat.fuzzy, f"the {lang} catalogue's header is marked fuzzy"
    fuzzy = [(m.id, m.context) for m in cat if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy guesses in the {lang} catalogue, to review: {fuzzy}"
    assert not cat.obsolete, f"obsolete entries in the {lang} catalogue: {list(cat.obsolete)}"
    unused = [
        key
        for m in cat
        if m.id and (key := (m.id[0] if isinstance(m.id, tuple) else m.id, m.context)) not in used
    ]
    assert not unused, f"{lang} entries the source no longer uses: {unused}"
    # Placeholders: a msgstr names the same %(...)s as its msgid (Babel's own checkers).
    problems = [(m.id, [str(e) for e in errors]) for m, errors in cat.check()]
    assert not problems, problems


def test_label_tables_cover_their_sets() -> None:
    assert set(INCIDENT_STATES) == set(REQUESTER_STATES) == set(IncidentState)
    assert set(INCIDENT_TYPES) == set(IncidentType)
    assert set(AGENT_STATES) == set(AgentState)
    assert set(CALL_OUTCOMES) == set(CallOutcome)
    assert set(TITLES) == set(KIND_NAMES) == set(KINDS)


def test_the_compiled_catalogues_speak_each_language() -> None:
    assert translate("zh", INCIDENT_STATES["new"]) == "新建"
    assert translate("en", INCIDENT_STATES["new"]) == "New"
    assert translate("zh", REQUESTER_STATES["new"]) == "已受理"
    # The same English word, told apart by its context.
    assert translate("zh", CALL_OUTCOMES["answered"]) == "已接听"
    assert translations("zh").gettext("Answered") == "接听"
    assert translations("zh").ngettext("%(num)d call", "%(num)d calls", 3) == "共 %(num)d 条"
    assert translations("en").ngettext("%(num)d call", "%(num)d calls", 1) == "%(num)d call"
    zh, en = script_texts("zh"), script_texts("en")
    assert zh.keys() == en.keys() and zh["on_call"] == "通话中" and en["ws_lost"].startswith("Conn")
    with pytest.raises(ValueError):
        translations("fr")
