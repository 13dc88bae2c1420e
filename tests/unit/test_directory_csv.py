"""The user CSV reader on its own: regressions the fuzzers found (tests/fuzz/test_user_csv.py)."""

import pytest

from cti.errors import InvalidInput
from cti.phone import NumberPlan
from desk.directory import decode_csv, parse_csv

PLAN = NumberPlan(area_code="10")
HEADER = "employee_no,name,department,location,office_phone,mobile,email\n"


def errors(text: str) -> list[str]:
    return parse_csv(text, PLAN)[1]


def test_errors_name_the_line_after_blank_lines_and_multi_line_cells() -> None:
    # Found by the fuzzer: with a blank line before it, the record on line 3 was named line 2
    # (records were counted, not lines).
    assert errors(HEADER + "\nE0,,,,,,\n") == ["line 3: name is required"]
    text = HEADER + 'E1,"Zhang, San",IT,"Block A\nFloor 3",,,\nE2,,,,,,\n'
    # (A line break in a cell is an error of its own since; the next record is still line 4.)
    assert [e.split(":")[0] for e in errors(text)] == ["line 2", "line 4"]


def test_a_cell_over_the_csv_field_limit_is_an_error_naming_its_line() -> None:
    # Found by the fuzzer: a 140,000-character cell raised _csv.Error out of the import.
    huge = "x" * 140_000
    assert errors(HEADER + f"E1,{huge},,,,,\n") == [
        "line 2: field larger than field limit (131072); the rest of the file was not read"
    ]
    assert errors(f"employee_no,{huge}\n") == ["line 1: field larger than field limit (131072)"]


def test_a_bare_carriage_return_is_a_line_break() -> None:
    # Found by the fuzzer: b'\r\x00' raised "_csv.Error: new-line character seen in unquoted
    # field"; files saved with old Mac line endings failed the same way.
    assert errors("\r\x00") == ["line 1: a column employee_no is required"]
    rows, errs = parse_csv(HEADER.replace("\n", "\r") + "E1,张三,,,,,\rE2,,,,,,\r", PLAN)
    assert [r["employee_no"] for r in rows] == ["E1", "E2"]
    assert errs == ["line 3: name is required"]


def test_values_must_fit_their_columns() -> None:
    # Found by the fuzzer: a 121-character name (the column is VARCHAR(120)) and a 71-character
    # mobile field (VARCHAR(60)) passed, being under the one 200-character check.
    name = "名" * 121
    assert errors(HEADER + f"E1,{name},,,,,\n") == ["line 2: name is longer than 120 characters"]
    mobile = "/".join(["13800138000"] * 6)
    assert errors(HEADER + f"E1,张三,,,,{mobile},\n") == [
        "line 2: mobile is longer than 60 characters"
    ]
    assert errors(HEADER + f"E1,{name[:120]},,,,{mobile[:47]},\n") == []


def test_a_cell_with_a_line_break_or_control_character_is_an_error() -> None:
    # Found by the fuzzer: the name "张\n三" (a quoted cell over two lines), "IT\x00" and a tab
    # were imported as they were.
    assert errors(HEADER + 'E0,"张\n三",,,,,\n') == [
        "line 2: name contains a line break or a control character"
    ]
    assert errors(HEADER + "E0,张三,IT\x00,a\tb,,,\n") == [
        "line 2: department contains a line break or a control character; "
        "location contains a line break or a control character"
    ]
    assert errors(HEADER + 'E0,"=HYPERLINK(""http://x"",""y"")",-2,@SUM(A1),,,\n') == []


def test_a_file_that_is_no_text_names_the_line() -> None:
    # Found by the fuzzer: b'\x80' gave "the file is neither UTF-8 nor GB18030 text" with no line.
    with pytest.raises(InvalidInput, match=r"^line 1: the file is neither UTF-8 nor GB18030"):
        decode_csv(b"\x80")
    with pytest.raises(InvalidInput, match=r"^line 3: "):
        decode_csv(HEADER.encode() + "E1,张三\n".encode() + b"E2,\x80\xff\n")
    assert decode_csv("工号,姓名\n".encode("gb18030")) == "工号,姓名\n"


def test_a_cell_past_the_last_column_is_an_error() -> None:
    # Found by the fuzzer: a good row with one cell more ('0') was imported and the cell dropped;
    # an unquoted comma in a name shifts the rest of the row the same way.
    assert errors(HEADER + "E0,张三,,,,,,0\n") == ["line 2: 8 cells, but the header has 7 columns"]
    assert errors(HEADER + "E0,张三,,,,,,\n") == []  # an empty cell too many loses nothing


def test_a_column_given_twice_is_an_error() -> None:
    # Found by the fuzzer: with 'name' twice in the header, the later column silently won and
    # the earlier one's names were lost; a column next to its alias (手机 and mobile) the same.
    assert errors("employee_no,name,department,name\nE1,张三,IT,李四\n") == [
        "line 1: columns given twice: name (or with their alias)"
    ]
    assert errors("工号,姓名,手机,mobile\nE1,张三,13800138000,\n") == [
        "line 1: columns given twice: mobile (or with their alias)"
    ]
