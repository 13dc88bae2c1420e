"""`cti backup` and `cti restore`: the database, the signing key and the media in one archive.

A backup can be taken while the server runs: SQLite through its online backup API (a
consistent copy of the whole file even while the journal writes; WAL readers never block the
writer), PostgreSQL through `pg_dump` (one snapshot transaction). The archive is a tar file:

    manifest.json        what it holds: database kind, when, the schema revision
    database.sqlite3     or database.pgdump (pg_dump's custom format)
    secret.key           the take-link signing key, when the server made its own
    media/...            voicemail recordings and announcement audio

It holds personal data and a secret: it is created readable by its owner only (0600).
Restore writes into the configured database (a SQLite file is replaced whole; a PostgreSQL
database is restored with pg_restore --clean) and refuses to overwrite one that already holds
calls unless forced. The server then starts as after an outage: the journal reads queue_log from
where the backup left it, so calls that ended after the backup are filled in.
"""

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from cti.errors import CtiError
from cti.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
MEDIA_PARTS = ("recordings", "announcements")


class BackupError(CtiError):
    """A backup or restore that cannot be done (the message says why and what to do)."""


@dataclass(frozen=True)
class BackupResult:
    """What went into (or came out of) an archive."""

    path: Path
    database: str
    revision: str
    media_files: int
    calls: int


def _url(settings: Settings) -> URL:
    return make_url(settings.effective_database_url)


def _kind(url: URL) -> str:
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {backend} database (sqlite and postgresql only)")
    return backend


def pg_tool(name: str) -> str:
    """The newest installed PostgreSQL's `name` (pg_dump must be at least the server's
    version), else the one on PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return on_path


def _libpq(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection options for pg_dump/pg_restore; the password goes by environment, never on
    the command line (where `ps` shows it)."""
    args = ["-d", url.database or "postgres"]
    if url.host:
        args += ["-h", url.host]
    if url.port:
        args += ["-p", str(url.port)]
    if url.username:
        args += ["-U", url.username]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed: {proc.stderr.strip() or proc.stdout}")


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _sqlite_facts(path: Path) -> tuple[str, int]:
    """(schema revision, number of calls) of a SQLite file."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _facts(con.execute)
    finally:
        con.close()


def _facts(execute: Any) -> tuple[str, int]:
    try:
        revision = execute("SELECT version_num FROM alembic_version").fetchone()
        calls = execute("SELECT count(*) FROM calls").fetchone()
    except sqlite3.Error:
        return "", 0
    return (revision[0] if revision else ""), int(calls[0] if calls else 0)


def backup(settings: Settings, dest: Path, *, media: bool = True) -> BackupResult:
    """Write the archive `dest` (a new file; an existing one is refused)."""
    url = _url(settings)
    kind = _kind(url)
    if dest.exists():
        raise BackupError(f"{dest} exists: choose a new file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cti-backup-") as tmp:
        work = Path(tmp)
        if kind == "sqlite":
            source = _sqlite_path(url)
            if not source.exists():
                raise BackupError(f"no database at {source}")
            member = work / SQLITE_MEMBER
            src = sqlite3.connect(source, timeout=30)
            dst = sqlite3.connect(member)
            try:
                # All pages in one step, i.e. one read transaction: under WAL the journal writer
                # goes on meanwhile, and the copy is the database as of the step's start (in
                # several steps, every write by the server would restart the copy).
                src.backup(dst, pages=-1)
            finally:
                dst.close()
                src.close()
            revision, calls = _sqlite_facts(member)
        else:
            member = work / PG_MEMBER
            args, env = _libpq(url)
            _run([pg_tool("pg_dump"), "-Fc", "--no-owner", "--no-acl", "-f", str(member), *args],
                 env)  # fmt: skip
            revision, calls = _pg_facts(url)
        manifest = {"format": FORMAT, "database": kind, "revision": revision, "calls": calls,
                    "created_at": datetime.now(UTC).isoformat()}  # fmt: skip
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        fresh = dest.with_name(dest.name + ".part")
        fresh.unlink(missing_ok=True)
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        files = 0
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
            tar.add(work / MANIFEST, MANIFEST)
            tar.add(member, member.name)
            key = settings.data_dir / "secret.key"
            if not settings.secret_key and key.exists():
                tar.add(key, "secret.key")
            if media:
                root = settings.effective_media_dir
                for part in MEDIA_PARTS:
                    if (root / part).is_dir():
                        for path in sorted((root / part).rglob("*")):
                            if path.is_file() and not path.is_symlink():
                                tar.add(path, f"media/{path.relative_to(root)}")
                                files += 1
        fresh.replace(dest)
    return BackupResult(dest, kind, revision, files, calls)


def _pg_facts(url: URL) -> tuple[str, int]:
    args, env = _libpq(url)
    psql = pg_tool("psql")
    out = subprocess.run(
        [psql, *args, "-Atc",
         "SELECT (SELECT version_num FROM alembic_version LIMIT 1), (SELECT count(*) FROM calls)"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if out.returncode != 0 or "|" not in out.stdout:
        return "", 0
    revision, _, calls = out.stdout.strip().partition("|")
    return revision, int(calls or 0)


def _safe_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The archive's regular files by name; anything else (links, devices, absolute paths,
    "..") means it is not one of ours."""
    members = {}
    for info in tar.getmembers():
        name = info.name
        if not info.isfile() or name.startswith("/") or ".." in Path(name).parts:
            raise BackupError(f"not a cti backup: unexpected member {name!r}")
        members[name] = info
    return members


