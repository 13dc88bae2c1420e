"""Generating, archiving (6.5.5) and scheduling reports; the `cti report` and `cti staffing`
commands."""

import asyncio
import contextlib
import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cti.asterisks import NAME_PATTERN, sites_of
from cti.db import SessionMaker, create_engine, migrate, session_maker
from cti.erlang import agents_needed, evaluate
from cti.errors import InvalidInput
from cti.settings import Settings
from desk import retention
from desk.retention import RetentionPolicy, RetentionResult
from desk.validation import queue_name
from reports import slots
from reports.build import KINDS, ReportOptions, build_report, period_for
from reports.render import FORMATS, write
from reports.slots import Thresholds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    """data_dir/reports/<kind>/<start>[_<queue>][_<lang>].<format>, kept `retention_days`."""

    root: Path
    retention_days: int = 400

    def path(
        self,
        kind: str,
        start: date,
        fmt: str,
        lang: str,
        queue: str | None,
        brief: bool,
        asterisks: tuple[str, ...] | None = None,
    ) -> Path:
        """Where a report goes; InvalidInput for anything that would not stay in the archive.
        A site's report is named by its Asterisks (their names are safe in a file name; a
        site's own name may be any text)."""
        if kind not in KINDS or fmt not in FORMATS or lang not in ("zh", "en"):
            raise InvalidInput(f"no archive place for a {kind!r} report as {fmt!r} in {lang!r}")
        if queue is not None:
            queue_name("queue", queue)
        for name in asterisks or ():
            if not NAME_PATTERN.match(name):
                raise InvalidInput(f"no archive place for Asterisk {name!r}")
        tags = ("_" + queue if queue else "") + ("_brief" if brief else "")
        if asterisks:
            tags += "_site-" + "+".join(asterisks)
        name = f"{start.isoformat()}{tags}_{lang}.{fmt}"
        return self._inside(self.root / kind / name)

    def file(self, kind: str, name: str) -> Path | None:
        """An archived report by kind and file name, if there is one (never a path outside)."""
        if kind not in KINDS or "/" in name or "\\" in name or name.startswith("."):
            return None
        try:
            path = self._inside(self.root / kind / name)
        except InvalidInput:
            return None
        return path if path.is_file() else None

    def _inside(self, path: Path) -> Path:
        """`path`, if it resolves (links followed) to a place inside the archive."""
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise InvalidInput("a report file must stay inside the report archive")
        return path

    def listing(self) -> list[dict[str, object]]:
        """Every archived report, newest first."""
        out = []
        for p in sorted(self.root.glob("*/*.*"), key=lambda p: p.stat().st_mtime, reverse=True):
            out.append(
                {
                    "kind": p.parent.name,
                    "name": p.name,
                    "bytes": p.stat().st_size,
                    "at": datetime.fromtimestamp(p.stat().st_mtime, UTC).isoformat(),
                }
            )
        return out

    def sweep(self) -> int:
        """Delete reports older than the retention; how many were deleted."""
        cutoff = time.time() - self.retention_days * 86400
        gone = 0
        for p in self.root.glob("*/*.*"):
            if p.stat().st_mtime < cutoff:
                p.unlink()
                gone += 1
        return gone


def options_from(
    settings: Settings, lang: str, queue: str | None, brief: bool, site: str | None = None
) -> ReportOptions:
    """Report options with this desk's thresholds, queue_log and sites (`site`: one site's
    report; None: every site's, each beside the total)."""
    return ReportOptions(
        sites=sites_of(settings.asterisk_servers),
        site=site,
        sl_seconds=settings.report_sl_seconds,
        short_abandon=settings.report_short_abandon,
        queue=queue,
        brief=brief,
        lang=lang,
        queue_log=Path(settings.queue_log_path) if settings.queue_log_path else None,
    )


