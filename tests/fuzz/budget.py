"""How long the fuzzers run: a short, repeatable budget in the test suite, a long one by hand.

Short (the default, what `scripts/test` and `.ci/run` run): every property gets its own modest
number of examples, derandomized and with no example database, so CI sees the same inputs on every
run and the whole folder takes seconds.

Long: `CTI_FUZZ_EXAMPLES=N python -m pytest tests/fuzz` runs N random examples per property and
keeps failures in `.hypothesis/`, so a failure found once is tried first next time.
`python -m tests.fuzz.<module> -atheris_runs=N` runs the module's coverage-guided atheris harness
(libFuzzer options apply; the captured AMI sessions and the shipped files are its seed corpus).
"""

import inspect
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, settings

LONG = os.environ.get("CTI_FUZZ_EXAMPLES")


def budget(short: int) -> settings:
    """Hypothesis settings: `short` derandomized examples, or CTI_FUZZ_EXAMPLES random ones."""
    # No deadline: the machine has two cores shared with other test runs; hangs are caught by
    # each test's own time bound instead.
    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
    if LONG:
        return settings(max_examples=int(LONG), print_blob=True, **common)  # type: ignore[arg-type]
    return settings(max_examples=short, derandomize=True, database=None, **common)  # type: ignore[arg-type]


def atheris_main(
    one_input: Callable[[bytes], None],
    seeds: Iterable[bytes] = (),
    modules: Iterable[ModuleType] = (),
) -> None:
    """Run `one_input` under atheris with libFuzzer's command line (sys.argv).

    Without a corpus folder on the command line, a fresh one in /tmp is seeded with `seeds`.
    Coverage comes from the functions of `modules` (the parsers), or from everything loaded when
    none are named (slow to set up when SQLAlchemy is loaded).
    """
    import atheris  # only the long, by-hand run needs it

    # The parsers log every bad input they skip; millions of runs would drown libFuzzer's output.
    logging.disable(logging.CRITICAL)

    args = list(sys.argv)
    if not any(not a.startswith("-") for a in args[1:]):
        corpus = Path(tempfile.mkdtemp(prefix="cti-fuzz-"))
        for i, seed in enumerate(seeds):
            (corpus / f"seed-{i:04d}").write_bytes(seed)
        print(f"atheris: corpus in {corpus}", file=sys.stderr)
        args.append(str(corpus))
    targets = list(modules)
    if not targets:
        atheris.instrument_all()
    for module in targets:
        for value in vars(module).values():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            functions = vars(value).values() if inspect.isclass(value) else [value]
            for f in functions:
                if inspect.isfunction(f):
                    atheris.instrument_func(f)
    atheris.Setup(args, one_input)
    atheris.Fuzz()
