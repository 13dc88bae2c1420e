"""Reading YAML configuration with errors that name the file and line."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from cti.errors import ConfigError

# A configuration file is a few hundred nodes deep and wide; these bounds stop what is not one.
MAX_DEPTH = 64  # PyYAML composes recursively: deeper nesting ends in RecursionError
MAX_NODES = 100_000  # counting every alias as the nodes it stands for


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting and YAML bombs.

    A bomb is a few lines of anchors and aliases that stand for billions of nodes: composing it
    is cheap (aliases share nodes), but anything that walks the values afterwards (value(), the
    loaders' str() of a list, a repr in an error message) would not finish.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0  # nodes composed so far, with aliases expanded
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # its anchor's node is still being composed: a cycle
                raise self._refuse("an alias inside the node it refers to", event)
            self._add(size, event)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._refuse(f"nested deeper than {MAX_DEPTH} levels", event)
        before = self._expanded
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._add(1, event)
        self._sizes[id(node)] = self._expanded - before
        return node

    def _add(self, nodes: int, event: yaml.Event) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise self._refuse(f"more than {MAX_NODES} values once aliases are expanded", event)

    @staticmethod
    def _refuse(problem: str, event: yaml.Event) -> yaml.MarkedYAMLError:
        return yaml.composer.ComposerError(None, None, problem, event.start_mark)


class Node:
    """A YAML node with its source position; converts to Python values on demand."""

    def __init__(self, node: yaml.Node, source: str) -> None:
        self.node = node
        self.source = source

    @property
    def line(self) -> int:
        """1-based line number."""
        return int(self.node.start_mark.line) + 1

    def error(self, message: str) -> ConfigError:
        """A ConfigError naming this node's file and line."""
        return ConfigError(f"{self.source} line {self.line}: {message}")

    def mapping(self) -> dict[str, "Node"]:
        """A mapping's entries (keys as strings)."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error("expected a mapping (key: value)")
        out: dict[str, Node] = {}
        for k, v in self.node.value:
            key = str(k.value)
            if key in out:
                raise Node(k, self.source).error(f"duplicate key {key!r}")
            out[key] = Node(v, self.source)
        return out

    def items(self) -> Iterator["Node"]:
        """A sequence's items."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error("expected a list")
        for item in self.node.value:
            yield Node(item, self.source)

    def scalar(self) -> str:
        """A scalar's text."""
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error("expected a single value")
        return str(self.node.value)

    def value(self) -> Any:
        """The plain Python value (for simple scalars and lists)."""
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag == "tag:yaml.org,2002:null":
            return None  # 'key:' with nothing after it, which serialize() cannot write back
        try:
            return yaml.safe_load(yaml.serialize(self.node))
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            # Tags and values PyYAML cannot construct: !!python/object, !!int abc, month 13, ...
            problem = getattr(exc, "problem", None) or exc
            raise self.error(f"not a plain value: {problem}") from None

    def integer(self, low: int, high: int) -> int:
        """A whole number within bounds."""
        try:
            n = int(self.scalar())
        except ValueError:
            raise self.error(f"{self.scalar()!r} is not a whole number") from None
        if not low <= n <= high:
            raise self.error(f"must be between {low} and {high}")
        return n


def load(path: Path) -> Node:
    """Parse a YAML file into a Node (syntax errors name the line)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text") from None
    return parse(text, str(path))


def parse(text: str, source: str) -> Node:
    """Parse YAML text into a Node; errors name `source` and the line."""
    path = source
    try:
        node = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, BEL, ...)
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(f"{path} line {line}: {exc.reason} (#x{exc.character:04x})") from None
    if node is None:
        raise ConfigError(f"{path}: empty file")
    return Node(node, source)


def allowed_keys(
    entries: dict[str, Node], where: Node, allowed: set[str], required: set[str]
) -> None:
    """Unknown keys and missing required keys are errors."""
    for key, node in entries.items():
        if key not in allowed:
            raise node.error(f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    missing = required - set(entries)
    if missing:
        raise where.error(f"missing {', '.join(sorted(missing))}")