async def generate(
    sessions: SessionMaker,
    settings: Settings,
    archive: Archive,
    kind: str,
    day: date,
    formats: list[str],
    lang: str = "zh",
    queue: str | None = None,
    brief: bool = False,
    end_day: date | None = None,
    site: str | None = None,
) -> list[Path]:
    """Build a report once and write each format into the archive."""
    period = period_for(kind, day, settings.tz, end_day)
    opts = options_from(settings, lang, queue, brief, site)
    report = await build_report(sessions, period, opts)
    paths = []
    for fmt in formats:
        path = archive.path(
            kind, period.start.date(), fmt, lang, queue, brief, opts.sites.get(site or "")
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(await asyncio.to_thread(write, report, fmt, path))
    return paths


class Scheduler:
    """Daily at 00:10 (yesterday), weekly on Mondays (last week) and the forward-looking report,
    monthly on the 1st (last month); each only once, in both languages; then the retention sweep.
    Every minute it brings the half-hour table of report figures up to date."""

    def __init__(self, sessions: SessionMaker, settings: Settings, archive: Archive) -> None:
        self.sessions = sessions
        self.settings = settings
        self.archive = archive
        self._task: asyncio.Task[None] | None = None
        self.first_delay = 60.0
        # The retention sweep runs at most hourly; its last result is shown on /metrics.
        self.retention = RetentionPolicy.from_settings(settings)
        self.last_retention: RetentionResult | None = None
        self._retention_due = 0.0

    def due(self, now: datetime) -> list[tuple[str, date]]:
        """(kind, a day in the period) for each report that should exist by now."""
        local = now.astimezone(self.settings.tz)
        if local.hour == 0 and local.minute < 10:
            return []
        today = local.date()
        out = [("daily", today - timedelta(days=1))]
        out.append(("weekly", today - timedelta(days=today.weekday() + 7)))
        out.append(("forward", today))
        first = today.replace(day=1)
        out.append(("monthly", first - timedelta(days=1)))
        return out

    async def run_once(self, now: datetime) -> list[Path]:
        made: list[Path] = []
        formats = [f for f in self.settings.report_formats if f in FORMATS]
        for kind, day in self.due(now):
            start = period_for(kind, day, self.settings.tz).start.date()
            for lang in ("zh", "en"):
                if all(
                    self.archive.path(kind, start, f, lang, None, False).exists() for f in formats
                ):
                    continue
                made += await generate(
                    self.sessions, self.settings, self.archive, kind, day, formats, lang
                )
        await asyncio.to_thread(self.archive.sweep)
        await self.apply_retention(now)
        return made

    async def apply_retention(self, now: datetime) -> RetentionResult | None:
        """The CTI_RETENTION_* limits (desk/retention.py), once an hour at most."""
        if not self.retention.active or time.monotonic() < self._retention_due:
            return None
        self.last_retention = await retention.run(
            self.sessions, self.retention, now, self.settings.effective_media_dir
        )
        self._retention_due = time.monotonic() + 3600
        return self.last_retention

    async def refresh_slots(self) -> int:
        """Bring the half-hour table of report figures up to date (reports/slots.py)."""
        t = Thresholds(self.settings.report_sl_seconds, self.settings.report_short_abandon)
        return await slots.refresh(self.sessions, t)

    async def _run(self) -> None:
        await asyncio.sleep(self.first_delay)  # not in the busy first minute after a start
        ticks = 0
        while True:
            try:
                await self.refresh_slots()
            except Exception:
                logger.exception("the report half-hour table could not be refreshed")
            if ticks % 5 == 0:
                try:
                    made = await self.run_once(datetime.now(UTC))
                    if made:
                        logger.info(
                            "scheduled reports written: %s", ", ".join(p.name for p in made)
                        )
                except Exception:
                    logger.exception("scheduled reports failed")
            ticks += 1
            await asyncio.sleep(60)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="report-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def report_cli(
    settings: Settings,
    kind: str,
    day: date,
    formats: list[str],
    lang: str,
    queue: str | None,
    brief: bool,
    out: Path | None,
    end_day: date | None,
    site: str | None = None,
) -> int:
    """`cti report ...`: write the files and print their paths (2 for a site the settings do
    not declare)."""
    sites = sites_of(settings.asterisk_servers)
    if site is not None and site not in sites:
        print(f"cti report: site must be one of {', '.join(sites)}", file=sys.stderr)
        return 2
    from desk.migrations import MIGRATIONS

    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine, MIGRATIONS)
        archive = Archive(out or settings.data_dir / "reports", settings.report_retention_days)
        for path in await generate(
            session_maker(engine),
            settings,
            archive,
            kind,
            day,
            formats,
            lang,
            queue,
            brief,
            end_day,
            site,
        ):
            print(path)
    finally:
        await engine.dispose()
    return 0


def staffing_cli(
    calls: float,
    interval: float,
    aht: float,
    target: float,
    threshold: float,
    max_occupancy: float,
    shrinkage: float,
) -> str:
    """`cti staffing`: what Erlang C says for one interval."""
    if calls < 0 or interval <= 0 or aht <= 0 or not 0 <= shrinkage < 1:
        raise ValueError("calls >= 0, interval > 0, aht > 0 and 0 <= shrinkage < 1")
    rate = calls / interval
    r = (
        agents_needed(rate, aht, target, threshold, max_occupancy)
        if calls
        else evaluate(0, 0, aht, threshold)
    )
    scheduled = math.ceil(r.agents / (1 - shrinkage))
    lines = [
        f"traffic:          {r.traffic:.2f} Erlangs "
        f"({calls:g} calls in {interval:g} s, AHT {aht:g} s)",
        f"agents needed:    {r.agents} (on the phones)",
        f"with shrinkage:   {scheduled} (shrinkage {shrinkage:.0%})",
        f"service level:    {r.service_level:.1%} answered within {threshold:g} s "
        f"(target {target:.0%})",
        f"P(wait):          {r.p_wait:.1%}",
        f"ASA:              {r.asa:.1f} s",
        f"occupancy:        {r.occupancy:.1%}",
    ]
    return "\n".join(lines)
