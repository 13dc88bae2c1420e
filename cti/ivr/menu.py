"""The IVR menus as data (menu.yaml), validated at start."""

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cti.ivr.yamlconf import Node, allowed_keys, load

INCIDENT_TYPES = ("fault", "service_request", "consultation")
KEYS = set("0123456789*#")


class Action(StrEnum):
    """What a key does."""

    REPORT = "report"  # identify, open an incident, read its number back, queue
    AGENT = "agent"  # the same, then an agent (type consultation by default)
    MENU = "menu"  # go to another menu
    STATUS = "status"  # hear an incident's state; confirm or reopen
    LANGUAGE = "language"  # switch Mandarin <-> English
    REPEAT = "repeat"  # play this menu again
    VOICEMAIL = "voicemail"  # leave a message that becomes an incident
    ONCALL = "oncall"  # transfer to the on-call engineer's mobile
    HANGUP = "hangup"
    ACCOUNT = "account"  # an account or password request: name the account (6.2), then queue


_NEEDS_TYPE = {Action.REPORT, Action.AGENT, Action.VOICEMAIL, Action.ONCALL, Action.ACCOUNT}


@dataclass(frozen=True)
class Option:
    """One key's action."""

    action: Action
    menu: str | None = None
    type: str = "consultation"
    category: str = ""
    category_en: str = ""
    line: int = 0

    def category_in(self, language: str) -> str:
        """The category label in a language (Mandarin if no English one)."""
        return self.category_en if language == "en" and self.category_en else self.category


@dataclass(frozen=True)
class Menu:
    """A prompt and what each key does."""

    name: str
    prompt: str
    options: dict[str, Option]
    after_retries: Option
    also: dict[str, str] = field(default_factory=dict)  # language -> extra prompt


@dataclass(frozen=True)
class MenuConfig:
    """The whole IVR definition."""

    languages: tuple[str, ...]
    default_language: str
    queues: dict[str, str]
    start: str
    digit_timeout: int
    retries: int
    menus: dict[str, Menu]
    silences: int = 2  # a silent caller hears a menu this many times, then `after_retries`

    def prompts_used(self) -> set[str]:
        """Every prompt name the menus refer to."""
        used = {m.prompt for m in self.menus.values()}
        for m in self.menus.values():
            used.update(m.also.values())
        return used


def _option(node: Node, menus: set[str]) -> Option:
    entries = node.mapping()
    allowed_keys(entries, node, {"action", "menu", "type", "category", "category_en"}, {"action"})
    raw = entries["action"].scalar()
    try:
        action = Action(raw)
    except ValueError:
        allowed = ", ".join(a.value for a in Action)
        raise entries["action"].error(f"unknown action {raw!r} (one of: {allowed})") from None
    menu = entries["menu"].scalar() if "menu" in entries else None
    if action == Action.MENU:
        if menu is None:
            raise node.error("action 'menu' needs menu: <name>")
        if menu not in menus:
            raise entries["menu"].error(f"no menu named {menu!r}")
    kind = entries["type"].scalar() if "type" in entries else "consultation"
    if kind not in INCIDENT_TYPES:
        raise entries["type"].error(f"type {kind!r} is not one of {', '.join(INCIDENT_TYPES)}")
    category = entries["category"].scalar() if "category" in entries else ""
    if action in _NEEDS_TYPE and not category:
        raise node.error(f"action {action.value!r} needs a category (the incident's category)")
    return Option(
        action=action,
        menu=menu,
        type=kind,
        category=category,
        category_en=entries["category_en"].scalar() if "category_en" in entries else "",
        line=node.line,
    )


def load_menu(path: Path, prompt_names: set[str]) -> MenuConfig:
    """Load and validate menu.yaml; every error names the line."""
    root = load(path)
    top = root.mapping()
    allowed_keys(
        top,
        root,
        {
            "languages",
            "default_language",
            "queues",
            "start",
            "digit_timeout",
            "retries",
            "silences",
            "menus",
        },
        {"languages", "default_language", "queues", "start", "menus"},
    )
    languages = tuple(n.scalar() for n in top["languages"].items())
    if not set(languages) <= {"zh", "en"} or not languages:
        raise top["languages"].error("languages must be among zh, en")
    default = top["default_language"].scalar()
    if default not in languages:
        raise top["default_language"].error(f"{default!r} is not in languages")
    queues = {k: v.scalar() for k, v in top["queues"].mapping().items()}
    for lang in languages:
        if lang not in queues:
            raise top["queues"].error(f"no queue for language {lang!r}")
    menu_nodes = top["menus"].mapping()
    names = set(menu_nodes)
    menus: dict[str, Menu] = {}
    for name, node in menu_nodes.items():
        entries = node.mapping()
        allowed_keys(
            entries, node, {"prompt", "also", "options", "after_retries"}, {"prompt", "options"}
        )
        prompt = entries["prompt"].scalar()
        if prompt not in prompt_names:
            raise entries["prompt"].error(f"no prompt named {prompt!r} in the prompt catalogue")
        also = (
            {k: v.scalar() for k, v in entries["also"].mapping().items()}
            if "also" in entries
            else {}
        )
        for extra_lang, extra in also.items():
            if extra not in prompt_names:
                raise entries["also"].error(f"no prompt named {extra!r} ({extra_lang})")
        options: dict[str, Option] = {}
        for key, opt in entries["options"].mapping().items():
            if key not in KEYS:
                raise opt.error(f"key {key!r} is not a phone key (0-9, *, #)")
            options[key] = _option(opt, names)
        after = (
            _option(entries["after_retries"], names)
            if "after_retries" in entries
            else Option(Action.HANGUP, line=node.line)
        )
        menus[name] = Menu(name, prompt, options, after, also)
    start = top["start"].scalar()
    if start not in menus:
        raise top["start"].error(f"no menu named {start!r}")
    return MenuConfig(
        languages=languages,
        default_language=default,
        queues=queues,
        start=start,
        digit_timeout=top["digit_timeout"].integer(1, 30) if "digit_timeout" in top else 5,
        retries=top["retries"].integer(1, 9) if "retries" in top else 3,
        menus=menus,
        silences=top["silences"].integer(1, 9) if "silences" in top else 2,
    )
