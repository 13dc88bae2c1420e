"""The demo's data files are where `cti demo` looks for them (scripts/demo is one of the two
commands; a moved module once broke it at start)."""

from desk.web.demo import CONFIG


def test_the_demo_finds_its_directory_hours_and_knowledge() -> None:
    for name in ("users.csv", "hours.yaml", "knowledge.yaml"):
        assert (CONFIG / name).is_file(), CONFIG / name
