"""The demo's data files are where `cti demo` looks for them (scripts/demo is one of the two
commands; a moved module once broke it at start)."""

from desk.web.demo import CONFIG


def test_the_demo_finds_its_directory_hours_and_knowledge() -> None:
    for name in ("users.csv", "hours.yaml", "knowledge.yaml"):
        assert (CONFIG / name).is_file(), CONFIG / name


def test_no_demo_user_calls_from_an_agents_desk_phone() -> None:
    """The wallboard once showed "1002 261130003" as agent 1002's caller: a demo user's office
    phone was 1002, the extension of the demo's agent 1002 — right, but baffling."""
    import csv

    from desk.web.demo import DEMO_STAFF

    extensions = {s["extension"] for s in DEMO_STAFF if s.get("extension")}
    with (CONFIG / "users.csv").open(encoding="utf-8") as fh:
        phones = {p for row in csv.DictReader(fh) for p in (row["office_phone"], row["mobile"])}
    assert not extensions & phones


def test_the_demo_callers_are_the_directory_s_people_not_the_agents_desks() -> None:
    """The same, for the numbers the demo's simulated callers call from (desk/web/demo.py KNOWN):
    Alice Chen still called from 1002 after her office phone moved to 2002, so agent 1002's row
    showed 1002 as the caller, and she was no longer recognised by her number."""
    import csv

    from cti.phone import NumberPlan, normalize
    from desk.web.demo import DEMO_STAFF, KNOWN

    plan = NumberPlan(area_code="10")
    extensions = {s["extension"] for s in DEMO_STAFF if s.get("extension")}
    with (CONFIG / "users.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = {
        normalize(p, plan).key: r["name"] for r in rows for p in (r["office_phone"], r["mobile"])
    }
    for number, name in KNOWN:
        assert number not in extensions, number
        assert names.get(normalize(number, plan).key) == name, (number, name)
