"""CDR rows as the table hands them over, fed hostile values: the row reader and the folding into
calls never raise, and what they make is a call a report can use.

Properties: `_record` gives None or a record whose times a report can turn into dates, with its
end not before its start; `cdr_calls` yields only channels the dialplan marked, one per Uniqueid,
each spanning its rows; a call made from it (`call_from_cdr`) becomes a journal row.

Long run: `CTI_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz/test_cdr.py`.
"""

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cti.cdr import _record, caller_name, cdr_calls
from cti.reconcile import call_from_cdr
from tests.fuzz.budget import budget

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
a_time = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**63),
    st.decimals(allow_nan=False, allow_infinity=False).map(Decimal),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    text,
    st.sampled_from(["2027-01-15 08:00:00", "0000-00-00 00:00:00", "", "1970-01-01"]),
)
a_row = st.tuples(
    st.integers(1, 2**40),
    st.sampled_from(["c1", "c2", "c1-c", ""]) | text,
    st.sampled_from(["c1", "c2", ""]) | text,
    a_time,
    a_time,
    a_time,
    text,
    text,
    text,
    text,
    st.sampled_from(["inbound", "callback", ""]) | text,
    text,
    text,
    st.sampled_from(["JOINEMPTY", "TIMEOUT", "FULL", "CONTINUE", ""]) | text,
)


@budget(300)
@given(st.lists(a_row, max_size=8))
def test_rows_never_raise_and_calls_are_usable(rows: list[tuple[object, ...]]) -> None:
    records = [r for r in (_record(row) for row in rows) if r is not None]
    for r in records:
        assert r.uniqueid and r.start <= r.end
        datetime.fromtimestamp(r.end, UTC)  # a date a report can show
    calls = cdr_calls(records)
    assert set(calls) == {r.uniqueid for r in records if r.entry}
    for uid, call in calls.items():
        mine = [r for r in records if r.uniqueid == uid]
        assert call.started == min(r.start for r in mine)
        assert call.ended == max(r.end for r in mine)
        row = call_from_cdr(call).to_row(call.ended)
        assert row["uniqueid"] == uid and row["source"] == "reconciled" and row["outcome"]


@budget(300)
@given(text)
def test_caller_name_never_raises(clid: str) -> None:
    assert len(caller_name(clid)) <= len(clid)
