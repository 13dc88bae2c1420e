"""The user CSV import against a real SQLite file, fed hostile spreadsheets.

Properties: `import_users` returns a result or raises InvalidInput, never anything else, whatever
the bytes (UTF-8 with or without BOM, GB18030, neither), the columns (aliases, unknown, repeated),
the cells (quotes, embedded newlines, huge fields, control characters, formula-like text,
repeated employee numbers); with any error nothing is written and every error names the line
where its record starts; without errors exactly the rows written are stored, verbatim, each
value fitting its column.

Long run: `CTI_FUZZ_EXAMPLES=2000 python -m pytest tests/fuzz/test_user_csv.py`, or
`python -m tests.fuzz.test_user_csv -atheris_runs=200000` (parsing only, no database).
"""

import asyncio
import csv
import io
import re
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cti import phone
from cti.db import create_engine, migrate, session_maker
from cti.errors import InvalidInput
from cti.phone import NumberPlan
from desk import directory
from desk.migrations import MIGRATIONS
from desk.models import User
from tests.fuzz.budget import atheris_main, budget

NOW = datetime(2026, 11, 25, tzinfo=UTC)
PLAN = NumberPlan(area_code="10")
FIELDS = list(directory.FIELDS)
ALIASES = list(directory.ALIASES)
_TEMPLATE: Path | None = None


def template() -> Path:
    """A migrated SQLite file, made once; each example works on a copy."""
    global _TEMPLATE
    if _TEMPLATE is None:
        folder = Path(tempfile.mkdtemp(prefix="cti-fuzz-db-"))
        engine = create_engine(f"sqlite+aiosqlite:///{folder / 'template.sqlite3'}")

        async def make() -> None:
            await migrate(engine, MIGRATIONS)
            await engine.dispose()

        asyncio.run(make())
        _TEMPLATE = folder / "template.sqlite3"
    return _TEMPLATE


