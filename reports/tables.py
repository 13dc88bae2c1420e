"""Appendix A exports: Table A.1, the user request log (热线帮助用户请求记录), and Table A.2,
the desk staff contact list (热线帮助人员联系表), as CSV or XLSX (cells as reports/cells.py
makes them: text people typed never becomes a formula)."""

import csv
import io
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from desk.i18n import NC_, Msg, translate
from desk.models import Incident, Staff
from reports.cells import append_xlsx_row, csv_row

# Column headings in both languages, "编号 Number": the tables are the standard's own forms.
A1: tuple[Msg, ...] = (
    NC_("Table A.1", "Number"),
    NC_("Table A.1", "Time"),
    NC_("Table A.1", "Channel"),
    NC_("Table A.1", "Requester"),
    NC_("Table A.1", "Department"),
    NC_("Table A.1", "Location"),
    NC_("Table A.1", "Phone"),
    NC_("Table A.1", "E-mail"),
    NC_("Table A.1", "Type"),
    NC_("Table A.1", "Category"),
    NC_("Table A.1", "Symptom"),
    NC_("Table A.1", "Priority"),
    NC_("Table A.1", "State"),
    NC_("Table A.1", "Recorded by"),
    NC_("Table A.1", "Assignee"),
    NC_("Table A.1", "Escalated to"),
    NC_("Table A.1", "Resolved"),
    NC_("Table A.1", "Closed"),
    NC_("Table A.1", "Satisfaction"),
)
A2: tuple[Msg, ...] = (
    NC_("Table A.2", "Name"),
    NC_("Table A.2", "Position"),
    NC_("Table A.2", "Services"),
    NC_("Table A.2", "Office phone"),
    NC_("Table A.2", "Mobile"),
    NC_("Table A.2", "E-mail"),
    NC_("Table A.2", "IM"),
    NC_("Table A.2", "Extension"),
    NC_("Table A.2", "Role"),
)


def _iso(dt: datetime | None, tz: Any) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M") if dt else ""


async def request_log(
    session: AsyncSession, start: datetime, end: datetime, tz: Any
) -> list[list[Any]]:
    """Table A.1 rows for requests recorded in [start, end)."""
    rows = await session.scalars(
        select(Incident)
        .where(Incident.created_at >= start, Incident.created_at < end)
        .order_by(Incident.created_at)
    )
    return [
        [
            i.number,
            _iso(i.created_at, tz),
            i.channel,
            i.requester_name,
            i.requester_department,
            i.requester_location,
            i.requester_mobile or i.requester_office_phone or i.caller_number,
            i.requester_email,
            i.type,
            i.category,
            i.symptom,
            i.priority,
            i.state,
            i.recorded_by,
            i.assignee or "",
            i.escalated_to or "",
            _iso(i.resolved_at, tz),
            _iso(i.closed_at, tz),
            i.satisfaction or "",
        ]
        for i in rows.all()
    ]


async def staff_list(session: AsyncSession) -> list[list[Any]]:
    """Table A.2 rows: every active member of staff."""
    rows = await session.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.name))
    return [
        [
            s.name,
            s.position,
            s.services,
            s.office_phone,
            s.mobile,
            s.email,
            s.im_handle,
            s.extension or "",
            s.role,
        ]
        for s in rows.all()
    ]


def headings(columns: tuple[Msg, ...]) -> list[str]:
    """A table's column headings, Mandarin then English."""
    return [f"{translate('zh', c)} {translate('en', c)}" for c in columns]


def table_bytes(columns: tuple[Msg, ...], rows: list[list[Any]], fmt: str) -> bytes:
    """The table as CSV (UTF-8 with BOM) or XLSX."""
    header = headings(columns)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(csv_row(row) for row in rows)
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
    if fmt == "xlsx":
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(header)
        for row in rows:
            append_xlsx_row(ws, row)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    raise ValueError("format must be csv or xlsx")
