"""queue_log lines and the incremental reader, fed hostile lines and files cut anywhere.

Properties: `parse_line` never raises and gives a time a report can use or None; good lines read
back as written; in a file of good lines mixed with bad ones (random fields, non-UTF-8 bytes,
inf/nan/huge/negative times, wrong field counts, line-separator-like characters) exactly the good
lines come out, in order, and the bad ones are counted; reading a file as it grows, cut anywhere
(mid-line, mid-character), gives the same entries as reading it once; after a rotation or a
truncation no fragment of a line comes out as an entry.

Long run: `CTI_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz/test_queue_log.py`, or
`python -m tests.fuzz.test_queue_log -atheris_runs=500000`.
"""

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cti import queuelog
from cti.queuelog import QueueLogEntry, QueueLogReader, parse_line
from tests.fuzz.budget import atheris_main, budget
from tests.support.replay import FIXTURES

# Characters str.splitlines() breaks at besides \n and \r; a field may contain any of them.
SEPARATOR_LIKE = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
field_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_characters="|\r\n", blacklist_categories=["Cs"]),
        st.sampled_from(SEPARATOR_LIKE),
    ),
    max_size=12,
)
EVENTS = ["ENTERQUEUE", "CONNECT", "COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "RINGNOANSWER"]


@st.composite
def good_line(draw: st.DrawFn) -> tuple[bytes, QueueLogEntry]:
    """A line as Asterisk writes it, and the entry it must read back as."""
    when = draw(st.integers(0, 2**32))
    callid, queue, agent = draw(field_text), draw(field_text), draw(field_text)
    event = draw(st.one_of(st.sampled_from(EVENTS), field_text))
    data = tuple(draw(st.lists(field_text, max_size=5)))
    text = "|".join([str(when), callid, queue, agent, event, *data])
    return text.encode() + b"\n", QueueLogEntry(when, callid, queue, agent, event, data)


odd_time = st.sampled_from(
    ["inf", "-inf", "nan", "1e400", "1e300", "-1", "-1795637294", "9" * 5000, "", "x", "0x10"]
)
bad_line = st.one_of(
    # A good line's fields under a time that is not one.
    st.tuples(odd_time, good_line()).map(lambda t: t[0].encode() + t[1][0][t[1][0].index(b"|") :]),
    # Too few fields.
    st.lists(field_text, max_size=4).map(lambda f: "|".join(f).encode() + b"\n"),
    # Random bytes, non-UTF-8 included (the rare well-formed line left out).
    st.binary(max_size=60)
    .map(lambda b: b.replace(b"\n", b"") + b"\n")
    .filter(lambda b: parse_line(b.decode("utf-8", "replace")) is None),
)


def read_once(path: Path) -> tuple[list[QueueLogEntry], QueueLogReader]:
    reader = QueueLogReader(path)
    entries, _ = reader.read_since(None)
    return entries, reader


@budget(300)
@given(line=st.one_of(st.text(), bad_line.map(lambda b: b.decode("utf-8", "replace"))))
def test_parse_line_never_raises_and_gives_a_usable_time(line: str) -> None:
    entry = parse_line(line)
    if entry is not None:
        assert isinstance(entry.time, int)
        datetime.fromtimestamp(entry.time, UTC)  # what the reports do with it
        assert entry.time >= 0


@budget(200)
@given(line=good_line())
def test_good_lines_read_back_as_written(line: tuple[bytes, QueueLogEntry]) -> None:
    assert parse_line(line[0].decode()) == line[1]


@budget(60)
@given(lines=st.lists(st.one_of(good_line(), bad_line.map(lambda b: (b, None))), max_size=30))
def test_good_lines_come_out_in_order_and_bad_ones_are_counted(
    lines: list[tuple[bytes, QueueLogEntry | None]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "queue_log"
        path.write_bytes(b"".join(raw for raw, _ in lines))
        entries, reader = read_once(path)
    assert entries == [e for _, e in lines if e is not None]
    bad = [raw for raw, e in lines if e is None and raw.decode("utf-8", "replace").strip()]
    assert reader.malformed == len(bad)


@budget(100)
@given(
    lines=st.lists(st.one_of(good_line(), bad_line.map(lambda b: (b, None))), max_size=20),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_reading_a_growing_file_cut_anywhere_gives_the_same_entries(
    lines: list[tuple[bytes, QueueLogEntry | None]], cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "queue_log"
        path.write_bytes(b"")
        reader = QueueLogReader(path)
        got: list[QueueLogEntry] = []
        pos = None
        written = 0
        for cut in sorted({min(c, len(data)) for c in cuts} | {len(data)}):
            with path.open("ab") as fh:
                fh.write(data[written:cut])
            written = cut
            entries, pos = reader.read_since(pos)
            got += entries
    assert got == [e for _, e in lines if e is not None]
    assert pos is not None and pos.offset == len(data)


@budget(40)
@given(
    first=st.lists(good_line(), min_size=1, max_size=8),
    second=st.lists(good_line(), min_size=1, max_size=12),
    how=st.sampled_from(["rotate", "truncate", "truncate_and_grow"]),
)
def test_no_fragment_of_a_line_comes_out_after_a_rotation_or_truncation(
    first: list[tuple[bytes, QueueLogEntry]], second: list[tuple[bytes, QueueLogEntry]], how: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "queue_log"
        path.write_bytes(b"".join(raw for raw, _ in first))
        reader = QueueLogReader(path)
        entries, pos = reader.read_since(None)
        assert entries == [e for _, e in first]
        new = b"".join(raw for raw, _ in second)
        if how == "rotate":
            os.rename(path, Path(tmp) / "queue_log.1")
            path.write_bytes(new)
        elif how == "truncate":  # logrotate's copytruncate, then Asterisk writes on
            with path.open("r+b") as fh:
                fh.truncate(0)
                fh.write(new)
        else:  # the same, and the new lines already run past where we stopped
            with path.open("r+b") as fh:
                fh.truncate(0)
                fh.write(new * (1 + (pos.offset if pos else 0) // max(1, len(new))))
        after, _ = reader.read_since(pos)
    known = [e for _, e in first + second]
    assert all(e in known for e in after), "a fragment of a line was read as an entry"
    if how == "rotate":
        assert after == [e for _, e in second]


def fuzz_one(data: bytes) -> None:
    """One atheris input: a queue_log file's bytes, read once and line by line."""
    for line in data.split(b"\n"):
        entry = parse_line(line.decode("utf-8", errors="replace"))
        if entry is not None:
            datetime.fromtimestamp(entry.time, UTC)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "queue_log"
        path.write_bytes(data)
        entries, pos = QueueLogReader(path).read_since(None)
    assert pos is not None and pos.offset == data.rfind(b"\n") + 1
    assert len(entries) <= data.count(b"\n")


if __name__ == "__main__":
    atheris_main(
        fuzz_one,
        [p.read_bytes()[:4000] for p in sorted(FIXTURES.glob("*.queue_log"))],
        [queuelog],
    )
