"""Appendix A exports: Table A.1, the user request log (热线帮助用户请求记录), and Table A.2,
the desk staff contact list (热线帮助人员联系表), as CSV or XLSX."""

import csv
import io
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from desk.models import Incident, Staff

A1: tuple[str, ...] = (
    "编号 Number",
    "时间 Time",
    "渠道 Channel",
    "请求人 Requester",
    "部门 Department",
    "位置 Location",
    "电话 Phone",
    "电子邮件 E-mail",
    "类型 Type",
    "类别 Category",
    "现象 Symptom",
    "优先级 Priority",
    "状态 State",
    "记录人 Recorded by",
    "处理人 Assignee",
    "升级至 Escalated to",
    "解决时间 Resolved",
    "关闭时间 Closed",
    "满意度 Satisfaction",
)
A2: tuple[str, ...] = (
    "姓名 Name",
    "职务 Position",
    "负责的服务 Services",
    "办公电话 Office phone",
    "手机 Mobile",
    "电子邮件 E-mail",
    "即时通讯 IM",
    "分机 Extension",
    "角色 Role",
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


def table_bytes(header: tuple[str, ...], rows: list[list[Any]], fmt: str) -> bytes:
    """The table as CSV (UTF-8 with BOM) or XLSX."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        return ("\ufeff" + buf.getvalue()).encode("utf-8")
    if fmt == "xlsx":
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(list(header))
        for row in rows:
            ws.append(row)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    raise ValueError("format must be csv or xlsx")
