"""Benchmark: the monthly report over a month of realistic desk data on the SQLite default.

    python -m bench.reports [--calls 1000000] [--month 2026-10]

Generates `--calls` calls over the month (office-hours arrival curve, 80 % answered with waits
and talk times drawn like a real desk's, abandons, timeouts, IVR-only calls and overflows; 40
agents; incidents for a third of the calls; surveys for half the answered), then times, in the
same run: a baseline (one aggregate pass over the month's calls — the least any report must do),
the full monthly report (every section) with the half-hour table of figures up to date (as the
server keeps it) and with every slot stale (the fallback, as right after an upgrade), the time
to bring the table up to date from nothing, and the process's peak memory.
"""

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bench.stats import loadavg
from cti.db import create_engine, migrate, session_maker
from cti.journal.models import Call
from desk.migrations import MIGRATIONS
from reports.build import ReportOptions, build_report, period_for
from reports.slots import Thresholds, refresh

T = TypeVar("T")

TZ = ZoneInfo("Asia/Shanghai")
FMT = "%Y-%m-%d %H:%M:%S.%f"
HOURS = [
    0.2,
    0.1,
    0.1,
    0.1,
    0.1,
    0.2,
    0.5,
    2,
    6,
    10,
    10,
    8,
    5,
    7,
    9,
    9,
    8,
    6,
    3,
    1.5,
    1,
    0.7,
    0.4,
    0.3,
]


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(tzinfo=None).strftime(FMT)


def generate(path: Path, calls: int, month: date, seed: int = 7) -> None:
    """Write the month straight into the calls, incidents and survey tables."""
    rng = random.Random(seed)
    start = datetime(month.year, month.month, 1, tzinfo=TZ)
    days = ((start + timedelta(days=32)).replace(day=1) - start).days
    weights = [
        (d, h, HOURS[h] * (0.3 if (start + timedelta(days=d)).weekday() >= 5 else 1))
        for d in range(days)
        for h in range(24)
    ]
    slots = rng.choices([(d, h) for d, h, _ in weights], [w for _, _, w in weights], k=calls)
    slots.sort()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    rows, incidents, surveys = [], [], []
    now = ts(datetime.now(UTC))
    for i, (d, h) in enumerate(slots):
        arrived = start + timedelta(days=d, hours=h, seconds=rng.uniform(0, 3600))
        r = rng.random()
        queued = r > 0.04
        outcome, wait, talk, agent, answered = "ended_in_ivr", None, None, None, None
        if queued:
            wait = rng.expovariate(1 / 25)
            if r < 0.84:
                outcome, talk, agent = (
                    "answered",
                    rng.lognormvariate(5.3, 0.6),
                    str(1001 + rng.randrange(40)),
                )
                answered = arrived + timedelta(seconds=30 + wait)
            elif r < 0.92:
                outcome = "abandoned"
            elif r < 0.97:
                outcome, wait = "queue_timeout", 300.0
            else:
                outcome = "overflowed"
        end = arrived + timedelta(seconds=30 + (wait or 0) + (talk or 0) + 5)
        uid = f"b{i}"
        rows.append(
            (
                uid,
                uid,
                "PJSIP/carrier",
                f"138{rng.randrange(10**8):08d}",
                "",
                "8000",
                ts(arrived),
                ts(arrived + timedelta(seconds=30)) if queued else None,
                ts(answered) if answered else None,
                ts(end),
                "helpdesk" if rng.random() < 0.85 else "helpdesk-en",
                agent,
                "[]",
                0,
                outcome,
                None if wait is None else round(wait, 3),
                None if talk is None else round(talk, 3),
                None if talk is None else round(rng.uniform(10, 60), 3),
                "ami",
                "[]",
                now,
                "[]",
            )
        )
        if i % 3 == 0:
            incidents.append(
                (
                    f"{arrived:%y%m%d}{i:07d}",
                    ts(arrived),
                    "IVR",
                    "phone",
                    rng.choice(["fault", "service_request"]),
                    rng.choice(["邮件", "VPN", "打印机", "密码重置", "账号"]),
                    "",
                    3,
                    rng.choice(["closed", "resolved", "in_progress"]),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "zh",
                    "",
                    rng.random() < 0.75,
                    ts(end) if rng.random() < 0.8 else None,
                    ts(end),
                )
            )
        if outcome == "answered" and i % 2 == 0:
            surveys.append(
                (uid, agent, rng.choices([5, 4, 3, 2, 1], [50, 30, 10, 6, 4])[0], ts(end))
            )
        if len(rows) >= 50000:
            _flush(con, rows, incidents, surveys)
            rows, incidents, surveys = [], [], []
    _flush(con, rows, incidents, surveys)
    con.close()


def _flush(con: sqlite3.Connection, rows: list, incidents: list, surveys: list) -> None:  # type: ignore[type-arg]
    con.executemany(
        "INSERT INTO calls (uniqueid, linkedid, channel, caller_number, caller_name, dialled_number, arrived_at, "
        "queued_at, answered_at, ended_at, queue, agent, offers, ring_no_answer, outcome, wait_seconds, "
        "talk_seconds, acw_seconds, source, inferred, updated_at, overflows) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    con.executemany(
        "INSERT INTO incidents (number, created_at, recorded_by, channel, type, category, symptom, priority, state, "
        "requester_name, requester_department, requester_location, requester_office_phone, requester_mobile, "
        "requester_email, caller_number, language, menu_path, first_line_resolved, resolved_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        incidents,
    )
    con.executemany(
        "INSERT INTO survey_responses (call_uniqueid, agent, score, at) VALUES (?,?,?,?)", surveys
    )
    con.commit()


