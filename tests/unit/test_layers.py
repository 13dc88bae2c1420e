"""The house plan, checked on the source: which package may import which, where aiohttp.web and
AMI action names may appear, and no import circles between our modules."""

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cti", "desk", "reports")

# Layers, lowest first: a module may import its own layer and those below, never above.
LAYERS = ("cti", "desk", "reports", "desk.web")

# Every AMI action the server sends, by name (cti/ami/actions.py and the client's own).
AMI_ACTIONS = {
    "Originate", "QueueAdd", "QueueRemove", "QueuePause", "QueueStatus", "CoreShowChannels",
    "QueueWithdrawCaller", "Redirect", "Hangup", "Setvar", "DBPut", "PlayDTMF", "Ping", "Login",
    "Logoff", "BlindTransfer", "Atxfer", "CancelAtxfer", "ChanSpy", "Command", "PJSIPShowAuths",
}  # fmt: skip


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    """(dotted name, path, syntax tree) of every module of our packages."""
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path, ast.parse(path.read_text("utf-8"))


def imports(tree: ast.Module, name: str) -> set[str]:
    """Our modules that `tree` imports (at any depth of the file)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: resolve against the module's package
                base = name.split(".")[: -node.level]
                mod = ".".join([*base, node.module])
            else:
                mod = node.module
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m.split(".")[0] in PACKAGES}


def layer(module: str) -> int:
    """The index in LAYERS of the layer a module belongs to."""
    if module == "desk.web" or module.startswith("desk.web."):
        return LAYERS.index("desk.web")
    return LAYERS.index(module.split(".")[0])


ALL = list(modules())
NAMES = {name for name, _, _ in ALL}


def test_imports_run_one_way() -> None:
    wrong = []
    for name, _, tree in ALL:
        for target in imports(tree, name):
            if target in NAMES and layer(target) > layer(name):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_aiohttp_web_only_in_desk_web() -> None:
    wrong = []
    for name, _, tree in ALL:
        if layer(name) == LAYERS.index("desk.web"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("aiohttp")
            ):
                if node.module.startswith("aiohttp.web") or any(
                    a.name == "web" for a in node.names
                ):
                    wrong.append(name)
            elif isinstance(node, ast.Import) and any(
                a.name.startswith("aiohttp.web") for a in node.names
            ):
                wrong.append(name)
    assert not wrong


def test_ami_action_names_only_in_cti_ami() -> None:
    wrong = []
    for name, _, tree in ALL:
        if name.startswith("cti.ami"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in AMI_ACTIONS:
                wrong.append(f"{name}: {node.value!r} (line {node.lineno})")
    assert not wrong, "\n".join(wrong)


def test_panoramisk_only_in_cti_ami() -> None:
    users = {
        name
        for name, _, tree in ALL
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (getattr(node, "module", None) or a.name).startswith("panoramisk") for a in node.names
        )
    }
    assert users <= {"cti.ami.client", "cti.ami.protocol"}, users


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, _, tree in ALL:
        graph[name] |= {t for t in imports(tree, name) if t in NAMES and t != name}
    # Tarjan's strongly connected components: any component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(NAMES):
        if v not in index:
            visit(v)
    # A package's __init__ importing its own modules is not a circle worth failing on.
    circles = [c for c in circles if not all(m.startswith(c[0]) for m in c)]
    assert not circles, circles


@pytest.mark.parametrize("probe", ["import aiohttp.web", "from aiohttp import web"])
def test_the_aiohttp_check_can_fail(probe: str) -> None:
    tree = ast.parse(probe)
    found = [
        n
        for n in ast.walk(tree)
        if (isinstance(n, ast.ImportFrom) and any(a.name == "web" for a in n.names))
        or (isinstance(n, ast.Import) and any(a.name.startswith("aiohttp.web") for a in n.names))
    ]
    assert found