def read_manifest(archive: Path) -> dict[str, Any]:
    """The archive's manifest (BackupError if it is not a cti backup)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _safe_members(tar)
            if MANIFEST not in members:
                raise BackupError(f"{archive} is not a cti backup (no {MANIFEST})")
            fh = tar.extractfile(members[MANIFEST])
            assert fh is not None
            manifest: dict[str, Any] = json.loads(fh.read(1 << 16))
    except (tarfile.TarError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{archive} is not a readable cti backup: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("database") not in ("sqlite", "postgresql"):
        raise BackupError(f"{archive}: unknown backup format {manifest.get('format')!r}")
    return manifest


def restore(settings: Settings, archive: Path, *, force: bool = False) -> BackupResult:
    """Restore the archive into the configured database, data folder and media folder."""
    manifest = read_manifest(archive)
    url = _url(settings)
    kind = _kind(url)
    if manifest["database"] != kind:
        raise BackupError(
            f"{archive} holds a {manifest['database']} database; the configured one is {kind} "
            "(restore into the same kind, then copy across if you must)"
        )
    with tempfile.TemporaryDirectory(prefix="cti-restore-") as tmp, tarfile.open(archive) as tar:
        work = Path(tmp)
        members = _safe_members(tar)
        tar.extractall(work, members=list(members.values()), filter="data")
        files = 0
        if kind == "sqlite":
            target = _sqlite_path(url)
            if target.exists() and _sqlite_facts(target)[1] and not force:
                raise BackupError(f"{target} already holds calls: stop the server, then --force")
            target.parent.mkdir(parents=True, exist_ok=True)
            fresh = target.with_name(target.name + ".restoring")
            shutil.copyfile(work / SQLITE_MEMBER, fresh)
            for suffix in ("-wal", "-shm"):  # the old file's WAL must not replay onto the new one
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            fresh.replace(target)
            revision, calls = _sqlite_facts(target)
        else:
            if _pg_facts(url)[1] and not force:
                raise BackupError("the database already holds calls: stop the server, then --force")
            args, env = _libpq(url)
            _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-acl",
                  "--single-transaction", *args, str(work / PG_MEMBER)], env)  # fmt: skip
            revision, calls = _pg_facts(url)
        if (work / "secret.key").exists() and not settings.secret_key:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            key = settings.data_dir / "secret.key"
            shutil.copyfile(work / "secret.key", key)
            key.chmod(0o600)
        media_root = settings.effective_media_dir
        for name in members:
            if name.startswith("media/"):
                out = media_root / Path(name).relative_to("media")
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(work / name, out)
                files += 1
    return BackupResult(archive, kind, revision, files, calls)
