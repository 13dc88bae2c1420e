"""Settings the lead edits in the browser, kept as documents in `desk_settings`: the opening
hours and the routing configuration. One row per name; a write is one transaction with its
audit entry."""

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from desk.models import DeskSetting

HOURS = "hours"
ROUTING = "routing"


async def get(session: AsyncSession, name: str) -> DeskSetting | None:
    """The stored document, if the lead (or the first start) wrote one."""
    return await session.get(DeskSetting, name)


async def put(
    session: AsyncSession, name: str, value: dict[str, Any], by: str, now: datetime
) -> DeskSetting:
    """Store a document in place of the previous one."""
    row = await session.get(DeskSetting, name)
    if row is None:
        row = DeskSetting(name=name, value=value, updated_at=now, updated_by=by)
        session.add(row)
    else:
        row.value, row.updated_at, row.updated_by = value, now, by
    await session.flush()
    return row