def peak_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def run(calls: int, month: date) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cti.sqlite3"
        engine = create_engine(f"sqlite+aiosqlite:///{db}")
        await migrate(engine, MIGRATIONS)
        t0 = time.perf_counter()
        await asyncio.to_thread(generate, db, calls, month)
        print(
            f"generated {calls:,} calls for {month:%Y-%m} in {time.perf_counter() - t0:.1f}s "
            f"({db.stat().st_size / 1e6:.0f} MB; the triggers of the half-hour table included)"
        )
        sessions = session_maker(engine)
        period = period_for("monthly", month, TZ)
        start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
        opts = ReportOptions()

        async def baseline() -> tuple[float, float, Any]:
            async with sessions() as s:
                return await timed(
                    s.execute(
                        select(
                            func.count(), func.sum(Call.wait_seconds), func.sum(Call.talk_seconds)
                        ).where(Call.arrived_at >= start, Call.arrived_at < end)
                    )
                )

        base_t, base_cpu, result = await baseline()
        row = result.one()
        base_mem = peak_kib()
        # Every slot stale (as right after an upgrade): the report computes all from `calls`.
        cold_t, cold_cpu, _ = await timed(build_report(sessions, period, opts))
        t = Thresholds(opts.sl_seconds, opts.short_abandon)
        fill_t, fill_cpu, slots = await timed(refresh(sessions, t, limit=10**6))
        full_t, full_cpu, report = await timed(build_report(sessions, period, opts))
        full_mem = peak_kib()
        again_t, again_cpu, _ = await baseline()
        base_t, base_cpu = min(base_t, again_t), min(base_cpu, again_cpu)
        await engine.dispose()
        print(f"{'':46}{'wall s':>8}{'CPU s':>8}{'x base':>8}   loadavg {loadavg()}")
        for name, w, c in (
            (f"baseline: one aggregate pass ({row[0]:,} calls)", base_t, base_cpu),
            ("monthly report, half-hour table up to date", full_t, full_cpu),
            ("monthly report, every slot stale (fallback)", cold_t, cold_cpu),
            (f"refresh: {slots:,} slots into the table", fill_t, fill_cpu),
        ):
            print(f"{name:46}{w:8.2f}{c:8.2f}{w / base_t:8.1f}")
        print(
            f"process peak RSS: after the baseline {base_mem / 1024:.0f} MB, after the reports "
            f"{full_mem / 1024:.0f} MB; report: offered {report['calls']['offered']:,}, "
            f"SL {report['metrics']['service_level']:.3f}, ASA {report['metrics']['asa']:.1f}s"
        )
        await write_cost(Path(tmp))
        print(
            json.dumps(
                {
                    "baseline_s": round(base_t, 3),
                    "report_s": round(full_t, 3),
                    "report_stale_s": round(cold_t, 3),
                    "refresh_s": round(fill_t, 3),
                    "ratio": round(full_t / base_t, 2),
                }
            )
        )


async def timed(work: Awaitable[T]) -> tuple[float, float, T]:
    """(wall seconds, CPU seconds of this process, result) of awaiting `work`."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = await work
    return time.perf_counter() - t0, time.process_time() - c0, result


async def write_cost(tmp: Path, n: int = 20000) -> None:
    """What the triggers add to the journal's writes: `n` finished calls upserted in batches of
    50 (a busy flush), with and without the triggers, in the same run."""
    from cti.journal import repo
    from cti.live.model import LiveCall

    t0 = datetime(2026, 10, 5, 9, tzinfo=UTC).timestamp()
    batches = []
    for b in range(0, n, 50):
        rows = []
        for i in range(b, b + 50):
            c = LiveCall(f"w{i}", f"w{i}", "PJSIP/carrier", t0 + i * 2, caller_number="1380")
            c.queued_at, c.queue, c.answered_at, c.agent = (
                t0 + i * 2 + 5,
                "helpdesk",
                t0 + i * 2 + 9,
                "1001",
            )
            c.finish(t0 + i * 2 + 200)
            rows.append(c.to_row(t0))
        batches.append(rows)
    out = []
    for triggers in (False, True):
        engine = create_engine(f"sqlite+aiosqlite:///{tmp / f'write-{triggers}.sqlite3'}")
        await migrate(engine, MIGRATIONS)
        if not triggers:
            async with engine.begin() as conn:
                for name in ("calls_slot_insert", "calls_slot_update", "calls_slot_delete"):
                    await conn.exec_driver_sql(f"DROP TRIGGER {name}")
        sessions = session_maker(engine)
        started = time.perf_counter()
        for rows in batches:
            async with sessions.begin() as s:
                await repo.upsert_calls(s, rows)
        out.append((time.perf_counter() - started) / n * 1e6)
        await engine.dispose()
    print(f"journal writes of finished calls (batches of 50): {out[0]:.0f} us/call without the "
          f"triggers, {out[1]:.0f} us/call with them")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--month", default="2026-10")
    a = p.parse_args()
    year, mon = (int(x) for x in a.month.split("-"))
    asyncio.run(run(a.calls, date(year, mon, 1)))


if __name__ == "__main__":
    main()
