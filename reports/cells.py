"""Spreadsheet cells from text people typed: the portal is open to anyone, so a requester's name,
a symptom or a category may be written to become a formula when a lead opens the export
(`=HYPERLINK(...)`, `+cmd|...`: OWASP's "CSV injection"), and may hold control characters that
XML, and so XLSX, cannot carry.

- CSV: text starting with = + - @ tab or CR gets a leading apostrophe, which spreadsheet
  programs show instead of evaluating what follows (a plain number such as -5 is left alone).
- XLSX: such text is written as a string cell marked "quote prefix", Excel's own way of saying
  "typed as text"; the text itself is kept. Characters XLSX cannot hold become U+FFFD.
"""

import re
from collections.abc import Iterable
from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _formula_like(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and value != "-"
        and not _NUMBER.fullmatch(value)
    )


def csv_row(values: Iterable[Any]) -> list[Any]:
    """A row for csv.writer, with formula-like text neutralised."""
    return ["'" + v if _formula_like(v) else v for v in values]


def append_xlsx_row(sheet: Worksheet, values: Iterable[Any]) -> None:
    """Append a row: text is only ever text, and never fails the file."""
    row = [ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for v in values]
    sheet.append(row)
    if not row:
        return
    for cell in sheet[sheet.max_row]:
        if _formula_like(cell.value):
            cell.data_type = "s"  # openpyxl made "=..." a formula when it was appended
            cell.quotePrefix = True
