"""Reports and exports against what an attacker can put in them, on the running server: a queue
name that climbs out of the archive, spreadsheet formulas and control characters typed into the
unauthenticated portal, and a queue_log that is huge or has a garbled line."""

import csv
import io
import tracemalloc
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from openpyxl import load_workbook

from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 20)
LO = datetime.combine(DAY, time(), TZ).timestamp()

# What a portal user may type, as spreadsheet programs would read it (OWASP's list).
FORMULAS = ['=HYPERLINK("http://evil.example/","details")', "+1+cmd|' /C calc'!A0", "-2+3",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]  # fmt: skip


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "queue", ["/../../../../escaped", "../../escaped", "a/b", "..", "/etc/x", "help desk", "队列"]
)
async def test_a_report_queue_cannot_name_a_path(tmp_path: Path, queue: str) -> None:
    data = tmp_path / "data"
    async with (
        desk_server(data, CTI_DATA_DIR=str(data)) as server,
        from_address(server, "127.0.0.2") as lead,
    ):
        await add_staff(server.app, "lead1", "lead")
        await login(lead, "lead1")
        before = _files(tmp_path)
        body = {"kind": "daily", "date": DAY.isoformat(), "formats": ["csv"], "queue": queue}
        r = await lead.post("/api/reports", json=body)
        assert r.status == 400 and "queue" in (await r.json())["message"], await r.text()
        r = await lead.get("/reports/view", params={"kind": "daily", "date": DAY.isoformat(),
                                                    "format": "csv", "queue": queue})  # fmt: skip
        assert r.status == 400
        written = _files(tmp_path) - before
        assert not [p for p in written if not p.name.startswith("cti.sqlite3")], written
        # A real queue name still works, and stays inside the archive.
        body["queue"] = "helpdesk"
        r = await lead.post("/api/reports", json=body)
        assert r.status == 201
        (name,) = (await r.json())["files"]
        assert name == f"/reports/files/daily/{DAY}_helpdesk_zh.csv"


async def _portal_requests(server: object, texts: list[str]) -> None:
    async with from_address(server, "127.0.0.3") as user:  # type: ignore[arg-type]
        for i, text in enumerate(texts):
            body = {
                "type": "fault",
                "symptom": text,
                "phone": f"1391234{i:04d}",
                "name": text[:100],
            }
            r = await user.post("/portal/api/requests", json=body)
            assert r.status == 201, await r.text()


def _dangerous(cell: object) -> bool:
    return isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r")


def _no_formulas(cells: list[Any]) -> None:
    """XLSX: no formula cell; formula-like text is a string cell marked as typed text (quote
    prefix), kept as typed; characters XLSX cannot hold are replaced, not fatal."""
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert not [c.coordinate for c in cells if _dangerous(c.value) and not c.quotePrefix]
    assert any(c.value == FORMULAS[0] and c.quotePrefix for c in cells)
    assert any(isinstance(c.value, str) and c.value.startswith("bell\ufffd") for c in cells)


