"""`cti backup` / `cti restore` on SQLite (its online backup API) and PostgreSQL (pg_dump /
pg_restore on a server of the tests' own): a backup taken while real calls are being journaled
restores to a server whose reports equal the original's."""

import asyncio
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient
from cti.db import create_engine, session_maker
from cti.sandbox.instance import InstanceState
from desk.web.app import create_app
from reports.build import ReportOptions, build_report, period_for
from tests.conftest import server_settings
from tests.integration.test_journal import mixed_callers, run_sim
from tests.integration.test_reports import DAY, TZ, assert_hand_computed, seed
from tests.support import db, journal
from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


def cti(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m cti ARGS` as an operator would run it, with only these settings."""
    full = {"PATH": os.environ["PATH"], "HOME": env.get("CTI_DATA_DIR", "/tmp"),
            "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x", **env}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cti", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def env_of(url: str, folder: Path) -> dict[str, str]:
    """A server's database, data folder and media folder."""
    return {"CTI_DATABASE_URL": url, "CTI_DATA_DIR": str(folder),
            "CTI_MEDIA_DIR": str(folder / "media")}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An original database and an empty one to restore into, of the same kind."""
    if request.param == "sqlite":
        yield (f"sqlite+aiosqlite:///{tmp_path / 'a' / 'cti.sqlite3'}",
               f"sqlite+aiosqlite:///{tmp_path / 'b' / 'cti.sqlite3'}")  # fmt: skip
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    names = [server.create_database(), server.create_database()]
    yield server.url(names[0]), server.url(names[1])
    for name in names:
        server.drop_database(name)


async def report_of(url: str) -> dict[str, Any]:
    """The daily report of the seeded day, without the moment it was made."""
    engine = create_engine(url)
    try:
        r = await build_report(
            session_maker(engine), period_for("daily", DAY, TZ), ReportOptions(sl_seconds=20)
        )
    finally:
        await engine.dispose()
    r.pop("generated_at")
    return r


async def test_backup_and_restore_round_trip(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    original, target = two_databases
    engine, _ = await seed(original)
    await engine.dispose()
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "media" / "recordings").mkdir(parents=True)
    (a / "media" / "recordings" / "vm-1.wav").write_bytes(b"RIFF" + bytes(range(256)))
    (a / "secret.key").write_text("k" * 43)
    archive = tmp_path / "backups" / "cti.tar.gz"
    done = cti(env_of(original, a), "backup", str(archive))
    assert done.returncode == 0, done.stderr
    assert "11 calls" in done.stdout and "1 media files" in done.stdout
    assert archive.stat().st_mode & 0o777 == 0o600  # personal data and the signing key
    again = cti(env_of(original, a), "backup", str(archive))
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites a backup

    restored = cti(env_of(target, b), "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert_hand_computed(await report_of(target))
    assert await report_of(target) == await report_of(original)
    assert (b / "media" / "recordings" / "vm-1.wav").read_bytes() == b"RIFF" + bytes(range(256))
    assert (b / "secret.key").read_text() == "k" * 43

    # A database that holds calls is not overwritten by mistake...
    refused = cti(env_of(target, b), "restore", str(archive))
    assert refused.returncode == 2 and "--force" in refused.stderr
    # ... only when asked.
    forced = cti(env_of(target, b), "restore", "--force", str(archive))
    assert forced.returncode == 0, forced.stderr
    assert await report_of(target) == await report_of(original)


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


MANIFEST = json.dumps({"format": 1, "database": "sqlite"}).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an archive at all", "not a readable cti backup"),
        (b"", "not a readable cti backup"),
        (_tar({"notes.txt": b"x"}), "no manifest.json"),
        (_tar({"manifest.json": b"{"}), "not a readable cti backup"),
        (_tar({"manifest.json": json.dumps({"format": 9}).encode()}), "unknown backup format"),
        (_tar({"manifest.json": MANIFEST, "../../evil": b"x"}), "unexpected member"),
        (_tar({"manifest.json": MANIFEST, "/etc/passwd": b"x"}), "unexpected member"),
        (_tar({"manifest.json": json.dumps({"format": 1, "database": "postgresql"}).encode()}),
         "holds a postgresql database"),
    ],
)  # fmt: skip
def test_a_bad_archive_is_refused_with_a_clear_message(
    tmp_path: Path, content: bytes, message: str
) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(content)
    target = tmp_path / "b"
    done = cti(env_of(f"sqlite+aiosqlite:///{target / 'cti.sqlite3'}", target), "restore",
               str(archive))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "evil").exists() and not (target / "cti.sqlite3").exists()


@pytest.mark.asterisk
async def test_a_backup_taken_mid_traffic_restores_to_the_same_reports(
    request: pytest.FixtureRequest,
    sim_client: AmiClient,
    sandbox_state: InstanceState,
    tmp_path: Path,
) -> None:
    """Real calls are journaled while `cti backup` runs beside the server. The backup goes into
    a new database; a server started on it catches up with what happened after the backup
    (from queue_log, as after an outage); its daily report then equals the original's."""
    original_dir, restored_dir = tmp_path, tmp_path / "restored"
    restored_dir.mkdir()
    url = db.url_of(original_dir)
    if url.startswith("postgresql"):
        pg: PostgresServer = request.getfixturevalue("postgres")
        name = pg.create_database()
        request.addfinalizer(lambda: pg.drop_database(name))
        db.use(restored_dir, pg.url(name))
        request.addfinalizer(lambda: db.forget(restored_dir))
    archive = tmp_path / "mid-traffic.tar.gz"
    settings = server_settings(sandbox_state, original_dir, CTI_IVR_ENABLED="0",
                               CTI_DATA_DIR=str(original_dir))  # fmt: skip
    async with TestClient(TestServer(create_app(settings))):
        sim = await run_sim(sim_client, mixed_callers(16, seed=7), rate=1)
        run = asyncio.create_task(sim.run(timeout=150))
        prefix = f"sim-{sim.run_id}-"
        for _ in range(600):  # until some calls have come in, others not yet
            if len(journal.rows(original_dir, prefix)) >= 5:
                break
            await asyncio.sleep(0.1)
        done = await asyncio.to_thread(
            cti, env_of(url, original_dir), "backup", "--no-media", str(archive)
        )
        assert done.returncode == 0, done.stderr
        result = await run
        assert not run.exception()
        records = await journal.wait_finished(original_dir, prefix, 16)
        assert len([r for r in records if r["ended_at"]]) == 16
    in_backup = int(done.stdout.split(" calls")[0].rsplit(", ", 1)[1])
    assert 5 <= in_backup < 16, done.stdout  # the backup really was taken mid-traffic
    assert len(result.calls) == 16

    restored_url = db.url_of(restored_dir)
    back = cti(env_of(restored_url, restored_dir), "restore", str(archive))
    assert back.returncode == 0, back.stderr
    settings = server_settings(sandbox_state, restored_dir, CTI_IVR_ENABLED="0",
                               CTI_DATA_DIR=str(restored_dir))  # fmt: skip
    async with TestClient(TestServer(create_app(settings))):
        caught_up = await journal.wait_finished(restored_dir, prefix, 16, timeout=60)
    by_id = {r["uniqueid"]: r for r in records}
    assert {r["uniqueid"] for r in caught_up} == set(by_id)
    assert {r["uniqueid"]: r["outcome"] for r in caught_up} == {
        u: r["outcome"] for u, r in by_id.items()
    }
    period = period_for("daily", datetime.now(TZ).date(), TZ)

    async def report(folder: Path) -> dict[str, Any]:
        engine = create_engine(db.url_of(folder))
        try:
            return await build_report(session_maker(engine), period, ReportOptions())
        finally:
            await engine.dispose()

    first, second = await report(original_dir), await report(restored_dir)
    counts = ("arrived", "offered", "answered", "abandoned", "short_abandoned", "timed_out")
    assert {k: first["calls"][k] for k in counts} == {k: second["calls"][k] for k in counts}
    # Calls filled in from queue_log carry its whole seconds: each may differ by under one.
    for figure in ("wait_answered", "talk"):
        assert second["calls"][figure] == pytest.approx(first["calls"][figure], abs=16)