def run_import(data: bytes) -> tuple[directory.ImportResult | InvalidInput, list[tuple[str, ...]]]:
    """Import into a fresh copy of the database: the result (or the error) and the users table."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cti.sqlite3"
        shutil.copy(template(), db)

        async def go() -> directory.ImportResult | InvalidInput:
            engine = create_engine(f"sqlite+aiosqlite:///{db}")
            try:
                async with session_maker(engine).begin() as session:
                    try:
                        result = await directory.import_users(
                            session, data, by="fuzz", now=NOW, plan=PLAN
                        )
                    except InvalidInput as exc:
                        await session.rollback()
                        return exc
                    if result.errors:
                        await session.rollback()  # as `cti user import` and the page do
                    return result
            finally:
                await engine.dispose()

        outcome = asyncio.run(go())
        con = sqlite3.connect(db)
        try:
            rows = con.execute(f"SELECT {', '.join(FIELDS)} FROM users ORDER BY id").fetchall()
        finally:
            con.close()
    return outcome, rows


LIMITS = {f: User.__table__.c[f].type.length for f in FIELDS}

# -- rows whose validity is known by construction ----------------------------------------------------

safe_text = st.text(
    alphabet=st.one_of(st.characters(whitelist_categories=["L", "N"]), st.sampled_from(" ·-'")),
    min_size=1,
    max_size=20,
).filter(lambda t: t.strip() == t and t)
phones = st.sampled_from(["", "13800138000", "010-6234-5678", "1002", "+8613712345678"])
emails = st.sampled_from(["", "zhangsan@example.com", "li.si+desk@example.com.cn"])
FORMULAS = ["=1+1", "+86 10", "-2", "@SUM(A1)", '=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0"]


@st.composite
def valid_row(draw: st.DrawFn, number: int) -> dict[str, str]:
    return {
        "employee_no": f"E{number}",
        "name": draw(st.one_of(safe_text, st.sampled_from(FORMULAS), st.just("张三"))),
        "department": draw(st.one_of(st.just(""), safe_text, st.sampled_from(FORMULAS))),
        "location": draw(st.one_of(st.just(""), safe_text, st.just('3楼, "东"区'))),
        "office_phone": draw(phones),
        "mobile": draw(phones),
        "email": draw(emails),
    }


BAD = {
    "no_name": lambda r: r | {"name": ""},
    "bad_employee_no": lambda r: r | {"employee_no": "10 086"},
    "bad_email": lambda r: r | {"email": "not-an-email"},
    "bad_mobile": lambda r: r | {"mobile": "12"},
    "name_over_its_column": lambda r: r | {"name": "名" * (LIMITS["name"] + 1)},
    "phone_over_its_column": lambda r: r | {"mobile": "1" * 11 + "/13800138000" * 5},
    "multi_line_name": lambda r: r | {"name": "张\n三"},
    "control_character": lambda r: r | {"department": "IT\x00"},
    "tab": lambda r: r | {"location": "a\tb"},
}


@st.composite
def spreadsheet(draw: st.DrawFn) -> tuple[str, list[int], int]:
    """A CSV text, the lines where its bad records start, and how many good rows it has."""
    columns = draw(st.permutations(FIELDS))
    header = [draw(st.sampled_from([c, *[a for a, f in directory.ALIASES.items() if f == c]]))
              for c in columns]  # fmt: skip
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(header)
    bad_lines: list[int] = []
    good = 0
    seen: list[str] = []
    for i in range(draw(st.integers(0, 8))):
        if draw(st.integers(0, 9)) == 0:
            out.write(terminator)  # a blank line, which the reader skips
        line = out.getvalue().count("\n") + 1
        row = draw(valid_row(i))
        kind = draw(st.sampled_from(["good"] * 4 + [*BAD, "repeated_employee_no"]))
        if kind == "repeated_employee_no" and seen:
            row["employee_no"] = draw(st.sampled_from(seen))
        elif kind in BAD:
            row = BAD[kind](row)
        else:
            kind = "good"
        if kind == "good":
            good += 1
            seen.append(row["employee_no"])
        else:
            bad_lines.append(line)
        writer.writerow([row[c] for c in columns])
    return out.getvalue(), bad_lines, good


def encode(text: str, how: str) -> bytes:
    return {"utf-8": text.encode(), "bom": b"\xef\xbb\xbf" + text.encode(), "gb18030": text.encode("gb18030")}[how]  # fmt: skip


def error_lines(errors: list[str]) -> list[int]:
    lines = []
    for e in errors:
        m = re.match(r"line (\d+): \S", e)
        assert m, f"an error that names no line: {e!r}"
        lines.append(int(m.group(1)))
    return lines


@budget(40)
@given(sheet=spreadsheet(), how=st.sampled_from(["utf-8", "bom", "gb18030"]))
def test_every_bad_record_is_named_by_its_line_and_nothing_is_half_imported(
    sheet: tuple[str, list[int], int], how: str
) -> None:
    text, bad_lines, good = sheet
    outcome, rows = run_import(encode(text, how))
    assert isinstance(outcome, directory.ImportResult), repr(outcome)
    assert error_lines(outcome.errors) == bad_lines, outcome.errors
    if bad_lines:
        assert rows == [], "an import with errors wrote something"
        return
    assert len(rows) == good == outcome.created
    wanted = list(csv.reader(io.StringIO(text)))[1:]
    assert sorted(map(sorted, rows)) == sorted(sorted(r) for r in wanted if r)  # verbatim
    for row in rows:
        for name, value in zip(FIELDS, row, strict=True):
            assert len(value) <= LIMITS[name], (name, len(value))


cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from([*FORMULAS, '"', '""', 'a"b', "\n", "\r", "\r\n", "\x00", "1e5", "10086"]),
    st.just("x" * 140_000),  # past the csv module's field limit
)
column = st.one_of(st.sampled_from(FIELDS + ALIASES), st.text(max_size=10))


@budget(60)
@given(
    header=st.one_of(
        st.permutations(FIELDS).map(list),  # a good header, so the rows get read
        st.permutations(FIELDS).map(lambda f: f[:3]),
        st.permutations(FIELDS).map(lambda f: [*f, f[1]]),  # a column twice
        st.permutations(FIELDS).map(lambda f: [*f, "手机"]),  # a column and its alias
        st.lists(column, max_size=9),
    ),
    rows=st.lists(st.lists(cell, max_size=10), max_size=5),
    how=st.sampled_from(["utf-8", "bom", "gb18030", "raw"]),
    junk=st.binary(max_size=30),
)
def test_any_spreadsheet_gives_a_result_or_a_clear_error_and_is_all_or_nothing(
    header: list[str], rows: list[list[str]], how: str, junk: bytes
) -> None:
    if how == "raw":  # no CSV quoting at all, and maybe bytes that are no text
        data = ("\n".join(",".join(r) for r in [header, *rows])).encode() + junk
    else:
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        data = encode(out.getvalue(), how)
    outcome, stored = run_import(data)
    if isinstance(outcome, InvalidInput):
        assert re.match(r"line \d+: \S", str(outcome)), str(outcome)
        assert stored == []
        return
    error_lines(outcome.errors)
    if outcome.errors:
        assert stored == []
    else:
        assert len(stored) == outcome.created
        for row in stored:
            for name, value in zip(FIELDS, row, strict=True):
                assert len(value) <= LIMITS[name], (name, len(value))


@budget(40)
@given(
    header=st.one_of(
        st.permutations(FIELDS).map(list),
        st.permutations(FIELDS).map(lambda f: [*f, f[1]]),  # a column twice
        st.permutations(FIELDS).map(lambda f: [*f, "手机"]),  # a column and its alias
    ),
    count=st.integers(1, 4),
    extra=st.booleans(),
    data=st.data(),
)
def test_good_rows_under_any_header_lose_nothing(
    header: list[str], count: int, extra: bool, data: st.DataObject
) -> None:
    known = [directory.ALIASES.get(h, h) for h in header]
    rows = []
    for i in range(count):
        good = data.draw(valid_row(i))
        # A repeated column gets a value of its own, so losing either one shows.
        rows.append([good[k] if k not in known[:j] else data.draw(safe_text)
                     for j, k in enumerate(known)])  # fmt: skip
    if extra:
        rows[-1].append(data.draw(safe_text))  # a cell past the last column
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    outcome, stored = run_import(out.getvalue().encode())
    assert isinstance(outcome, directory.ImportResult)
    error_lines(outcome.errors)
    if not outcome.errors:
        cells = {c for r in rows for c in r if c}
        assert cells <= {v for row in stored for v in row}, "a cell of the file was lost"


def fuzz_one(data: bytes) -> None:
    """One atheris input: a file's bytes through the decoder and the CSV parser."""
    try:
        text = directory.decode_csv(data)
    except InvalidInput:
        return
    _, errors = directory.parse_csv(text, PLAN)
    error_lines(errors)


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[1] / "fixtures" / "users.csv"
    atheris_main(
        fuzz_one,
        [here.read_bytes(), here.read_text().encode("gb18030")],
        [directory, phone],
    )
