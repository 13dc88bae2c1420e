"""Benchmark: the whole AMI pipeline (parse, track, store) against panoramisk's bare parse rate.

    python -m bench.pipeline [--repeat 15] [--fixture burst]

Both run in this process on the same captured real AMI stream (tests/fixtures/ami/*.raw.gz,
a 200-call burst recorded from the sandbox). The baseline is panoramisk 1.4's own AMIProtocol
splitting and parsing every frame into Messages, dispatching to nothing. The pipeline is what
the server does with the same bytes: our protocol (incremental UTF-8 decoding), typed parsing,
the bounded event queue, the call tracker, and the journal's writer task storing the calls in a
SQLite file (WAL) on its own schedule, as in the server. One warm-up round of each, then pairs
of runs (which goes first alternating), each pipeline run on an emptied journal of a database
that stays open (the server's steady state). Prints events per second for each, and the median of the pairs' ratios, in events per
second and in events per CPU second of the process (what a busy machine does not blur).
"""

import argparse
import asyncio
import contextlib
import gzip
import statistics
import tempfile
import time
from pathlib import Path

from panoramisk.ami_protocol import AMIProtocol
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.stats import loadavg
from cti.ami.client import AmiClient, AmiOptions
from cti.ami.protocol import CtiAmiProtocol
from cti.db import SessionMaker, create_engine, migrate, session_maker
from cti.journal.models import Call, JournalMeta
from cti.journal.service import JournalService
from cti.live.tracker import CallTracker
from desk.migrations import MIGRATIONS

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ami"
CHUNK = 65536


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Sink:
    """A panoramisk factory that counts what it is given and does nothing else."""

    def __init__(self) -> None:
        self.events = 0

    def dispatch(self, message: object) -> None:
        self.events += 1


def bare_panoramisk(raw: bytes) -> tuple[int, float, float]:
    """Frames parsed, and seconds and CPU seconds taken, by panoramisk alone."""
    sink = _Sink()
    proto = AMIProtocol()
    proto.connection_made(_Transport())
    proto.factory = sink
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(raw), CHUNK):
        proto.data_received(raw[i : i + CHUNK])
    frames = sink.events + len(proto.responses)
    return frames, time.perf_counter() - started, time.process_time() - cpu


async def pipeline(raw: bytes, sessions: SessionMaker) -> tuple[int, int, float, float]:
    """Frames, call rows written, and seconds and CPU seconds (the process's: aiosqlite's
    thread included) taken by the server's pipeline.

    As in the server (cti/runtime.py): the protocol gets the stream one read at a time, the
    pump applies the queued events to the tracker after each read, and the journal's own writer
    task (JournalService.run_writer, its schedule and all) stores them meanwhile; it ends with
    the writer's last flush, as at a stop.
    """
    tracker = CallTracker(["cti-inbound"])
    journal = JournalService(sessions, tracker, None)
    client = AmiClient(AmiOptions("127.0.0.1", 0, "cti", "x", queue_size=20000))
    proto = CtiAmiProtocol()
    proto.connection_made(_Transport())
    proto.factory = client
    queue = client.events
    started, cpu = time.perf_counter(), time.process_time()
    writer = asyncio.create_task(journal.run_writer(lambda: False))
    for i in range(0, len(raw), CHUNK):
        proto.data_received(raw[i : i + CHUNK])
        while not queue.empty():
            tracker.handle(queue.get_nowait())
        await asyncio.sleep(0)  # back to the loop between two reads, as a socket's reads are
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    journal.close()
    return client.stats.events + proto.skipped, journal.flushed_rows, elapsed, cpu


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(Call))
        await conn.execute(delete(JournalMeta))


async def _journaled(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(Call))).scalar_one())


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--fixture", default="burst")
    args = p.parse_args()
    with gzip.open(FIXTURES / f"{args.fixture}.raw.gz", "rb") as fh:
        raw = fh.read()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}")
        await migrate(engine, MIGRATIONS)
        sessions = session_maker(engine)
        base_rates, pipe_rates, ratios, cpu_ratios = [], [], [], []
        frames = stored = calls = 0
        # One warm-up round of each (not counted), then pairs of runs close in time, which of
        # the two goes first alternating; the pipeline on an emptied journal each time.
        for run in range(args.repeat + 1):
            if run % 2:
                n, secs, base_cpu = bare_panoramisk(raw)
            await _empty(engine)
            frames, stored, pipe_secs, cpu = await pipeline(raw, sessions)
            if not run % 2:
                n, secs, base_cpu = bare_panoramisk(raw)
            calls = await _journaled(engine)
            if run:
                base_rates.append(n / secs)
                pipe_rates.append(frames / pipe_secs)
                ratios.append(frames / pipe_secs / (n / secs))
                cpu_ratios.append((frames / cpu) / (n / base_cpu))
        await engine.dispose()
    base, pipe = statistics.median(base_rates), statistics.median(pipe_rates)
    print(f"stream: {args.fixture}.raw.gz, {len(raw) / 1e6:.1f} MB, {frames} AMI events; "
          f"{args.repeat} runs of each, in pairs; the last run wrote {stored} call rows, "
          f"{calls} calls in the journal")  # fmt: skip
    print(f"panoramisk bare parse : {base:10,.0f} events/s (median)")
    print(f"cti pipeline          : {pipe:10,.0f} events/s (median; parse + track + store)")
    for what, r in (("events/s", ratios), ("events/CPU s", cpu_ratios)):
        print(f"pipeline / bare parse : {statistics.median(r):10.2f}  in {what} (median of the "
              f"pairs; min {min(r):.2f}, max {max(r):.2f}; aim: >= 0.8)")  # fmt: skip
    print(f"loadavg {loadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
