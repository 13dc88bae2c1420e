"""Settings the lead edits in the browser, kept as documents in `desk_settings`: the opening
hours and the routing configuration. One row per name; a write is one transaction with its
audit entry."""

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
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
    """Store a document in place of the previous one: one INSERT ... ON CONFLICT DO UPDATE, so
    two first saves at once cannot both insert."""
    dialect = session.get_bind().dialect.name
    ins = postgresql.insert(DeskSetting) if dialect == "postgresql" else sqlite.insert(DeskSetting)
    fields = {"value": value, "updated_at": now, "updated_by": by}
    await session.execute(
        ins.values(name=name, **fields).on_conflict_do_update(index_elements=["name"], set_=fields)
    )
    row = await session.get(DeskSetting, name, populate_existing=True)
    assert row is not None
    return row
