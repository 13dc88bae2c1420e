"""Alerts about incidents on the staff pages: a new voicemail to the whole desk, an incident
assigned to an agent, and the SLA sweep (desk/sla.py) run on a schedule — breach warnings to
the assignee's page and mailbox, the wallboard refreshed, resolved incidents nobody answered
closed."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select

from cti.errors import InvalidInput
from desk import handoff, incidents, sla
from desk.models import Staff
from desk.web.keys import HUB, MAILER, SESSIONS, SETTINGS, WALLBOARD
from desk.web.messages import DESK, MessageType, agent_topic
from desk.web.nodes import runs_desk_jobs

logger = logging.getLogger(__name__)


def _message(kind: str, number: str, category: str, **more: str) -> dict[str, str]:
    return {
        "type": MessageType.INCIDENT_ALERT.value,
        "kind": kind,
        "number": number,
        "category": category,
        **more,
    }


def to_agent(app: web.Application, ext: str, kind: str, number: str, category: str) -> None:
    """Tell one agent's pages."""
    app[HUB].publish(agent_topic(ext), _message(kind, number, category))


def to_desk(app: web.Application, kind: str, number: str, category: str) -> None:
    """Tell every agent page and the workbench (and refresh the wallboard)."""
    app[HUB].publish(DESK, _message(kind, number, category))
    if WALLBOARD in app:
        app[WALLBOARD].touch()


async def sweep_once(app: web.Application) -> sla.SweepResult:
    """One sweep: close, stamp, find new breaches; warn each assignee."""
    now = datetime.now(UTC)
    async with app[SESSIONS].begin() as s:
        result = await sla.sweep(s, now)
        staff = {
            st.username: st
            for st in (
                await s.scalars(
                    select(Staff).where(Staff.username.in_([a for _, a, _ in result.breached if a]))
                )
            ).all()
        }
        found = {n: await incidents.get(s, n) for n in {n for n, _, _ in result.breached}}
    mailer = app[MAILER]
    for number, assignee, which in result.breached:
        inc = found[number]
        app[HUB].publish(DESK, _message("breached", number, inc.category, which=which))
        member = staff.get(assignee or "")
        if member is None:
            continue
        if member.extension:
            app[HUB].publish(
                agent_topic(member.extension),
                _message("breached", number, inc.category, which=which),
            )
        if member.email:
            try:
                error = await mailer.send(
                    handoff.compose_breach(inc, which, member.email, mailer.smtp.sender)
                )
            except InvalidInput as exc:
                error = str(exc)
            if error:
                logger.warning("SLA warning for %s to %s: %s", number, member.email, error)
    if (result.breached or result.closed) and WALLBOARD in app:
        app[WALLBOARD].touch()
    if result.closed:
        logger.info("auto-closed resolved incidents: %s", ", ".join(result.closed))
    return result


async def _loop(app: web.Application, every: float) -> None:
    while True:
        try:
            if runs_desk_jobs(app):
                await sweep_once(app)
        except Exception:
            logger.exception("SLA sweep failed")
        await asyncio.sleep(every)


async def sla_ctx(app: web.Application) -> AsyncIterator[None]:
    """The SLA sweep, every CTI_SLA_SWEEP_SECONDS (0: never)."""
    every = app[SETTINGS].sla_sweep_seconds
    task = asyncio.create_task(_loop(app, every), name="sla-sweep") if every > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
