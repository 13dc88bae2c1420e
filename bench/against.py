"""Run a benchmark on this tree and on an earlier commit, alternately, in one run.

    python -m bench.against HEAD~1 [--rounds 2] -- bench.pop_ws --rates 10,30

The earlier commit's files are exported (`git archive`) into a temporary folder and its benchmark
runs there, with this checkout's Python environment, so that both sides see the same machine at
nearly the same time: the rounds alternate (earlier, this, this, earlier, ...), each side's output
is printed as it comes, under a line naming the side and the round, with the load average.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.stats import loadavg

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> str:
    """The tree of `rev` in `into`; its short commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {commit} failed")
    return commit


def run(tree: Path, bench: list[str]) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-m", *bench], cwd=tree, env=env).returncode


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("rev", help="the earlier commit (the baseline)")
    p.add_argument("--rounds", type=int, default=1)
    p.epilog = "after --: the benchmark's module and its arguments"
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    bench = argv[cut + 1 :]
    if not bench or not bench[0].startswith("bench."):
        raise SystemExit("name a benchmark module after --, e.g. -- bench.pipeline")
    here = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True).stdout
    base_dir = Path(tempfile.mkdtemp(prefix="bench-against-"))
    failed = 0
    try:
        base = export(a.rev, base_dir)
        sides = [
            (f"earlier {base}", base_dir),
            (f"this {here}{' + changes' if dirty else ''}", ROOT),
        ]
        for r in range(a.rounds):
            for name, tree in sides if r % 2 == 0 else reversed(sides):
                print(
                    f"=== round {r + 1}, {name}: {' '.join(bench)}; loadavg {loadavg()}", flush=True
                )
                failed |= run(tree, bench) != 0
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