async def test_exports_keep_portal_text_from_becoming_formulas(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _portal_requests(server, [*FORMULAS, "bell\x07 and \x1b escape"])
        await add_staff(server.app, "lead1", "lead")
        await login(lead, "lead1")
        today = datetime.now(TZ).date().isoformat()
        r = await lead.get("/api/exports/requests", params={"since": today, "format": "csv"})
        assert r.status == 200
        rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
        cells = [c for row in rows[1:] for c in row]
        assert not [c for c in cells if _dangerous(c)]
        for text in FORMULAS:  # still there, to be read, as text (fields are stripped)
            assert "'" + text.strip() in cells, text
        r = await lead.get("/api/exports/requests", params={"since": today, "format": "xlsx"})
        assert r.status == 200, await r.text()
        sheet = load_workbook(io.BytesIO(await r.read())).active
        assert sheet is not None
        _no_formulas([c for row in sheet.iter_rows(min_row=2) for c in row])


async def test_reports_keep_portal_text_from_becoming_formulas(tmp_path: Path) -> None:
    """The daily report lists unresolved incidents with their requesters, who may have typed a
    formula as their name on the portal; and one control character used to fail the XLSX."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _portal_requests(server, [*FORMULAS, "bell\x07 and \x1b escape"])
        await add_staff(server.app, "lead1", "lead")
        await login(lead, "lead1")
        today = datetime.now(TZ).date().isoformat()
        params = {"kind": "daily", "date": today, "format": "csv"}
        r = await lead.get("/reports/view", params=params)
        assert r.status == 200
        cells = [
            c for row in csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))) for c in row
        ]
        assert "'" + FORMULAS[1][:100] in cells
        assert not [c for c in cells if _dangerous(c)]
        r = await lead.get("/reports/view", params={**params, "format": "xlsx"})
        assert r.status == 200, await r.text()
        book = load_workbook(io.BytesIO(await r.read()))
        _no_formulas([c for ws in book.worksheets for row in ws.iter_rows() for c in row])


def _line(at: float, callid: str, event: str = "ENTERQUEUE") -> str:
    return f"{int(at)}|{callid}|helpdesk|NONE|{event}||13800138000|1\n"


async def _coverage(lead: aiohttp.ClientSession) -> dict[str, str]:
    r = await lead.get(
        "/reports/view", params={"kind": "daily", "date": DAY.isoformat(), "format": "csv"}
    )
    assert r.status == 200, await r.text()
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    start = rows.index(["# coverage"])
    return {row[0]: row[1] for row in rows[start + 2 :] if len(row) == 2}


async def test_one_bad_queue_log_line_does_not_break_reports(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    lines = [_line(LO + 60 * i, f"c{i}") for i in range(5)]
    lines[2:2] = ["inf|x|helpdesk|NONE|ENTERQUEUE||1|1\n", "nan|y|helpdesk|NONE|ENTERQUEUE||1|1\n",
                  "1e400|z|helpdesk|NONE|ENTERQUEUE\n", "-inf|w|q|a|ENTERQUEUE\n",
                  "99999999999999999999|v|q|a|ENTERQUEUE\n", "garbage\n"]  # fmt: skip
    log.write_text("".join(lines))
    async with (
        desk_server(tmp_path, CTI_QUEUE_LOG_PATH=str(log)) as server,
        from_address(server, "127.0.0.2") as lead,
    ):
        await add_staff(server.app, "lead1", "lead")
        await login(lead, "lead1")
        coverage = await _coverage(lead)
        assert coverage["queue_log_offered"] == "5"
        assert coverage["queue_log_unreadable"] == "6"
        r = await lead.get(
            "/reports/view", params={"kind": "daily", "date": DAY.isoformat(), "format": "html"}
        )
        assert r.status == 200 and "queue_log" in await r.text()


async def test_a_large_queue_log_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A year of queue_log (here ~35 MB before the report's day, some lines after it): the
    report's coverage reads a bounded amount of it, measured as the Python heap's peak while the
    report is made (the whole file held as text and entries would cost several times its size)."""
    log = tmp_path / "queue_log"
    with log.open("w") as fh:
        day_before = LO - 86400 * 365
        for i in range(500_000):
            fh.write(_line(day_before + i * 60, f"old-{i}-1764000000.{i}"))
        for i in range(30):
            fh.write(_line(LO + 600 * i, f"day-{i}"))
            fh.write(_line(LO + 600 * i + 5, f"day-{i}", "CONNECT"))
        for i in range(1000):
            fh.write(_line(LO + 86400 + i * 60, f"after-{i}"))
    assert log.stat().st_size > 30_000_000
    async with (
        desk_server(tmp_path, CTI_QUEUE_LOG_PATH=str(log)) as server,
        from_address(server, "127.0.0.2") as lead,
    ):
        await add_staff(server.app, "lead1", "lead")
        await login(lead, "lead1")
        tracemalloc.start()
        try:
            coverage = await _coverage(lead)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert coverage["queue_log_offered"] == "30"
        assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB"
