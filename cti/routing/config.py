"""routing.yaml: back-up rules per queue, overflow actions, IM channels, take links, wallboard
thresholds. Validated at start; every error names the file and line."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cti.errors import ConfigError
from cti.ivr.yamlconf import Node, allowed_keys, load, parse
from cti.routing.rules import Measure, Rule

DEFAULTS = Path(__file__).parent / "defaults" / "routing.yaml"
IM_KINDS = ("wecom", "dingtalk", "feishu", "slack", "webhook")
ACTIONS = ("mobile", "im", "callback")


@dataclass(frozen=True)
class QueueRouting:
    """One queue's rules and overflow actions (action -> minimum wait before it applies)."""

    rules: tuple[Rule, ...]
    overflow: dict[str, float]


@dataclass(frozen=True)
class ImChannel:
    """Where IM messages go."""

    name: str
    kind: str
    url: str
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class RoutingConfig:
    """The whole file."""

    queues: dict[str, QueueRouting]
    channels: dict[str, ImChannel]
    alert_channels: tuple[str, ...]
    offer_channels: tuple[str, ...]
    take_expires: float
    base_url: str
    thresholds: dict[str, tuple[float, float]]

    def for_queue(self, queue: str) -> QueueRouting:
        """A queue's own entry, else "*"."""
        return self.queues.get(queue) or self.queues["*"]


def _number(node: Node, low: float, high: float) -> float:
    try:
        value = float(node.scalar())
    except ValueError:
        raise node.error(f"{node.scalar()!r} is not a number") from None
    if not low <= value <= high:
        raise node.error(f"must be between {low:g} and {high:g}")
    return value


def _queue(node: Node) -> QueueRouting:
    entries = node.mapping()
    allowed_keys(entries, node, {"rules", "hold", "overflow"}, {"rules"})
    hold = _number(entries["hold"], 0, 3600) if "hold" in entries else 20.0
    rules = []
    for name, spec in entries["rules"].mapping().items():
        if name not in {m.value for m in Measure}:
            known = ", ".join(m.value for m in Measure)
            raise spec.error(f"unknown rule {name!r} (rules: {known})")
        fields = spec.mapping()
        allowed_keys(fields, spec, {"trip", "clear", "hold"}, {"trip", "clear"})
        trip, clear = _number(fields["trip"], 0, 1e6), _number(fields["clear"], 0, 1e6)
        if clear > trip:
            raise fields["clear"].error("clear must not be above trip")
        rule_hold = _number(fields["hold"], 0, 3600) if "hold" in fields else hold
        rules.append(Rule(Measure(name), trip, clear, rule_hold))
    overflow: dict[str, float] = {}
    if "overflow" in entries:
        for action, spec in entries["overflow"].mapping().items():
            if action not in ACTIONS:
                raise spec.error(f"unknown overflow action {action!r} ({', '.join(ACTIONS)})")
            fields = spec.mapping()
            allowed_keys(fields, spec, {"min_wait"}, set())
            overflow[action] = _number(fields["min_wait"], 0, 3600) if "min_wait" in fields else 0.0
    return QueueRouting(tuple(rules), overflow)


def routing_path(config_dir: Path | None = None) -> Path:
    """routing.yaml in `config_dir` if it has one, else the defaults."""
    if config_dir and (config_dir / "routing.yaml").exists():
        return config_dir / "routing.yaml"
    return DEFAULTS


def load_routing(config_dir: Path | None = None) -> RoutingConfig:
    """Read routing.yaml from `config_dir` if it has one, else the defaults."""
    path = routing_path(config_dir)
    return _config(load(path), str(path))


def parse_routing(text: str, source: str = "routing.yaml") -> RoutingConfig:
    """routing.yaml's text (as the lead's editor sends it); errors name the line."""
    return _config(parse(text, source), source)


class LiveRouting:
    """The routing configuration in force. The lead's editor replaces it as a whole; readers
    take `current` each time they need it, and the services that keep parts of it (the
    executor, the wallboard's thresholds) are told by the listeners."""

    def __init__(self, config: RoutingConfig, text: str, origin: str) -> None:
        self.current = config
        self.text = text  # the YAML it was read from, for the editor
        self.origin = origin  # a file path, or "database"
        self._listeners: list[Callable[[RoutingConfig], None]] = []

    def listen(self, listener: Callable[[RoutingConfig], None]) -> None:
        """Call `listener` with every new configuration."""
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[RoutingConfig], None]) -> None:
        """Stop calling `listener` (a job that stopped on this node)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def replace(self, config: RoutingConfig, text: str, origin: str) -> None:
        """Put a validated configuration in force, at once."""
        self.current, self.text, self.origin = config, text, origin
        for listener in self._listeners:
            listener(config)


def _config(root: Node, path: str) -> RoutingConfig:
    top = root.mapping()
    allowed_keys(top, root, {"queues", "im", "take_link", "wallboard"}, {"queues"})
    queues = {name: _queue(node) for name, node in top["queues"].mapping().items()}
    if "*" not in queues:
        raise top["queues"].error('queues needs a "*" entry (every queue without its own)')
    channels: dict[str, ImChannel] = {}
    alerts: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()
    if "im" in top:
        im = top["im"].mapping()
        allowed_keys(im, top["im"], {"channels", "alerts", "offers"}, set())
        for name, spec in (im["channels"].mapping() if "channels" in im else {}).items():
            fields = spec.mapping()
            allowed_keys(fields, spec, {"kind", "url", "secret"}, {"kind", "url"})
            kind, url = fields["kind"].scalar(), fields["url"].scalar()
            if kind not in IM_KINDS:
                raise fields["kind"].error(f"kind must be one of {', '.join(IM_KINDS)}")
            if not url.startswith(("http://", "https://")):
                raise fields["url"].error("url must start with http:// or https://")
            secret = fields["secret"].scalar() if "secret" in fields else ""
            channels[name] = ImChannel(name, kind, url, secret)
        for key in ("alerts", "offers"):
            names = tuple(n.scalar() for n in im[key].items()) if key in im else ()
            unknown = [n for n in names if n not in channels]
            if unknown:
                raise im[key].error(f"unknown channel {', '.join(unknown)}")
            if key == "alerts":
                alerts = names
            else:
                offers = names
    take = top["take_link"].mapping() if "take_link" in top else {}
    expires = _number(take["expires"], 10, 86400) if "expires" in take else 300.0
    base_url = take["base_url"].scalar() if "base_url" in take else ""
    board = top["wallboard"].mapping() if "wallboard" in top else {}
    if "service_level_seconds" in board:
        raise board["service_level_seconds"].error(
            "the service-level threshold is one setting for the wallboard and the reports: "
            "CTI_REPORT_SL_SECONDS (remove it here)"
        )
    thresholds: dict[str, tuple[float, float]] = {}
    for key, node in board.items():
        if key not in ("waiting", "longest_wait", "service_level", "abandon_rate"):
            raise node.error(f"unknown wallboard setting {key!r}")
        pair = node.value()
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, int | float) for x in pair)
        ):
            raise node.error("expected [amber, red]")
        thresholds[key] = (float(pair[0]), float(pair[1]))
    try:
        return RoutingConfig(queues, channels, alerts, offers, expires, base_url, thresholds)
    except ValueError as exc:  # pragma: no cover - guarded above
        raise ConfigError(f"{path}: {exc}") from exc
