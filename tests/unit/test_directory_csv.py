"""The user CSV reader on its own: regressions the fuzzers found (tests/fuzz/test_user_csv.py)."""

from cti.phone import NumberPlan
from desk.directory import parse_csv

PLAN = NumberPlan(area_code="10")
HEADER = "employee_no,name,department,location,office_phone,mobile,email\n"


def errors(text: str) -> list[str]:
    return parse_csv(text, PLAN)[1]


def test_errors_name_the_line_after_blank_lines_and_multi_line_cells() -> None:
    # Found by the fuzzer: with a blank line before it, the record on line 3 was named line 2
    # (records were counted, not lines).
    assert errors(HEADER + "\nE0,,,,,,\n") == ["line 3: name is required"]
    text = HEADER + 'E1,"Zhang, San",IT,"Block A\nFloor 3",,,\nE2,,,,,,\n'
    assert [e.split(":")[0] for e in errors(text)] == ["line 4"]
