"""The YAML configuration loaders fed random documents and mutations of the shipped defaults.

Properties: `load_ivr_config` (menu.yaml, prompts.yaml, hours.yaml) and `load_routing`
(routing.yaml) either load or raise ConfigError naming the file (and the line, wherever the
problem has one), never another exception, and in bounded time: YAML bombs (anchors and aliases
that expand exponentially), deep nesting, tags, bad dates, non-UTF-8 bytes and control
characters included.

Long run: `CTI_FUZZ_EXAMPLES=3000 python -m pytest tests/fuzz/test_yaml_config.py`, or
`python -m tests.fuzz.test_yaml_config -atheris_runs=100000`.
"""

import re
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from cti.errors import ConfigError
from cti.ivr import config as ivr_config
from cti.ivr import hours, menu, prompts, yamlconf
from cti.routing import config as routing_config
from tests.fuzz.budget import atheris_main, budget

IVR_DEFAULTS = Path(ivr_config.__file__).parent / "defaults"
DEFAULTS = {
    "menu.yaml": (IVR_DEFAULTS / "menu.yaml").read_text(encoding="utf-8"),
    "prompts.yaml": (IVR_DEFAULTS / "prompts.yaml").read_text(encoding="utf-8"),
    "hours.yaml": (IVR_DEFAULTS / "hours.yaml").read_text(encoding="utf-8"),
    "routing.yaml": routing_config.DEFAULTS.read_text(encoding="utf-8"),
}
# Errors about a whole file, where no line can be named (an entry the file lacks).
FILE_LEVEL = re.compile(r"(the IVR needs a prompt|has no text for|empty file)")
SECONDS = 5.0  # a generous bound; loading the defaults takes a few hundredths


def bomb(levels: int, width: int, where: str) -> str:
    """Billion laughs: `width` ** `levels` items from a few lines, used as `where`."""
    lines = [f"x0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"{where}: *a{levels - 1}", ""])


ODD_SCALARS = [
    "", "~", "[", "{", "]", "'unterminated", '"\\x"', "*nowhere", "&a x", "!!python/object:os.system x",
    "!!timestamp 2026-13-45", "!!int abc", "!!binary ???", "!!float x", "2026-13-01", "2026-02-30",
    ".nan", ".inf", "-.inf", "1e400", "-5", "0x1F", "0o17", "1_000", "9" * 5000, "[*a, *a]",
    "!!set {a, b}", "!!omap [a: 1]", "? [a]", "{[a]: b}", "<<: {a: 1}", "|", ">", "\t", "%",
    "@", "`", "yes", "no", "null", "25:00-26:00", "08:30-12:00", "Asia", "../etc/passwd", "\x00",
    "\x07", "\u2028", "\ufeff", "张三", "Mars/Base",
]  # fmt: skip
# Keys whose value a loader reads whole (a list), rather than node by node.
WHOLE_VALUES = {"languages", "alerts", "offers", "waiting", "longest_wait", "service_level"}
odd = st.one_of(st.sampled_from(ODD_SCALARS), st.text(max_size=20))


@st.composite
def mutated(draw: st.DrawFn, name: str) -> bytes:
    """The shipped file with a few lines dropped, repeated, moved, re-indented or rewritten."""
    lines = DEFAULTS[name].splitlines()
    for _ in range(draw(st.integers(1, 4))):
        # Often a line with a key: mostly where a loader reads a whole value at once.
        keyed = [i for i, line in enumerate(lines) if line.strip().split(":")[0] in WHOLE_VALUES]
        anywhere = st.integers(0, len(lines) - 1)
        at_key = bool(keyed) and draw(st.booleans())
        i = draw(st.sampled_from(keyed) if at_key else anywhere)
        op = (
            "value"
            if at_key
            else draw(
                st.sampled_from(
                    ["drop", "repeat", "indent", "dedent", "value", "key", "insert", "swap", "cut"]
                )
            )
        )
        line = lines[i]
        if op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, line)
        elif op == "indent":
            lines[i] = "  " + line
        elif op == "dedent":
            lines[i] = line.lstrip()
        elif op == "value" and ":" in line:
            lines[i] = line.rsplit(":", 1)[0] + ": " + draw(odd)
        elif op == "key" and ":" in line:
            lines[i] = (
                line[: len(line) - len(line.lstrip())] + draw(odd) + ":" + line.split(":", 1)[1]
            )
        elif op == "insert":
            lines.insert(i, draw(odd))
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "cut":
            lines[i] = line[: draw(st.integers(0, len(line)))]
        if not lines:
            lines = [""]
    text = "\n".join(lines) + "\n"
    return text.encode("utf-8", errors="surrogatepass")


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "languages", "default_language", "queues", "start", "menus", "prompt", "options", "action",
    "weekly", "holidays", "workdays", "timezone", "rules", "im", "wallboard", "take_link", "*",
]  # fmt: skip


@st.composite
def document(draw: st.DrawFn, name: str) -> bytes:
    """Anything: a random document with the file's own keys, a bomb, deep nesting, or bytes."""
    kind = draw(st.sampled_from(["random", "keys", "bomb", "bomb_key", "deep", "bytes"]))
    if kind == "random":
        return yaml.safe_dump(draw(documents), allow_unicode=True).encode()
    if kind == "keys":
        doc = draw(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
        return yaml.safe_dump(doc, allow_unicode=True).encode()
    where = draw(st.sampled_from(["languages", "weekly", "queues", "wallboard", "menus"]))
    if kind == "bomb":
        return (DEFAULTS[name] + bomb(draw(st.integers(2, 12)), 9, where)).encode()
    if kind == "bomb_key":
        return (bomb(draw(st.integers(2, 12)), 9, "x_") + f"? *a{0}\n: x\n").encode()
    if kind == "deep":
        n = draw(st.integers(50, 5000))
        return (f"{where}: " + "[" * n + "]" * n + "\n").encode()
    return draw(st.binary(max_size=200))


def check_load(files: dict[str, bytes]) -> None:
    """Load a config folder holding `files`: it loads, or a ConfigError names the file, in time."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        for load, names in (
            (ivr_config.load_ivr_config, ("menu.yaml", "prompts.yaml", "hours.yaml")),
            (routing_config.load_routing, ("routing.yaml",)),
        ):
            start = time.monotonic()
            try:
                load(folder)
            except ConfigError as exc:
                message = str(exc)
                assert any(n in message for n in names), message
                assert re.search(r"\.yaml line \d+: ", message) or FILE_LEVEL.search(message), (
                    message
                )
            spent = time.monotonic() - start
            assert spent < SECONDS, f"{spent:.1f}s to load {sorted(files)}"


NAMES = sorted(DEFAULTS)


@budget(80)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_mutated_defaults_load_or_raise_config_error_with_file_and_line(
    name: str, data: st.DataObject
) -> None:
    check_load({name: data.draw(mutated(name))})


@budget(60)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_any_document_loads_or_raises_config_error_in_bounded_time(
    name: str, data: st.DataObject
) -> None:
    check_load({name: data.draw(document(name))})


def fuzz_one(data: bytes) -> None:
    """One atheris input: the first byte picks the file, the rest is its bytes."""
    if data:
        check_load({NAMES[data[0] % len(NAMES)]: data[1:]})


if __name__ == "__main__":
    atheris_main(
        fuzz_one,
        [bytes([i]) + DEFAULTS[n].encode() for i, n in enumerate(NAMES)],
        [yamlconf, menu, hours, prompts, ivr_config, routing_config],
    )
