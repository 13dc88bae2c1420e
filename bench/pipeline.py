"""Benchmark: the whole AMI pipeline (parse, track, store) against panoramisk's bare parse rate.

    python -m bench.pipeline [--repeat 5] [--fixture burst]

Both run in this process on the same captured real AMI stream (tests/fixtures/ami/*.raw.gz,
a 200-call burst recorded from the sandbox). The baseline is panoramisk 1.4's own AMIProtocol
splitting and parsing every frame into Messages, dispatching to nothing. The pipeline is what
the server does with the same bytes: our protocol (incremental UTF-8 decoding), typed parsing,
the bounded event queue, the call tracker, and journal writes to a SQLite file (WAL), flushed on
the same 0.2 s schedule as the server. Prints events per second for each and their ratio.
"""

import argparse
import asyncio
import gzip
import statistics
import tempfile
import time
from pathlib import Path

from panoramisk.ami_protocol import AMIProtocol

from bench.stats import loadavg
from cti.ami.client import AmiClient, AmiOptions
from cti.ami.protocol import CtiAmiProtocol
from cti.db import create_engine, migrate, session_maker
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


def bare_panoramisk(raw: bytes) -> tuple[int, float]:
    """Frames parsed and seconds taken by panoramisk alone."""
    sink = _Sink()
    proto = AMIProtocol()
    proto.connection_made(_Transport())
    proto.factory = sink
    started = time.perf_counter()
    for i in range(0, len(raw), CHUNK):
        proto.data_received(raw[i : i + CHUNK])
    return sink.events + len(proto.responses), time.perf_counter() - started


async def pipeline(raw: bytes, db_dir: Path) -> tuple[int, int, float]:
    """Frames, calls stored and seconds taken by the server's pipeline."""
    engine = create_engine(f"sqlite+aiosqlite:///{db_dir / 'bench.sqlite3'}")
    await migrate(engine, MIGRATIONS)
    tracker = CallTracker(["cti-inbound"])
    journal = JournalService(session_maker(engine), tracker, None)
    client = AmiClient(AmiOptions("127.0.0.1", 0, "cti", "x", queue_size=20000))
    proto = CtiAmiProtocol()
    proto.connection_made(_Transport())
    proto.factory = client
    stored = 0
    started = time.perf_counter()
    next_flush = started + 0.2
    for i in range(0, len(raw), CHUNK):
        proto.data_received(raw[i : i + CHUNK])
        queue = client.events
        while not queue.empty():
            tracker.handle(queue.get_nowait())
        if time.perf_counter() >= next_flush:
            stored += await journal.flush()
            next_flush = time.perf_counter() + 0.2
    stored += await journal.flush()
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return client.stats.events + proto.skipped, stored, elapsed


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--fixture", default="burst")
    args = p.parse_args()
    with gzip.open(FIXTURES / f"{args.fixture}.raw.gz", "rb") as fh:
        raw = fh.read()
    base_rates, pipe_rates = [], []
    frames = stored = 0
    for _ in range(args.repeat):
        n, secs = bare_panoramisk(raw)
        base_rates.append(n / secs)
        with tempfile.TemporaryDirectory() as tmp:
            frames, stored, secs = await pipeline(raw, Path(tmp))
        pipe_rates.append(frames / secs)
    base, pipe = statistics.median(base_rates), statistics.median(pipe_rates)
    print(f"stream: {args.fixture}.raw.gz, {len(raw) / 1e6:.1f} MB, {frames} AMI events, "
          f"{stored} call records written, median of {args.repeat} runs")  # fmt: skip
    print(f"panoramisk bare parse : {base:10,.0f} events/s")
    print(f"cti pipeline          : {pipe:10,.0f} events/s  (parse + track + store)")
    print(f"pipeline / bare parse : {pipe / base:10.2f}  (aim: >= 0.8); loadavg {loadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
