"""The suite's recorded test durations (tests/durations.txt), which order the tests on the xdist
workers longest first: a worker that starts a long test last is the run's tail, the others idle.

The file holds `seconds node-id` lines (setup + call + teardown of a full `scripts/test` run).
Refresh it from a run's `--durations` lines (the ones it lacks keep their old figures):

    scripts/test --durations=120 | tee /tmp/run.log
    python -m tests.support.durations < /tmp/run.log
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

FILE = Path(__file__).resolve().parents[1] / "durations.txt"
# pytest's `--durations` line: "12.34s call     tests/x.py::test_y[param]"
LINE = re.compile(r"^(\d+\.\d+)s (?:setup|call|teardown) +(tests/\S.*)$")
# Shorter ones change nothing in the order worth the file's lines.
SHORTEST = 5.0


def load(path: Path = FILE) -> dict[str, float]:
    """The recorded seconds of each test by node id (none when the file is missing)."""
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            seconds, nodeid = line.split(" ", 1)
            found[nodeid] = float(seconds)
    return found


def parse(lines: list[str]) -> dict[str, float]:
    """Each test's setup + call + teardown seconds from pytest's `--durations` lines."""
    total: dict[str, float] = defaultdict(float)
    for line in lines:
        m = LINE.match(line.rstrip("\n"))
        if m:
            total[m[2]] += float(m[1])
    return dict(total)


def main() -> None:
    """Merge the durations read on stdin into the file."""
    found = {**load(), **parse(sys.stdin.readlines())}
    kept = sorted(((s, n) for n, s in found.items() if s >= SHORTEST), reverse=True)
    FILE.write_text(
        "# seconds node-id: see tests/support/durations.py\n"
        + "".join(f"{s:.1f} {n}\n" for s, n in kept)
    )
    print(f"{len(kept)} tests of {SHORTEST:.0f} s or more in {FILE}")


if __name__ == "__main__":
    main()
